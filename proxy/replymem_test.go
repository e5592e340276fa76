package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// TestRoundsKeepOrder: a pipeline far longer than a round, with big
// replies (streamed, and shrinking the window), counters, a merged MGET
// across shards, local replies and CLIENT REPLY SKIP, sent in one write
// and read only after a while: every reply comes, in order.
func TestRoundsKeepOrder(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	raw := dialRaw(t, c.addr)
	kBig, kN := c.keysOn(0, 1, "rb")[0], c.keysOn(1, 1, "rn")[0]
	big := strings.Repeat("z", 200<<10)
	if got := raw.do("SET", kBig, big); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	const n = 150
	var in []byte
	var want []string
	for i := 1; i <= n; i++ {
		in = resp.AppendCommandStrings(in, "GET", kBig)
		want = append(want, string(resp.AppendBulkString(nil, big)))
		in = resp.AppendCommandStrings(in, "INCR", kN)
		want = append(want, fmt.Sprintf(":%d\r\n", i))
		in = resp.AppendCommandStrings(in, "MGET", kN, "nokey", kBig)
		want = append(want, fmt.Sprintf("*3\r\n$%d\r\n%d\r\n$-1\r\n%s", len(fmt.Sprint(i)), i, resp.AppendBulkString(nil, big)))
		if i%7 == 0 {
			in = resp.AppendCommandStrings(in, "CLIENT", "REPLY", "SKIP")
			in = resp.AppendCommandStrings(in, "PING", "skipped")
		}
		in = resp.AppendCommandStrings(in, "ECHO", fmt.Sprint(i))
		want = append(want, string(resp.AppendBulkString(nil, fmt.Sprint(i))))
	}
	raw.nc.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := raw.nc.Write(in); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for i, w := range want {
		if got := raw.read(); got != w {
			t.Fatalf("reply %d = %q..., want %q...", i, got[:min(len(got), 60)], w[:min(len(w), 60)])
		}
	}
}
