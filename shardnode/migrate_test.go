package shardnode

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/migrate"
	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/rangemap"
)

// The move's range in these tests: the upper half of the source's
// assignment [0,0.5). The target owns [0.5,1).
const moveLo, moveHi = 0.25, 0.5

func inMove(key string) bool {
	p := rangemap.PositionOfHash(rangemap.PlacementHash([]byte(key), false))
	return moveLo <= p && p < moveHi
}

// srcOwns reports whether every key of the load's group k falls in the
// source's assignment [0,0.5).
func srcOwns(k string) bool {
	for _, s := range []string{":s", ":h", ":set", ":z", ":l", ":n"} {
		if rangemap.PositionOfHash(rangemap.PlacementHash([]byte(k+s), false)) >= 0.5 {
			return false
		}
	}
	return true
}

// streamClient reads a node's keys whatever its assignment: its
// connections are marked as a move's stream.
func streamClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "MIGRATE.RECV", "test-reader").Err()
		}})
	t.Cleanup(func() { c.Close() })
	return c
}

// dumpRange is every key of the range on the node, each database, with its
// type, absolute expiry time and contents, as text.
func dumpRange(t *testing.T, c *redis.Client, in func(string) bool) map[string]string {
	return redistest.Dump(t, c, in)
}

func assignNode(t *testing.T, n *testNode, name, lo, hi string) {
	t.Helper()
	c := n.raw()
	defer c.close()
	if got := c.do("SHARD.ASSIGN", name, lo, hi, "0"); got != "+OK\r\n" {
		t.Fatalf("SHARD.ASSIGN: %q", got)
	}
}

// fillAllTypes writes n keys of each type into databases 0 and 3.
func fillAllTypes(t *testing.T, c *redis.Client, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for _, db := range []int{0, 3} {
		p := c.Pipeline()
		p.Do(ctx, "SELECT", db)
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("%s%d:%d", prefix, db, i)
			p.Set(ctx, k+":s", "v"+strconv.Itoa(i), 0)
			p.HSet(ctx, k+":h", "a", i, "b", "x")
			p.SAdd(ctx, k+":set", "m1", "m2", i)
			p.ZAdd(ctx, k+":z", redis.Z{Score: float64(i) + 0.5, Member: "a"}, redis.Z{Score: -1, Member: "b"})
			p.RPush(ctx, k+":l", "x", "y", i)
			if i%3 == 0 {
				p.PExpire(ctx, k+":s", time.Hour)
				p.PExpire(ctx, k+":h", 2*time.Hour)
				p.PExpire(ctx, k+":l", 3*time.Hour)
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// moveLoad writes every type to random keys of the source, in the moved
// range and out of it, until stop; it records the longest write to the
// moved range and fails the test on an error outside it.
type moveLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	maxWait  atomic.Int64 // ns, writes to the moving range
	tryAgain atomic.Int64
	writes   atomic.Int64
	errs     chan error
}

func startLoad(t *testing.T, addr string, clients int) *moveLoad {
	l := &moveLoad{stop: make(chan struct{}), errs: make(chan error, 100)}
	for w := 0; w < clients; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 1})
			defer c.Close()
			ctx := context.Background()
			r := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				k := fmt.Sprintf("load%d:%d", r.Intn(2), r.Intn(300))
				if !srcOwns(k) {
					continue
				}
				var err error
				t0 := time.Now()
				// Element writes (HSET, HDEL, SADD, SREM, ZADD, ZREM) are
				// sent as elements, key writes whole, expiry changes
				// alone (migrate.go); a key rewritten as another type
				// by SET goes whole again.
				switch r.Intn(14) {
				case 0:
					err = c.Set(ctx, k+":s", r.Int(), 0).Err()
				case 1:
					err = c.HSet(ctx, k+":h", strconv.Itoa(r.Intn(5)), r.Int()).Err()
				case 2:
					err = c.SAdd(ctx, k+":set", r.Intn(10)).Err()
				case 3:
					err = c.ZAdd(ctx, k+":z", redis.Z{Score: float64(r.Intn(100)), Member: strconv.Itoa(r.Intn(5))}).Err()
				case 4:
					err = c.RPush(ctx, k+":l", r.Intn(10)).Err()
				case 5:
					err = c.Del(ctx, k+":s", k+":h").Err()
				case 6:
					err = c.PExpire(ctx, k+":set", time.Duration(1+r.Intn(5))*time.Hour).Err()
				case 7:
					err = c.Incr(ctx, k+":n").Err()
				case 8:
					err = c.LPop(ctx, k+":l").Err()
					if err == redis.Nil {
						err = nil
					}
				case 9:
					err = c.HDel(ctx, k+":h", strconv.Itoa(r.Intn(5))).Err()
				case 10:
					err = c.SRem(ctx, k+":set", r.Intn(10)).Err()
				case 11:
					err = c.ZRem(ctx, k+":z", strconv.Itoa(r.Intn(5))).Err()
				case 12:
					err = c.Persist(ctx, k+":set").Err()
				case 13:
					if r.Intn(10) == 0 {
						err = c.Set(ctx, k+":z", "now a string", 0).Err()
					} else {
						err = c.PExpire(ctx, k+":h", time.Duration(1+r.Intn(5))*time.Hour).Err()
					}
				}
				d := time.Since(t0)
				l.writes.Add(1)
				// A write to a key of the moving range may wait for
				// the fence (the multi-key DEL is one of one range).
				fenced := inMove(k+":s") || inMove(k+":h") || inMove(k+":set") || inMove(k+":z") ||
					inMove(k+":l") || inMove(k+":n")
				if fenced {
					for {
						old := l.maxWait.Load()
						if int64(d) <= old || l.maxWait.CompareAndSwap(old, int64(d)) {
							break
						}
					}
				}
				if err != nil {
					if strings.HasPrefix(err.Error(), "TRYAGAIN") && fenced {
						l.tryAgain.Add(1)
						continue
					}
					if strings.HasPrefix(err.Error(), "WRONGTYPE") || strings.HasPrefix(err.Error(), "CROSSSLOT") {
						continue
					}
					select {
					case l.errs <- fmt.Errorf("%s: %w", k, err):
					default:
					}
				}
			}
		}(w)
	}
	return l
}

func (l *moveLoad) end(t *testing.T) {
	close(l.stop)
	l.wg.Wait()
	close(l.errs)
	for err := range l.errs {
		t.Errorf("load: %v", err)
	}
}

// TestMigrateMoveUnderLoad moves a range of every type of key from one
// node to another while clients write to it; at the commit (fenced and
// drained) the target holds exactly the source's keys of the range, and
// after the cleanup the source holds none of them.
//
// On an event loop (the default) a write to the fenced range gets TRYAGAIN
// at once; with a goroutine per connection it waits for the fence, and the
// longest such wait is in the log.
func TestMigrateMoveUnderLoad(t *testing.T) {
	t.Run("loops", func(t *testing.T) { moveUnderLoad(t, nil) })
	t.Run("goroutines", func(t *testing.T) { moveUnderLoad(t, func(c *Config) { c.EventLoops = -1 }) })
}

func moveUnderLoad(t *testing.T, edit func(*Config)) {
	src := startNode(t, "", edit)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	sc := streamClient(t, src.addr)
	dc := streamClient(t, dst.addr)
	fillAllTypes(t, sc, "pre", 400)
	// A partial copy of an earlier attempt on the target, which the move
	// must clear first.
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if k := "stale" + strconv.Itoa(i); inMove(k) {
			dc.Set(ctx, k, "old", 0)
		}
	}
	srcKeysOutside := dumpRange(t, sc, func(k string) bool { return !inMove(k) })
	dstOwn := dumpRange(t, dc, func(k string) bool { return !inMove(k) })

	load := startLoad(t, src.addr, 4)
	var atCommit struct{ src, dst map[string]string }
	m := &migrate.Move{
		ID: "m1", Lo: moveLo, Hi: moveHi, Source: src.addr, Target: dst.addr,
		FenceLag: 50, FenceTimeout: 200 * time.Millisecond,
		Commit: func(ctx context.Context) error {
			atCommit.src = dumpRange(t, sc, inMove)
			atCommit.dst = dumpRange(t, dc, inMove)
			return nil
		},
	}
	// Writes before the stream starts, during the snapshot and catch-up.
	time.Sleep(50 * time.Millisecond)
	res, err := m.Run(ctx)
	load.end(t)
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	t.Logf("move: %d records, %d bytes, copy %v, fence to drained %v; load: %d writes, "+
		"longest write to the moving range %v, %d TRYAGAIN",
		res.Records, res.Bytes, res.Copy, res.Drain, load.writes.Load(), time.Duration(load.maxWait.Load()), load.tryAgain.Load())
	if len(atCommit.src) == 0 {
		t.Fatal("no keys in the moved range")
	}
	if len(atCommit.src) != len(atCommit.dst) {
		t.Errorf("at the commit: source has %d keys of the range, target %d", len(atCommit.src), len(atCommit.dst))
	}
	for k, v := range atCommit.src {
		if atCommit.dst[k] != v {
			t.Errorf("key %s: source %q, target %q", k, v, atCommit.dst[k])
		}
	}
	for k := range atCommit.dst {
		if _, ok := atCommit.src[k]; !ok {
			t.Errorf("key %s on the target only", k)
		}
	}
	// The source's cleanup deleted the range and nothing else; the
	// target's own keys are untouched.
	if left := dumpRange(t, sc, inMove); len(left) != 0 {
		t.Errorf("source still holds %d keys of the moved range", len(left))
	}
	if got := dumpRange(t, dc, func(k string) bool { return !inMove(k) }); fmt.Sprint(got) != fmt.Sprint(dstOwn) {
		t.Errorf("the target's own keys changed")
	}
	outside := dumpRange(t, sc, func(k string) bool { return !inMove(k) && strings.HasPrefix(k, "pre") })
	for k, v := range srcKeysOutside {
		if outside[k] != v {
			t.Errorf("source key %s outside the range changed: %q -> %q", k, v, outside[k])
		}
	}
	if res.Deleted != int64(len(atCommit.src)) {
		t.Errorf("cleanup deleted %d keys, want %d", res.Deleted, len(atCommit.src))
	}
}

// TestMigrateFence: a fenced range's writes wait, then get TRYAGAIN; its
// reads and other ranges' writes go on; unfencing releases a waiting
// write.
func TestMigrateFence(t *testing.T) {
	// A connection of its own per client: writes wait for the fence (on
	// an event loop they get TRYAGAIN at once, TestMigrateFenceLoop).
	n := startNode(t, "", func(c *Config) { c.EventLoops = -1 })
	n.assignAll()
	var in, out string
	for i := 0; in == "" || out == ""; i++ {
		k := "k" + strconv.Itoa(i)
		if inMove(k) {
			in = k
		} else {
			out = k
		}
	}
	c := n.client(2)
	ctx := context.Background()
	c.Set(ctx, in, "1", 0)
	if err := c.Do(ctx, "SHARD.FENCE", moveLo, moveHi, "TIMEOUT", 50).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, in, "2", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Errorf("write to the fenced range: %v, want TRYAGAIN", err)
	}
	if v := c.Get(ctx, in).Val(); v != "1" {
		t.Errorf("read of the fenced range: %q", v)
	}
	if err := c.Set(ctx, out, "x", 0).Err(); err != nil {
		t.Errorf("write outside the fence: %v", err)
	}
	// A write inside MULTI is refused too (EXEC aborts).
	p := c.TxPipeline()
	p.Set(ctx, in, "3", 0)
	if _, err := p.Exec(ctx); err == nil {
		t.Errorf("MULTI write to the fenced range succeeded")
	}
	if err := c.Do(ctx, "SHARD.FENCE", moveLo, moveHi, "TIMEOUT", 10000).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.client(2).Set(ctx, in, "4", 0).Err() }()
	time.Sleep(20 * time.Millisecond)
	if err := n.client(2).Do(ctx, "SHARD.UNFENCE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("a write waiting for the fence, after unfence: %v", err)
	}
	if v := c.Get(ctx, in).Val(); v != "4" {
		t.Errorf("after unfence: %q", v)
	}
	for _, bad := range [][]any{{"SHARD.FENCE", "0.5", "0.2"}, {"SHARD.FENCE", "x", "1"}, {"MIGRATE.STATUS", "nope"}, {"MIGRATE.FLUSHRANGE", "0", "1"}} {
		if err := c.Do(ctx, bad...).Err(); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestMigrateAbortDropsTarget: a stream aborted midway leaves the source
// whole, and MIGRATE.DROP removes the target's partial copy.
func TestMigrateAbortDropsTarget(t *testing.T) {
	src := startNode(t, "", nil)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	sc := streamClient(t, src.addr)
	dc := streamClient(t, dst.addr)
	fillAllTypes(t, sc, "ab", 300)
	before := dumpRange(t, sc, func(string) bool { return true })
	ctx := context.Background()
	// Slow, so that the abort comes midway.
	if err := sc.Do(ctx, "MIGRATE.START", "m2", moveLo, moveHi, dst.addr, "RATE", "0.05").Err(); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := migrate.ReadStatus(ctx, sc, "m2")
		if err != nil {
			t.Fatal(err)
		}
		if st.Acked > 10 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := &migrate.Move{ID: "m2", Lo: moveLo, Hi: moveHi, Source: src.addr, Target: dst.addr}
	if len(dumpRange(t, dc, inMove)) == 0 {
		t.Fatal("nothing reached the target before the abort")
	}
	if err := m.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if left := dumpRange(t, dc, inMove); len(left) != 0 {
		t.Errorf("target keeps %d keys of the aborted range", len(left))
	}
	if after := dumpRange(t, sc, func(string) bool { return true }); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the source changed")
	}
}

// TestMigrateBigHash moves a hash of 1,000,000 fields.
func TestMigrateBigHash(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 fields")
	}
	src := startNode(t, "", nil)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	sc := streamClient(t, src.addr)
	dc := streamClient(t, dst.addr)
	key := ""
	for i := 0; key == ""; i++ {
		if k := "big" + strconv.Itoa(i); inMove(k) {
			key = k
		}
	}
	ctx := context.Background()
	const fields = 1_000_000
	for i := 0; i < fields; i += 10000 {
		args := []any{key}
		for j := i; j < i+10000; j++ {
			args = append(args, "f"+strconv.Itoa(j), j)
		}
		if err := sc.HSet(ctx, args[0].(string), args[1:]...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := &migrate.Move{ID: "big", Lo: moveLo, Hi: moveHi, Source: src.addr, Target: dst.addr, FenceLag: 10,
		Commit: func(context.Context) error { return nil }}
	res, err := m.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000,000-field hash: %d bytes in %v, fence to drained %v", res.Bytes, res.Copy, res.Drain)
	if n := dc.HLen(ctx, key).Val(); n != fields {
		t.Errorf("target HLEN %d, want %d", n, fields)
	}
	for _, j := range []int{0, 1, 499999, fields - 1} {
		if v := dc.HGet(ctx, key, "f"+strconv.Itoa(j)).Val(); v != strconv.Itoa(j) {
			t.Errorf("field %d: %q", j, v)
		}
	}
	if sc.Exists(ctx, key).Val() != 0 {
		t.Errorf("source keeps the hash after the cleanup")
	}
}

// TestMigrateFenceLoop: on an event loop a write to a fenced range gets
// TRYAGAIN without waiting, and the loop goes on serving.
func TestMigrateFenceLoop(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	in := ""
	for i := 0; in == ""; i++ {
		if k := "k" + strconv.Itoa(i); inMove(k) {
			in = k
		}
	}
	c := n.client(2)
	ctx := context.Background()
	if err := c.Do(ctx, "SHARD.FENCE", moveLo, moveHi, "TIMEOUT", 60000).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, in, "2", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Errorf("write to the fenced range: %v, want TRYAGAIN", err)
	}
	if err := c.Do(ctx, "SHARD.UNFENCE", moveLo, moveHi).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, in, "3", 0).Err(); err != nil {
		t.Errorf("after unfence: %v", err)
	}
}

// BenchmarkMigrateMove moves a range of 1 KiB strings between two nodes on
// loopback, unlimited rate, and reports the copy's MB/s of wire bytes.
func BenchmarkMigrateMove(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, dst := benchPair(b)
		b.StartTimer()
		m := &migrate.Move{ID: "bench", Lo: moveLo, Hi: moveHi, Source: src, Target: dst, FenceLag: 10,
			Commit: func(context.Context) error { return nil }}
		res, err := m.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Bytes)/res.Copy.Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(res.Records)/res.Copy.Seconds(), "keys/s")
		b.SetBytes(res.Bytes)
	}
}

// benchPair starts a source holding about 200,000 keys of 1 KiB (about
// 100,000 in the moved range) and an empty target.
func benchPair(b *testing.B) (string, string) {
	src := migBenchNode(b, "a", "0", "0.5")
	dst := migBenchNode(b, "b", "0.5", "1")
	c := redis.NewClient(&redis.Options{Addr: src, Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	val := strings.Repeat("x", 1024)
	p := c.Pipeline()
	for i := 0; i < 400000; i++ {
		k := "bench" + strconv.Itoa(i)
		if rangemap.PositionOfHash(rangemap.PlacementHash([]byte(k), false)) >= 0.5 {
			continue
		}
		p.Set(ctx, k, val, 0)
		if p.Len() == 1000 {
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	return src, dst
}

// migBenchNode serves a node assigned [lo,hi) for a benchmark and returns its
// address.
func migBenchNode(b *testing.B, name, lo, hi string) string {
	addr := benchNode(b, 0, nil)
	c := dialRaw(b, addr)
	defer c.close()
	if got := c.do("SHARD.ASSIGN", name, lo, hi, "0", "FORCE"); got != ok {
		b.Fatalf("SHARD.ASSIGN: %q", got)
	}
	return addr
}

// TestMigrateStatusReply: MIGRATE.STATUS is a whole map in RESP2 and RESP3.
func TestMigrateStatusReply(t *testing.T) {
	src := startNode(t, "", nil)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		c := src.client(proto)
		id := "st" + strconv.Itoa(proto)
		if err := c.Do(ctx, "MIGRATE.START", id, moveLo, moveHi, dst.addr).Err(); err != nil {
			t.Fatal(err)
		}
		st, err := migrate.ReadStatus(ctx, c, id)
		if err != nil || st.Phase == "" {
			t.Fatalf("RESP%d: %+v %v", proto, st, err)
		}
		r, err := c.Do(ctx, "MIGRATE.STATUS", id).Result()
		n := 0
		switch r := r.(type) {
		case []any:
			n = len(r) / 2
		case map[any]any:
			n = len(r)
			if _, ok := r["error"]; !ok {
				t.Errorf("RESP3: no error field: %v", r)
			}
		}
		if err != nil || n != 12 {
			t.Errorf("RESP%d: %d fields, %v", proto, n, err)
		}
		if err := c.Do(ctx, "MIGRATE.ABORT", id).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzMigrateReadReply: the source's reader of the target's replies never
// panics, and reads a reply it accepts as a whole.
func FuzzMigrateReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", ":1\r\n", "-ERR x\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n:1\r\n+OK\r\n", "*1\r\n-E\r\n", "$9999999999\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readReply(bufio.NewReader(bytes.NewReader(b)))
	})
}

// TestMigrateFlushDuringCatchUp: a FLUSHDB and a FLUSHALL on the source
// during catch-up reach the target in the stream's order.
func TestMigrateFlushDuringCatchUp(t *testing.T) {
	src := startNode(t, "", nil)
	dst := startNode(t, "", nil)
	assignNode(t, src, "a", "0", "0.5")
	assignNode(t, dst, "b", "0.5", "1")
	sc := streamClient(t, src.addr)
	dc := streamClient(t, dst.addr)
	fillAllTypes(t, sc, "fl", 100)
	ctx := context.Background()
	if err := sc.Do(ctx, "MIGRATE.START", "fl", moveLo, moveHi, dst.addr).Err(); err != nil {
		t.Fatal(err)
	}
	wait := func(done func(migrate.Status) bool) {
		for {
			st, err := migrate.ReadStatus(ctx, sc, "fl")
			if err != nil || st.Phase == "failed" {
				t.Fatalf("%+v %v", st, err)
			}
			if done(st) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(func(st migrate.Status) bool { return st.Phase == "catchup" && st.Lag == 0 && st.Acked == st.SentSeq })
	c := sc // writes of keys of either node's range
	p := c.Pipeline()
	p.Do(ctx, "SELECT", 3)
	p.Do(ctx, "FLUSHDB")
	p.Set(ctx, "fl3:1:s", "after-flushdb", 0)
	p.Do(ctx, "SELECT", 0)
	p.Set(ctx, "fl0:2:s", "before-flushall", 0)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "FLUSHALL").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		c.Set(ctx, "after"+strconv.Itoa(i), i, 0) // some in the range
	}
	if err := c.Do(ctx, "SHARD.FENCE", moveLo, moveHi).Err(); err != nil {
		t.Fatal(err)
	}
	wait(func(st migrate.Status) bool { return st.Drained && st.Acked >= st.LastSeq })
	want, got := dumpRange(t, sc, inMove), dumpRange(t, dc, inMove)
	if len(want) == 0 || fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("after the flushes: source %v\ntarget %v", want, got)
	}
	if err := c.Do(ctx, "MIGRATE.ABORT", "fl").Err(); err != nil {
		t.Fatal(err)
	}
}
