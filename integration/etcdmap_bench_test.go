package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkProxyMap compares the proxy's throughput with the map from a
// static file and from etcd (watch on), in the same run: 8 clients
// pipelining SETs 16 at a time through one proxy to 3 nodes. The etcd map
// changes nothing on the request path but a nil check per batch; this is
// the check that it stays so.
func BenchmarkProxyMap(b *testing.B) {
	for _, mode := range []string{"static", "etcd"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{Shards: 3}
			if mode == "etcd" {
				opts.Etcd = startBenchEtcd(b)
			}
			c := StartCluster(b, opts)
			const clients, depth = 8, 16
			rdbs := make([]*redis.Client, clients)
			for i := range rdbs {
				rdbs[i] = c.Client()
			}
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/clients + 1
			for i, rdb := range rdbs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; n < per; n += depth {
						p := rdb.Pipeline()
						for j := 0; j < depth; j++ {
							p.Set(ctx, fmt.Sprintf("bench:%d:%d", i, (n+j)%10000), "v", 0)
						}
						if _, err := p.Exec(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
