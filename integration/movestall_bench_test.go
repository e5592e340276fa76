package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/internal/migrate"
	"github.com/shardkv/shardkv/rangemap"
)

// stallLoad writes keys of the moving range through the proxy at a fixed
// rate from several clients, each write retried after a TRYAGAIN until it
// is acknowledged, and keeps how long each took from its first try: a
// write that met the fence waited for it.
type stallLoad struct {
	mu   sync.Mutex
	lats []stallSample
	errs []string
	stop chan struct{}
	wg   sync.WaitGroup
}

type stallSample struct {
	at  time.Time // the first try
	lat time.Duration
}

func startStallLoad(c *Cluster, keys []string, clients int, rate float64) *stallLoad {
	l := &stallLoad{stop: make(chan struct{})}
	every := time.Duration(float64(clients) / rate * float64(time.Second))
	for i := 0; i < clients; i++ {
		rdb := c.Client()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx := context.Background()
			next := time.Now()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				// Paced by schedule: a write that waited makes the next
				// ones go at once until the schedule is met again.
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(every)
				k := keys[(n*clients+i)%len(keys)]
				start := time.Now()
				for {
					err := rdb.Set(ctx, k, n, 0).Err()
					if err == nil {
						break
					}
					if !strings.HasPrefix(err.Error(), "TRYAGAIN ") {
						l.mu.Lock()
						l.errs = append(l.errs, err.Error())
						l.mu.Unlock()
						break
					}
					time.Sleep(500 * time.Microsecond)
				}
				l.mu.Lock()
				l.lats = append(l.lats, stallSample{at: start, lat: time.Since(start)})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *stallLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// between is the latencies of the writes first tried in [from,to).
func (l *stallLoad) between(from, to time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, s := range l.lats {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s.lat)
		}
	}
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkMoveWriteStall measures how long writes to a moving range wait
// (docs/RESHARDING.md, "Measured"): two nodes and a proxy on an etcd map,
// 16 clients writing keys of [0.25,0.5) through the proxy at -stall-rate
// writes a second in all (10,000), while that range (about 20,000 keys of
// 1 KiB) moves from s0 to s1. The commit is the controller's: the map's
// next epoch in etcd, then the new assignments to the target and the
// source (rangemap.Map.NodeAssignArgs); the source's fence ends with its
// assignment, and the proxy follows the epoch through the nodes' epoch
// errors or its watch. Reported: p50, p99 and max client latency of the
// writes begun in the second before the move and during it, the fence's
// length (fence to drained, and fence to the source's new assignment),
// the longest wait of a write begun while fenced, and the writes of the
// move slower than twice the p99 before it.
func BenchmarkMoveWriteStall(b *testing.B) {
	for i := 0; i < b.N; i++ {
		moveWriteStall(b)
	}
}

func moveWriteStall(b *testing.B) {
	b.StopTimer()
	const lo, hi = 0.25, 0.5
	te := startBenchEtcd(b)
	c := StartCluster(b, Options{Shards: 2, Etcd: te, NodeArgs: []string{"-etcd", te, "-cluster", etcdCluster}})
	ctx := context.Background()
	rdb := c.Client()
	var keys []string
	val := strings.Repeat("x", 1024)
	p := rdb.Pipeline()
	for j := 0; len(keys) < 20000; j++ {
		k := fmt.Sprintf("stall:%d", j)
		if pos := rangemap.PositionString(k); lo <= pos && pos < hi {
			keys = append(keys, k)
			p.Set(ctx, k, val, 0)
			if p.Len() == 500 {
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	load := startStallLoad(c, keys, 16, 10000)
	time.Sleep(1500 * time.Millisecond)
	src, dst := c.Map.Shards[0], c.Map.Shards[1]
	// The controller's connections exist before the move.
	cli, err := etcdmap.Dial(te)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	nodes := []*redis.Client{c.NodeClient(1, ""), c.NodeClient(0, "")}
	for _, nc := range nodes {
		if err := nc.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	var switched time.Time
	m := &migrate.Move{ID: "stall", Lo: lo, Hi: hi, Source: src.Addr(), Target: dst.Addr(), FenceLag: 50, RateMB: 20,
		Commit: func(ctx context.Context) error {
			snap, err := etcdmap.Read(ctx, cli, etcdCluster)
			if err != nil {
				return err
			}
			next := *snap.Map
			next.Shards = slices.Clone(snap.Map.Shards)
			next.Shards[0].End, next.Shards[1].Start = lo, lo
			if err := etcdmap.Replace(ctx, cli, etcdCluster, snap, &next); err != nil {
				return err
			}
			for i, s := range []rangemap.Shard{dst, src} {
				args := next.NodeAssignArgs(s.Host, s.Port)
				if err := nodes[i].Do(ctx, toAny(args)...).Err(); err != nil {
					return fmt.Errorf("%s: %v", strings.Join(args, " "), err)
				}
			}
			switched = time.Now()
			return nil
		}}
	b.StartTimer()
	moveStart := time.Now()
	res, err := m.Run(ctx)
	moveEnd := time.Now()
	b.StopTimer()
	time.Sleep(200 * time.Millisecond)
	load.end()
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range load.errs {
		b.Errorf("a write failed: %s", e)
	}
	before := load.between(moveStart.Add(-time.Second), moveStart)
	during := load.between(moveStart, moveEnd)
	long := 0
	for _, d := range during {
		if d >= 2*quantile(before, 0.99)+time.Millisecond {
			long++
		}
	}
	b.ReportMetric(ms(quantile(before, 0.5)), "before-p50-ms")
	b.ReportMetric(ms(quantile(before, 0.99)), "before-p99-ms")
	b.ReportMetric(ms(quantile(before, 1)), "before-max-ms")
	b.ReportMetric(ms(quantile(during, 0.5)), "move-p50-ms")
	b.ReportMetric(ms(quantile(during, 0.99)), "move-p99-ms")
	b.ReportMetric(ms(quantile(during, 1)), "move-max-ms")
	fenceAt := moveStart.Add(res.Copy)
	fence := load.between(fenceAt, switched)
	b.ReportMetric(ms(res.Drain), "drain-ms")
	b.ReportMetric(ms(switched.Sub(fenceAt)), "fence-ms")
	b.ReportMetric(ms(quantile(fence, 1)), "fence-write-max-ms")
	b.ReportMetric(float64(len(before)), "writes-before/s")
	b.ReportMetric(float64(len(during))/moveEnd.Sub(moveStart).Seconds(), "writes-move/s")
	b.ReportMetric(float64(long), "slow-writes")
	b.Logf("move: copy %v, fence to drained %v, %d records; writes during the move %d, slower than twice the p99 before: %d",
		res.Copy, res.Drain, res.Records, len(during), long)
}

func toAny(args []string) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}
