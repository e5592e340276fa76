package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// BenchmarkMoveLatency measures what a client sees of a move driven by
// the controller (run it with -benchtime 1x; b.N is not used): 16 clients
// SET keys spread over the key space through the proxy as fast as they
// can, 2 s before the move and during it; a write that got TRYAGAIN (the
// fence) counts from its first try to its acknowledgement. It reports the
// writes a second and p50/p99/max latency before and during the move, the
// max of the writes to the moving range, and the fence the controller
// recorded (fence to switch).
func BenchmarkMoveLatency(b *testing.B) {
	ep := startBenchEtcd(b)
	c := StartCluster(b, Options{Shards: 2, NodePassword: reshardPW, Etcd: ep})
	ctl := &Proc{Name: "ctl", Bin: bin("shardkv"), LogPath: filepath.Join(c.Dir, "logs", "ctl.log"),
		Args: []string{"controller", "--etcd", ep, "--cluster", etcdCluster, "--id", "bench", "--node-password", reshardPW}}
	ctl.Start(b)
	b.Cleanup(ctl.Kill)
	ctx := context.Background()
	const keys, clients = 40000, 16
	val := strings.Repeat("v", 256)
	pre := c.Client()
	for i := 0; i < keys; i += 1000 {
		p := pre.Pipeline()
		for j := i; j < i+1000; j++ {
			p.Set(ctx, fmt.Sprintf("lat:%d", j), val, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var phase atomic.Int32 // 0 before, 1 during, 2 stop
	var mu sync.Mutex
	lat := [2][]time.Duration{}
	var inRange []time.Duration
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		rdb := c.Client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; phase.Load() < 2; n += clients {
				k := fmt.Sprintf("lat:%d", (n*7919)%keys)
				start := time.Now()
				for {
					err := rdb.Set(ctx, k, val, 0).Err()
					if err == nil {
						break
					}
					if !strings.HasPrefix(err.Error(), "TRYAGAIN") {
						b.Error(err)
						return
					}
				}
				d := time.Since(start)
				ph := phase.Load()
				if ph > 1 {
					return
				}
				p := rangemap.PositionString(k)
				mu.Lock()
				lat[ph] = append(lat[ph], d)
				if ph == 1 && movedLo <= p && p < movedHi {
					inRange = append(inRange, d)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	cli, err := etcdmap.Dial(ep)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	phase.Store(1)
	began := time.Now()
	id, err := etcdmap.Submit(ctx, cli, etcdCluster, etcdmap.Request{Kind: "move", Lo: movedLo, Hi: movedHi, Node: c.Map.Shards[1].Addr()})
	if err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	ch, err := etcdmap.WaitChange(wctx, cli, etcdCluster, id)
	cancel()
	took := time.Since(began)
	phase.Store(2)
	wg.Wait()
	if err != nil || ch.State != "done" {
		b.Fatalf("move: %+v %v", ch, err)
	}
	moves, _ := etcdmap.ReadMoves(ctx, cli, etcdCluster, id+".")
	mv := moves[0]
	pct := func(ds []time.Duration, q float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(q*float64(len(ds))))]
	}
	for i := range lat {
		slices.Sort(lat[i])
	}
	slices.Sort(inRange)
	b.ReportMetric(float64(len(lat[0]))/2, "writes/s-before")
	b.ReportMetric(float64(len(lat[1]))/took.Seconds(), "writes/s-during")
	b.ReportMetric(float64(mv.FenceMS), "fence-ms")
	b.Logf("before: %d writes in 2 s, p50 %v p99 %v max %v", len(lat[0]), pct(lat[0], .5), pct(lat[0], .99), pct(lat[0], 1))
	b.Logf("during the move (%v, %d records, %d bytes): %d writes, p50 %v p99 %v max %v; to the moving range: %d, max %v; fence (fence to switch) %d ms",
		took.Round(time.Millisecond), mv.Records, mv.Bytes, len(lat[1]), pct(lat[1], .5), pct(lat[1], .99), pct(lat[1], 1),
		len(inRange), pct(inRange, 1), mv.FenceMS)
}
