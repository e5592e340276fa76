package shardnode

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/migrate"
)

// BenchmarkMigrateBigHashWritten moves a hash of 1,000,000 fields while a
// client writes fields of it (HSET, retried after the fence's TRYAGAIN) at
// about 2,000 a second: the catch-up sends the written fields, not the
// whole hash again, so the fence lasts what the last fields take.
// Reported: the fence (fence to drained; the commit is empty here) and
// the longest wait of a write to the hash begun before the commit.
func BenchmarkMigrateBigHashWritten(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src := migBenchNode(b, "a", "0", "0.5")
		dst := migBenchNode(b, "b", "0.5", "1")
		ctx := context.Background()
		sc := redis.NewClient(&redis.Options{Addr: src, Protocol: 2})
		key := ""
		for j := 0; key == ""; j++ {
			if k := "big" + strconv.Itoa(j); inMove(k) {
				key = k
			}
		}
		const fields = 1_000_000
		for j := 0; j < fields; j += 10000 {
			args := make([]any, 0, 20000)
			for f := j; f < j+10000; f++ {
				args = append(args, "f"+strconv.Itoa(f), f)
			}
			if err := sc.HSet(ctx, key, args...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		stop := make(chan struct{})
		var mu sync.Mutex
		var lats []time.Duration
		var committed time.Time
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc := redis.NewClient(&redis.Options{Addr: src, Protocol: 2, MaxRetries: -1})
			defer wc.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Microsecond):
				}
				start := time.Now()
				for {
					err := wc.HSet(ctx, key, "f"+strconv.Itoa(n*7919%fields), "w"+strconv.Itoa(n)).Err()
					if err == nil {
						break
					}
					if !strings.HasPrefix(err.Error(), "TRYAGAIN") {
						b.Error(err)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(500 * time.Microsecond):
					}
				}
				mu.Lock()
				if committed.IsZero() {
					lats = append(lats, time.Since(start))
				}
				mu.Unlock()
			}
		}()
		time.Sleep(200 * time.Millisecond)
		m := &migrate.Move{ID: "bigw", Lo: moveLo, Hi: moveHi, Source: src, Target: dst, FenceLag: 10,
			Commit: func(context.Context) error {
				mu.Lock()
				committed = time.Now()
				mu.Unlock()
				return nil
			}}
		b.StartTimer()
		res, err := m.Run(ctx)
		b.StopTimer()
		close(stop)
		wg.Wait()
		sc.Close()
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(lats)
		b.ReportMetric(float64(res.Drain)/float64(time.Millisecond), "fence-ms")
		b.ReportMetric(float64(lats[len(lats)-1])/float64(time.Millisecond), "write-max-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100])/float64(time.Millisecond), "write-p99-ms")
		b.ReportMetric(float64(res.Records), "records")
		b.Logf("copy %v, fence to drained %v, %d records, %d bytes, %d writes to the hash", res.Copy, res.Drain, res.Records, res.Bytes, len(lats))
	}
}
