package integration

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/resp"
)

// Blocking pops through the real proxy and nodes (proxy/blocking.go,
// shardnode/blocking.go).

// blockConn is a raw client connection to the proxy: a blocking command
// is sent, and its reply read later.
type blockConn struct {
	t  *testing.T
	nc net.Conn
	rr *resp.ReplyReader
}

func dialBlock(t *testing.T, addr string) *blockConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &blockConn{t: t, nc: nc, rr: resp.NewReplyReader(nc, 4096)}
}

func (b *blockConn) send(args ...string) {
	b.t.Helper()
	if _, err := b.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		b.t.Fatal(err)
	}
}

// next reads one reply, waiting at most 30 s.
func (b *blockConn) next() string {
	b.t.Helper()
	_ = b.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	r, err := b.rr.Next()
	if err != nil {
		b.t.Fatalf("reading a reply: %v", err)
	}
	return string(r)
}

// waitNodeBlocked waits until node i says n clients are blocked on it.
func waitNodeBlocked(t *testing.T, node *redis.Client, n int) {
	t.Helper()
	want := "blocked_clients:" + strconv.Itoa(n) + "\r\n"
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := node.Info(context.Background(), "clients").Result()
		if err == nil && strings.Contains(info, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never says %q: %q, %v", want, info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func bulk(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// TestBlockingPopsThroughProxy: 20 clients blocked in BRPOP on one list are
// served in the order they blocked by 20 pushes while 50 other clients go
// on getting their replies (their latency is logged, not asserted); a
// blocked client that leaves loses no element; a blocked command outlives
// the proxy's node timeout; keys on two shards get CROSSSHARD.
func TestBlockingPopsThroughProxy(t *testing.T) {
	c := StartCluster(t, Options{ProxyTimeout: "500ms"})
	ctx := context.Background()
	rdb := c.Client()
	const shard = 1
	node := c.NodeClient(shard, "")
	queue := c.KeysOn(shard, "bq:queue", 1)[0]

	t.Run("20 blocked served in order while 50 others are served", func(t *testing.T) {
		const blockedN, others = 20, 50
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var lat [2][]time.Duration // before any client blocked, and while they are
		var phase atomic.Int32
		var ops atomic.Int64
		for i := 0; i < others; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := c.Client()
				// Keys on every shard, the blocked clients' one among them.
				k := c.KeysOn(i%len(c.Map.Shards), fmt.Sprintf("bq:other%d", i), 1)[0]
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					v := strconv.Itoa(j)
					start := time.Now()
					if err := cl.Set(ctx, k, v, 0).Err(); err != nil {
						t.Errorf("SET %s while clients are blocked: %v", k, err)
						return
					}
					got, err := cl.Get(ctx, k).Result()
					d := time.Since(start)
					if err != nil || got != v {
						t.Errorf("GET %s = %q, %v; want %q", k, got, err, v)
						return
					}
					mu.Lock()
					p := phase.Load()
					lat[p] = append(lat[p], d)
					mu.Unlock()
					ops.Add(1)
				}
			}()
		}
		for ops.Load() < 1000 {
			time.Sleep(10 * time.Millisecond) // the others' usual latency, before anyone blocks
		}
		phase.Store(1)
		blocked := make([]*blockConn, blockedN)
		for i := range blocked {
			blocked[i] = dialBlock(t, c.ProxyAddr)
			blocked[i].send("BRPOP", queue, "0")
			waitNodeBlocked(t, node, i+1)
		}
		before := ops.Load()
		for i := 0; i < blockedN; i++ {
			must(t, rdb.LPush(ctx, queue, fmt.Sprintf("job%02d", i)).Err())
		}
		for i, b := range blocked {
			want := "*2\r\n" + bulk(queue) + bulk(fmt.Sprintf("job%02d", i))
			if got := b.next(); got != want {
				t.Errorf("blocked client %d: %q, want %q", i, got, want)
			}
		}
		close(stop)
		wg.Wait()
		if n, err := rdb.LLen(ctx, queue).Result(); err != nil || n != 0 {
			t.Errorf("LLEN after the pops: %d, %v", n, err)
		}
		for p, l := range lat {
			slices.Sort(l)
			if len(l) == 0 {
				continue
			}
			when := "before any client blocked"
			if p == 1 {
				when = fmt.Sprintf("while %d clients blocked (%d during the pushes)", blockedN, ops.Load()-before)
			}
			t.Logf("%d SET+GET round trips of %d other clients %s: p50 %v, p99 %v, max %v",
				len(l), others, when, l[len(l)/2], l[len(l)*99/100], l[len(l)-1])
		}
	})

	t.Run("a blocked client that leaves loses nothing", func(t *testing.T) {
		l := c.KeysOn(shard, "bq:gone", 1)[0]
		gone := dialBlock(t, c.ProxyAddr)
		gone.send("BLPOP", l, "0")
		waitNodeBlocked(t, node, 1)
		stays := dialBlock(t, c.ProxyAddr)
		stays.send("BLMOVE", l, c.KeysOn(shard, "bq:dst", 1)[0], "LEFT", "LEFT", "0")
		waitNodeBlocked(t, node, 2)
		gone.nc.Close()
		waitNodeBlocked(t, node, 1)
		must(t, rdb.RPush(ctx, l, "a").Err())
		if got := stays.next(); got != bulk("a") {
			t.Fatalf("the waiter after the one that left: %q", got)
		}
		gone2 := dialBlock(t, c.ProxyAddr)
		z := c.KeysOn(shard, "bq:z", 1)[0]
		gone2.send("BZPOPMIN", z, "0")
		waitNodeBlocked(t, node, 1)
		gone2.nc.Close()
		waitNodeBlocked(t, node, 0)
		must(t, rdb.RPush(ctx, l, "b").Err())
		must(t, rdb.ZAdd(ctx, z, redis.Z{Score: 1, Member: "m"}).Err())
		if got, err := rdb.LRange(ctx, l, 0, -1).Result(); err != nil || !slices.Equal(got, []string{"b"}) {
			t.Fatalf("list after its blocked client left: %q, %v", got, err)
		}
		if n, err := rdb.ZCard(ctx, z).Result(); err != nil || n != 1 {
			t.Fatalf("sorted set after its blocked client left: %d, %v", n, err)
		}

		// CLIENT KILL of a blocked client: the same.
		killed := dialBlock(t, c.ProxyAddr)
		killed.send("CLIENT", "ID")
		id := strings.TrimSuffix(strings.TrimPrefix(killed.next(), ":"), "\r\n")
		k := c.KeysOn(shard, "bq:killed", 1)[0]
		killed.send("BLPOP", k, "0")
		waitNodeBlocked(t, node, 1)
		must(t, rdb.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
		waitNodeBlocked(t, node, 0)
		must(t, rdb.RPush(ctx, k, "c").Err())
		if n, err := rdb.LLen(ctx, k).Result(); err != nil || n != 1 {
			t.Fatalf("list after its blocked client was killed: %d, %v", n, err)
		}
	})

	t.Run("blocked longer than the proxy's node timeout", func(t *testing.T) {
		l := c.KeysOn(shard, "bq:long", 1)[0]
		b := dialBlock(t, c.ProxyAddr)
		b.send("BLPOP", l, "0")
		waitNodeBlocked(t, node, 1)
		time.Sleep(1500 * time.Millisecond) // three times the proxy's -timeout
		must(t, rdb.RPush(ctx, l, "late").Err())
		if got, want := b.next(), "*2\r\n"+bulk(l)+bulk("late"); got != want {
			t.Fatalf("BLPOP blocked past the proxy timeout: %q, want %q", got, want)
		}
		// The node's timeout, longer than the proxy's, gives the null.
		b.send("BZPOPMAX", l+"-z", "0.8")
		b.send("PING")
		if got := b.next(); got != "*-1\r\n" {
			t.Fatalf("BZPOPMAX at its timeout: %q", got)
		}
		if got := b.next(); got != "+PONG\r\n" {
			t.Fatalf("PING pipelined after the timeout: %q", got)
		}
	})

	t.Run("RESP3 and another database", func(t *testing.T) {
		r3 := c.ClientWith(func(o *redis.Options) { o.Protocol = 3; o.DB = 5 })
		z := c.KeysOn(shard, "bq:r3", 1)[0]
		got := make(chan *redis.ZWithKey, 1)
		go func() {
			v, err := r3.BZPopMin(ctx, 0, z).Result()
			if err != nil {
				t.Errorf("BZPOPMIN in RESP3: %v", err)
			}
			got <- v
		}()
		waitNodeBlocked(t, node, 1)
		w := c.ClientWith(func(o *redis.Options) { o.DB = 5 })
		must(t, w.ZAdd(ctx, z, redis.Z{Score: 2.5, Member: "m"}).Err())
		if v := <-got; v == nil || v.Key != z || v.Member != "m" || v.Score != 2.5 {
			t.Fatalf("BZPOPMIN in RESP3, database 5: %+v", v)
		}
	})

	t.Run("keys on two shards", func(t *testing.T) {
		a, o := c.KeysOn(0, "bq:x", 1)[0], c.KeysOn(1, "bq:y", 1)[0]
		name := func(i int) string { return c.Map.Shards[i].Name }
		for _, args := range [][]any{
			{"BLPOP", a, o, "0"}, {"BRPOP", a, o, "0"}, {"BLMOVE", a, o, "LEFT", "RIGHT", "0"},
			{"BRPOPLPUSH", a, o, "0"}, {"BLMPOP", "0", "2", a, o, "LEFT"},
			{"BZPOPMIN", a, o, "0"}, {"BZPOPMAX", a, o, "0"}, {"BZMPOP", "0", "2", a, o, "MIN"},
		} {
			cmd := strings.ToLower(args[0].(string))
			err := rdb.Do(ctx, args...).Err()
			if want := crossShard(cmd, name(0), name(1)); err == nil || err.Error() != want {
				t.Errorf("%v: %v, want %q", args, err, want)
			}
		}
	})

	t.Run("inside MULTI a blocking pop does not block", func(t *testing.T) {
		l := c.KeysOn(shard, "bq:multi", 1)[0]
		b := dialBlock(t, c.ProxyAddr)
		for _, args := range [][]string{{"MULTI"}, {"BLPOP", l, "0"}, {"RPUSH", l, "x"}, {"BRPOP", l, "0"}, {"EXEC"}} {
			b.send(args...)
		}
		for _, want := range []string{"+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "+QUEUED\r\n",
			"*3\r\n*-1\r\n:1\r\n*2\r\n" + bulk(l) + bulk("x")} {
			if got := b.next(); got != want {
				t.Fatalf("MULTI with blocking pops: %q, want %q", got, want)
			}
		}
	})
}

// TestBlockedClientsNodeRestart: clients blocked on a node that is killed
// get TRYAGAIN, which they may retry; once the node is back a blocking pop
// blocks and is served again.
func TestBlockedClientsNodeRestart(t *testing.T) {
	c := StartCluster(t, Options{AppendFsync: "always"})
	ctx := context.Background()
	rdb := c.Client()
	const shard = 2
	node := c.NodeClient(shard, "")
	l := c.KeysOn(shard, "br:list", 1)[0]
	var blocked []*blockConn
	keys := c.KeysOn(shard, "br:k", 2)
	for i, cmd := range [][]string{{"BLPOP", l, "0"}, {"BRPOPLPUSH", l, keys[0], "0"}, {"BZPOPMIN", keys[1], "0"}} {
		b := dialBlock(t, c.ProxyAddr)
		b.send(cmd...)
		blocked = append(blocked, b)
		waitNodeBlocked(t, node, i+1)
	}
	c.Nodes[shard].Kill()
	tryAgain := "-" + c.TryAgainPrefix(shard)
	for i, b := range blocked {
		if got := b.next(); !strings.HasPrefix(got, tryAgain) {
			t.Errorf("blocked client %d after the node was killed: %q, want %q...", i, got, tryAgain)
		}
	}
	c.StartNode(shard)
	node = c.NodeClient(shard, "")
	b := blocked[0]
	b.send("BLPOP", l, "0")
	waitNodeBlocked(t, node, 1)
	must(t, rdb.RPush(ctx, l, "after").Err())
	if got, want := b.next(), "*2\r\n"+bulk(l)+bulk("after"); got != want {
		t.Fatalf("BLPOP after the node came back: %q, want %q", got, want)
	}

	// A proxy shutting down does not wait for its blocked clients: they
	// get TRYAGAIN, and the node pops nothing for them.
	b.send("BLPOP", l, "0")
	waitNodeBlocked(t, node, 1)
	c.Proxy.StopClean(t, syscall.SIGTERM)
	if got := b.next(); !strings.HasPrefix(got, "-TRYAGAIN ") {
		t.Fatalf("blocked client when the proxy shut down: %q", got)
	}
	waitNodeBlocked(t, node, 0)
	must(t, node.RPush(ctx, l, "kept").Err())
	if got, err := node.LRange(ctx, l, 0, -1).Result(); err != nil || !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("list after the proxy shut down: %q, %v", got, err)
	}
}

// TestJobQueueSurvivesNodeKill: producers LPUSH jobs, consumers
// BRPOPLPUSH them into a processing list and LREM them when done, through
// the proxy, while the node is SIGKILLed and restarted under appendfsync
// always. No acknowledged job is lost: each is done, or still in the queue
// or the processing list (where a consumer that lost its reply left it);
// none is done twice.
func TestJobQueueSurvivesNodeKill(t *testing.T) {
	c := StartCluster(t, Options{AppendFsync: "always"})
	ctx := context.Background()
	const shard = 0
	keys := c.KeysOn(shard, "jq:list", 2)
	queue, processing := keys[0], keys[1]
	const producers, consumers, perProducer = 2, 4, 150

	var mu sync.Mutex
	acked := map[string]bool{}
	done := map[string]int{}
	var produced atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.Client()
			for i := 0; i < perProducer; i++ {
				job := fmt.Sprintf("job-%d-%d", p, i)
				for {
					err := cl.LPush(ctx, queue, job).Err()
					if err == nil {
						mu.Lock()
						acked[job] = true
						mu.Unlock()
						produced.Add(1)
						break
					}
					if strings.HasPrefix(err.Error(), "UNCERTAIN") {
						break // maybe pushed: not counted as acknowledged
					}
					time.Sleep(20 * time.Millisecond) // TRYAGAIN while the node is down
				}
			}
		}()
	}
	stop := make(chan struct{})
	var cwg sync.WaitGroup
	for i := 0; i < consumers; i++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			cl := c.Client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				job, err := cl.BRPopLPush(ctx, queue, processing, time.Second).Result()
				if err == redis.Nil {
					continue
				}
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				// Done once LREM says so; an LREM whose reply was lost
				// with the node is retried, and a retry that finds
				// nothing means the lost one removed it (only this
				// consumer holds the job).
				uncertain := false
				for {
					n, err := cl.LRem(ctx, processing, 1, job).Result()
					if err != nil {
						uncertain = uncertain || strings.HasPrefix(err.Error(), "UNCERTAIN")
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if n == 1 || uncertain {
						mu.Lock()
						done[job]++
						mu.Unlock()
					}
					break
				}
			}
		}()
	}
	for produced.Load() < producers*perProducer/3 {
		time.Sleep(5 * time.Millisecond)
	}
	c.Nodes[shard].Kill()
	c.StartNode(shard)
	wg.Wait()
	rdb := c.Client()
	for {
		n, err := rdb.LLen(ctx, queue).Result()
		if err == nil && n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	cwg.Wait()
	left, err := rdb.LRange(ctx, processing, 0, -1).Result()
	must(t, err)
	inFlight := map[string]bool{}
	for _, j := range left {
		inFlight[j] = true
	}
	lost := 0
	for job := range acked {
		if done[job] == 0 && !inFlight[job] {
			lost++
			t.Errorf("job %s acknowledged and lost", job)
		}
	}
	for job, n := range done {
		if n > 1 {
			t.Errorf("job %s done %d times", job, n)
		}
	}
	t.Logf("%d jobs acknowledged, %d done, %d left in the processing list, %d lost", len(acked), len(done), len(left), lost)
}
