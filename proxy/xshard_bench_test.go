package proxy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkCrossShardMSet: a 2-key MSET, a MULTI/EXEC of two SETs and an
// SMOVE of a member back and forth between two sets through the proxy (two node processes behind it), with both keys on one
// shard (the one-round-trip path) and on two shards (a cross-shard
// transaction), by 50 clients at once; and a plain SET, the single-shard
// command that the cross-shard machinery must not slow down. One op is one
// command or transaction; p50/p99 are its latency as a client sees it.
// Issue 16's target is multi/cross-shard at 0.5x multi/one-shard or more.
func BenchmarkCrossShardMSet(b *testing.B) { benchCrossShard(b, false) }

// BenchmarkCrossShardAlways is BenchmarkCrossShardMSet with the nodes at
// appendfsync always: every write, the transactions' records included,
// waits for an fsync before its reply.
func BenchmarkCrossShardAlways(b *testing.B) { benchCrossShard(b, true) }

func benchCrossShard(b *testing.B, always bool) {
	o := clusterOpts{nodes: 2}
	if always {
		o.appendfsync = "always"
	}
	c := startCluster(b, o)
	ctx := context.Background()
	const clients = 50
	for _, kind := range []string{"set", "mset", "multi", "smove"} {
		for _, cross := range []bool{false, true} {
			if kind == "set" && cross {
				continue // one key: always one shard
			}
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
				cpu0 := c.cpuTime(b)
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
							case "set":
								err = r.Set(ctx, p[0], "v", 0).Err()
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
				cpu := c.cpuTime(b) - cpu0
				if failed > 0 {
					b.Fatalf("%d of %d failed", failed, b.N)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				// CPU of the benchmark's process (clients and proxy) and
				// of the nodes per op: what the machine's other load
				// moves least.
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) used so far by this process
// and the cluster's node processes (Linux: /proc).
func (c *cluster) cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, n := range c.nodes {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		// Fields 14 and 15 (utime, stime), in clock ticks, after the
		// command name in parentheses.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	return total
}
