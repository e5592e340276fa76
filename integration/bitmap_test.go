package integration

import (
	"context"
	"fmt"
	"testing"
)

// TestTopBitOffsetStaysSmall: SETBIT at 2^32-1 makes a 512 MB string, as
// in Redis, but the node writes it as a hole and BITCOUNT reads it a chunk
// at a time, so the node never holds it: its peak RSS (VmHWM) stays within
// 64 MiB of where it started. A race build, whose instrumented BITCOUNT
// over 512 MB outlasts the proxy's timeout, uses offset 2^27-1 (a 16 MiB
// bitmap) and only logs its RSS (shadow memory stays resident).
func TestTopBitOffsetStaysSmall(t *testing.T) {
	c := StartCluster(t, Options{Shards: 1})
	ctx := context.Background()
	r := c.Client()
	k := c.KeysOn(0, "bitmap", 1)[0]
	pid := c.Nodes[0].Pid()
	must(t, r.Set(ctx, "warm", "1", 0).Err())
	baseline := rssBytes(pid)
	top := int64(4294967295)
	if raceEnabled {
		top = 1<<27 - 1
	}
	for _, off := range []int64{top, 0, 8388607} {
		if was, err := r.SetBit(ctx, k, off, 1).Result(); err != nil || was != 0 {
			t.Fatalf("SETBIT %d: %d %v", off, was, err)
		}
	}
	if n, err := r.StrLen(ctx, k).Result(); err != nil || n != (top+1)/8 {
		t.Fatalf("STRLEN: %d %v", n, err)
	}
	if n, err := r.BitCount(ctx, k, nil).Result(); err != nil || n != 3 {
		t.Fatalf("BITCOUNT: %d %v", n, err)
	}
	if b, err := r.GetBit(ctx, k, top).Result(); err != nil || b != 1 {
		t.Fatalf("GETBIT: %d %v", b, err)
	}
	if vs, err := r.BitField(ctx, k, "INCRBY", "u8", fmt.Sprintf("#%d", (top+1)/8-1), 2).Result(); err != nil || len(vs) != 1 || vs[0] != 3 {
		t.Fatalf("BITFIELD at the last byte: %v %v", vs, err)
	}
	peak := peakRSSBytes(pid)
	t.Logf("node RSS %d MiB before, peak %d MiB after SETBIT/BITCOUNT/BITFIELD over a %d MiB bitmap", baseline>>20, peak>>20, (top+1)>>23)
	const slack = 64 << 20
	if peak > baseline+slack && !raceEnabled {
		t.Errorf("node peak RSS %d MiB; want at most %d MiB (the baseline plus 64 MiB)", peak>>20, (baseline+slack)>>20)
	}
}
