package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// TestListMemoryVsRedis loads one list of 1,000,000 elements of 100 bytes
// into a shard node and into redis-server and compares their resident
// memory, as TestSetMemoryVsRedis does for a set. A measurement, not a
// test of the build: it runs only with SHARDKV_LISTMEM=1, e.g.
//
//	SHARDKV_LISTMEM=1 go test -run TestListMemoryVsRedis -v ./integration/
func TestListMemoryVsRedis(t *testing.T) {
	if os.Getenv("SHARDKV_LISTMEM") == "" {
		t.Skip("a measurement: set SHARDKV_LISTMEM=1")
	}
	const elems = 1_000_000
	ctx := context.Background()
	pad := strings.Repeat("v", 100-16)
	load := func(r *redis.Client) {
		t.Helper()
		for i := 0; i < elems; i += 10_000 {
			p := r.Pipeline()
			for j := i; j < i+10_000; j += 1000 {
				args := []any{"RPUSH", "biglist"}
				for k := j; k < j+1000; k++ {
					args = append(args, fmt.Sprintf("e%015d%s", k, pad)) // 100 bytes
				}
				p.Do(ctx, args...)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := r.LLen(ctx, "biglist").Result(); err != nil || n != elems {
			t.Fatalf("LLEN: %d %v", n, err)
		}
		want := fmt.Sprintf("e%015d%s", elems/2, pad)
		if v, err := r.LIndex(ctx, "biglist", elems/2).Result(); err != nil || v != want {
			t.Fatalf("LINDEX: %q %v", v, err)
		}
	}

	raddr := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: raddr})
	defer rc.Close()
	info, err := rc.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	rpid := infoField(info, "process_id")
	rBase := rss(t, rpid)
	load(rc)
	time.Sleep(2 * time.Second)
	rAfter := rss(t, rpid)

	c := StartCluster(t, Options{Shards: 1})
	nc := c.NodeClient(0, "")
	npid := strconv.Itoa(c.Nodes[0].Pid())
	nBase := rss(t, npid)
	load(nc)
	// The Go runtime returns freed heap to the kernel in the background.
	time.Sleep(10 * time.Second)
	nAfter := rss(t, npid)
	t.Logf("redis-server 7.0: VmRSS %d MiB before, %d MiB after (anon %d MiB)", rBase.total>>20, rAfter.total>>20, rAfter.anon>>20)
	t.Logf("shardkv-node:     VmRSS %d MiB before, %d MiB after (anon %d MiB, file %d MiB)", nBase.total>>20, nAfter.total>>20, nAfter.anon>>20, nAfter.file>>20)
	t.Logf("ratio node/redis: VmRSS %.2f, anonymous %.2f; growth %.2f",
		float64(nAfter.total)/float64(rAfter.total), float64(nAfter.anon)/float64(rAfter.anon),
		float64(nAfter.total-nBase.total)/float64(rAfter.total-rBase.total))
	// After a restart the list is rebuilt from hints or records.
	c.Nodes[0].Signal(t, 15)
	c.Nodes[0].WaitExit(t)
	c.StartNode(0)
	nc = c.NodeClient(0, "")
	if n, err := nc.LLen(ctx, "biglist").Result(); err != nil || n != elems {
		t.Fatalf("LLEN after restart: %d %v", n, err)
	}
	time.Sleep(10 * time.Second)
	r2 := rss(t, strconv.Itoa(c.Nodes[0].Pid()))
	t.Logf("shardkv-node after restart: VmRSS %d MiB (anon %d MiB); ratio %.2f", r2.total>>20, r2.anon>>20, float64(r2.total)/float64(rAfter.total))
}
