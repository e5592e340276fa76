package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkCrossShardMSet: a 2-key MSET, a MULTI/EXEC of two SETs and an
// SMOVE of a member back and forth between two sets through the proxy (two node processes behind it), with both keys on one
// shard (the one-round-trip path) and on two shards (a cross-shard
// transaction), by 50 clients at once. One op is one command or
// transaction; p50/p99 are its latency as a client sees it.
func BenchmarkCrossShardMSet(b *testing.B) {
	c := startCluster(b, clusterOpts{nodes: 2})
	ctx := context.Background()
	const clients = 50
	for _, kind := range []string{"mset", "multi", "smove"} {
		for _, cross := range []bool{false, true} {
			name := kind + "/one-shard"
			if cross {
				name = kind + "/cross-shard"
			}
			b.Run(name, func(b *testing.B) {
				r := redis.NewClient(&redis.Options{Addr: c.addr, PoolSize: clients, MaxRetries: -1})
				defer r.Close()
				pairs := make([][2]string, clients)
				for i := range pairs {
					x := c.keysOn(0, 1, fmt.Sprintf("bx%s%d-", kind, i))[0]
					y := c.keysOn(0, 2, fmt.Sprintf("by%s%d-", kind, i))[1]
					if cross {
						y = c.keysOn(1, 1, fmt.Sprintf("by%s%d-", kind, i))[0]
					}
					pairs[i] = [2]string{x, y}
				}
				var mu sync.Mutex
				var lat []time.Duration
				var next, failed int
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := 0; w < clients; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						p := pairs[w]
						var mine []time.Duration
						if kind == "smove" {
							r.SAdd(ctx, p[0], "m")
						}
						for {
							mu.Lock()
							if next >= b.N {
								mu.Unlock()
								break
							}
							next++
							mu.Unlock()
							t0 := time.Now()
							var err error
							switch kind {
							case "mset":
								err = r.MSet(ctx, p[0], "v", p[1], "v").Err()
							case "smove":
								err = r.SMove(ctx, p[0], p[1], "m").Err()
								p[0], p[1] = p[1], p[0]
							default:
								_, err = r.TxPipelined(ctx, func(pl redis.Pipeliner) error {
									pl.Set(ctx, p[0], "v", 0)
									pl.Set(ctx, p[1], "v", 0)
									return nil
								})
							}
							mine = append(mine, time.Since(t0))
							if err != nil {
								mu.Lock()
								failed++
								mu.Unlock()
							}
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				b.StopTimer()
				if failed > 0 {
					b.Fatalf("%d of %d failed", failed, b.N)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}
