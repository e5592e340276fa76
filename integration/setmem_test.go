package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// TestSetMemoryVsRedis loads one set of 1,000,000 members of 16 bytes
// into a shard node and into redis-server and compares their resident
// memory (VmRSS, and its anonymous part: the node maps its data files for
// reads, whose pages the kernel may drop). A measurement, not a test of
// the build: it runs only with SHARDKV_SETMEM=1, e.g.
//
//	SHARDKV_SETMEM=1 go test -run TestSetMemoryVsRedis -v ./integration/
func TestSetMemoryVsRedis(t *testing.T) {
	if os.Getenv("SHARDKV_SETMEM") == "" {
		t.Skip("a measurement: set SHARDKV_SETMEM=1")
	}
	const members = 1_000_000
	ctx := context.Background()
	load := func(r *redis.Client) {
		t.Helper()
		for i := 0; i < members; i += 10_000 {
			p := r.Pipeline()
			for j := i; j < i+10_000; j += 1000 {
				args := []any{"SADD", "bigset"}
				for k := j; k < j+1000; k++ {
					args = append(args, fmt.Sprintf("m%015d", k)) // 16 bytes
				}
				p.Do(ctx, args...)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := r.SCard(ctx, "bigset").Result(); err != nil || n != members {
			t.Fatalf("SCARD: %d %v", n, err)
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

	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	c := StartCluster(t, Options{Shards: 1, NodeArgs: []string{"-pprof", pprofAddr}})
	nc := c.NodeClient(0, "")
	npid := strconv.Itoa(c.Nodes[0].Pid())
	nBase := rss(t, npid)
	load(nc)
	// The Go runtime returns freed heap to the kernel in the background.
	time.Sleep(10 * time.Second)
	nAfter := rss(t, npid)
	// What is live: a heap profile after a collection.
	if resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "# HeapAlloc") || strings.HasPrefix(l, "# HeapSys") || strings.HasPrefix(l, "# HeapInuse") {
				t.Log(l)
			}
		}
		time.Sleep(5 * time.Second)
		gc := rss(t, npid)
		t.Logf("shardkv-node after a collection: VmRSS %d MiB (anon %d MiB)", gc.total>>20, gc.anon>>20)
	}
	t.Logf("redis-server 7.0: VmRSS %d MiB before, %d MiB after (anon %d MiB)", rBase.total>>20, rAfter.total>>20, rAfter.anon>>20)
	t.Logf("shardkv-node:     VmRSS %d MiB before, %d MiB after (anon %d MiB, file %d MiB)", nBase.total>>20, nAfter.total>>20, nAfter.anon>>20, nAfter.file>>20)
	t.Logf("ratio node/redis: VmRSS %.2f, anonymous %.2f; growth %.2f",
		float64(nAfter.total)/float64(rAfter.total), float64(nAfter.anon)/float64(rAfter.anon),
		float64(nAfter.total-nBase.total)/float64(rAfter.total-rBase.total))
}

type rssInfo struct{ total, anon, file int64 }

// rss reads a process's resident memory from /proc (Linux).
func rss(t *testing.T, pid string) rssInfo {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var r rssInfo
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			r.total = kb << 10
		case "RssAnon:":
			r.anon = kb << 10
		case "RssFile:":
			r.file = kb << 10
		}
	}
	return r
}
