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

// TestMigrateCatchUpSendsElements: during catch-up a write of an element
// of a big collection sends that element, an expiry change the expiry,
// and a key rewritten, deleted or created sends the key: the records sent
// grow by a few, not by the collections' chunks, and the target ends equal
// to the source.
func TestMigrateCatchUpSendsElements(t *testing.T) {
	src := startNode(t, "", nil)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	sc := streamClient(t, src.addr)
	dc := streamClient(t, dst.addr)
	ctx := context.Background()
	var keys []string
	for i := 0; len(keys) < 6; i++ {
		if k := "el" + strconv.Itoa(i); inMove(k) {
			keys = append(keys, k)
		}
	}
	h, s, z, gone, retyped, created := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5]
	const n = 5000 // five chunks each
	var hf, sm []any
	var zm []redis.Z
	for i := 0; i < n; i++ {
		hf = append(hf, "f"+strconv.Itoa(i), i)
		sm = append(sm, "m"+strconv.Itoa(i))
		zm = append(zm, redis.Z{Score: float64(i), Member: "m" + strconv.Itoa(i)})
	}
	for _, k := range []string{h, gone, retyped} {
		if err := sc.HSet(ctx, k, hf...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.SAdd(ctx, s, sm...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sc.ZAdd(ctx, z, zm...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Do(ctx, "MIGRATE.START", "el", moveLo, moveHi, dst.addr).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := migrate.ReadStatus(ctx, sc, "el")
		return err == nil && st.Phase == "catchup" && st.Lag == 0 && st.Acked == st.SentSeq
	}, "the snapshot sent and acknowledged")
	before, _ := migrate.ReadStatus(ctx, sc, "el")
	p := sc.Pipeline()
	p.HSet(ctx, h, "f1", "new", "added", "x")
	p.HDel(ctx, h, "f2")
	p.HIncrBy(ctx, h, "f3", 10)
	p.PExpire(ctx, h, time.Hour)
	p.SAdd(ctx, s, "new")
	p.SRem(ctx, s, "m1")
	p.ZAdd(ctx, z, redis.Z{Score: -1, Member: "m2"})
	p.ZRem(ctx, z, "m3")
	p.ZIncrBy(ctx, z, 0.5, "m4")
	p.Del(ctx, gone)
	p.Del(ctx, retyped)
	p.SAdd(ctx, retyped, "now a set") // creates the key: sent whole
	p.HSet(ctx, created, "only", "field")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := migrate.ReadStatus(ctx, sc, "el")
		return err == nil && st.Lag == 0 && st.Acked == st.SentSeq && st.SentSeq > before.SentSeq
	}, "the writes sent and acknowledged")
	after, _ := migrate.ReadStatus(ctx, sc, "el")
	// Each big collection sends its set and its removed elements (two
	// records, three if the stream took the key twice while the pipeline
	// ran), the other keys one each: at most 12. A whole re-send of the
	// three big ones alone would be 15 chunks.
	if d := after.Records - before.Records; d > 12 {
		t.Errorf("catch-up sent %d records for 13 element and key writes", d)
	}
	want := dumpRange(t, sc, inMove)
	got := dumpRange(t, dc, inMove)
	if len(want) != len(got) {
		t.Errorf("source has %d keys of the range, target %d", len(want), len(got))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %s: source %.80q, target %.80q", k, v, got[k])
		}
	}
	if err := sc.Do(ctx, "MIGRATE.ABORT", "el").Err(); err != nil {
		t.Fatal(err)
	}
}
