package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// MSET, MSETNX, DEL and UNLINK over keys of three shards are atomic
// cross-shard transactions with Redis's replies.
func TestCrossShardWrites(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		var k []string
		for i := 0; i < 3; i++ {
			k = append(k, c.keysOn(i, 2, fmt.Sprintf("xw%d-%d-", proto, i))...)
		}
		if err := r.MSet(ctx, k[0], "a", k[2], "b", k[4], "c").Err(); err != nil {
			t.Fatalf("MSET: %v", err)
		}
		if got := r.MGet(ctx, k[0], k[2], k[4]).Val(); fmt.Sprint(got) != "[a b c]" {
			t.Fatalf("after MSET: %v", got)
		}
		// MSETNX: one key exists, nothing is written anywhere.
		if ok, err := r.MSetNX(ctx, k[1], "x", k[3], "y", k[4], "z").Result(); err != nil || ok {
			t.Fatalf("MSETNX over an existing key: %v %v", ok, err)
		}
		if n := r.Exists(ctx, k[1], k[3]).Val(); n != 0 {
			t.Fatalf("a failed MSETNX wrote %d keys", n)
		}
		if ok, err := r.MSetNX(ctx, k[1], "x", k[3], "y", k[5], "z").Result(); err != nil || !ok {
			t.Fatalf("MSETNX: %v %v", ok, err)
		}
		r.Expire(ctx, k[0], 100e9)
		if n, err := r.Del(ctx, k[0], k[1], k[2], "missing"+k[0]).Result(); err != nil || n != 3 {
			t.Fatalf("DEL: %v %v", n, err)
		}
		if n, err := r.Unlink(ctx, k[3], k[4], k[5], k[0]).Result(); err != nil || n != 3 {
			t.Fatalf("UNLINK: %v %v", n, err)
		}
		if n := r.Exists(ctx, k...).Val(); n != 0 {
			t.Fatalf("keys left: %d", n)
		}
		// The keys are free again: plain commands run.
		if err := r.Set(ctx, k[0], "free", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// A reader never sees a cross-shard MSET half applied: each writer writes
// its pair with increasing versions; a reader that reads x then y must
// find y at least as new as x (x's version committed everywhere before x
// became readable, and y's key stays locked until it is applied), and the
// other way round.
func TestCrossShardMSetNeverHalfApplied(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	const pairs, rounds = 4, 150
	xs := c.keysOn(0, pairs, "half-x")
	ys := c.keysOn(1, pairs, "half-y")
	var wg sync.WaitGroup
	errs := make(chan error, 4*pairs)
	for p := 0; p < pairs; p++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := c.client(2)
			for v := 1; v <= rounds; v++ {
				if err := r.MSet(ctx, xs[p], v, ys[p], v).Err(); err != nil {
					errs <- fmt.Errorf("MSET: %w", err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			r := c.client(2)
			for i := 0; i < rounds; i++ {
				first, second := xs[p], ys[p]
				if i%2 == 1 {
					first, second = second, first
				}
				a, err1 := r.Get(ctx, first).Int()
				b, err2 := r.Get(ctx, second).Int()
				if err1 != nil && err1 != redis.Nil || err2 != nil && err2 != redis.Nil {
					errs <- fmt.Errorf("GET: %v %v", err1, err2)
					return
				}
				if b < a {
					errs <- fmt.Errorf("half applied: %s=%d then %s=%d", first, a, second, b)
					return
				}
				// A split read over locked keys waits in the proxy too.
				if err := r.MGet(ctx, first, second).Err(); err != nil {
					errs <- fmt.Errorf("MGET: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := c.client(2)
	for p := 0; p < pairs; p++ {
		if got := r.MGet(ctx, xs[p], ys[p]).Val(); fmt.Sprint(got) != fmt.Sprintf("[%d %d]", rounds, rounds) {
			t.Fatalf("pair %d at the end: %v", p, got)
		}
	}
}

// Many clients writing the same two keys of two shards in opposite orders
// all finish: conflicts die and retry, none waits on another.
func TestCrossShardNoDeadlock(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	a, b := c.keysOn(0, 1, "dl-a")[0], c.keysOn(1, 1, "dl-b")[0]
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.client(2)
			for i := 0; i < 40; i++ {
				v := strconv.Itoa(w*1000 + i)
				var err error
				if w%2 == 0 {
					err = r.MSet(ctx, a, v, b, v).Err()
				} else {
					err = r.MSet(ctx, b, v, a, v).Err()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := c.client(2)
	if got := r.MGet(ctx, a, b).Val(); got[0] != got[1] {
		t.Fatalf("the last writes differ: %v", got)
	}
}

// RENAME, RENAMENX, COPY, MSETNX and DEL across shards reply as Redis does
// on one server, expiry included: the same script runs against
// redis-server and through the proxy, with the key names of each step
// chosen so that source and destination live on different shards.
func TestCrossShardLikeRedis(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	a := c.keysOn(0, 3, "lr-a")
	b := c.keysOn(1, 3, "lr-b")
	d := c.keysOn(2, 2, "lr-d")
	const at = "4102444800000" // 2100-01-01, so PEXPIRETIME replies the same
	S := redistest.S
	steps := []redistest.Step{
		S(0, "SET", a[0], "v0"), S(0, "PEXPIREAT", a[0], at),
		S(0, "RENAME", a[0], b[0]), S(0, "EXISTS", a[0]), S(0, "GET", b[0]), S(0, "PEXPIRETIME", b[0]),
		S(0, "RENAME", a[0], b[1]),
		S(0, "SET", a[1], "v1"), S(0, "SET", b[1], "old"), S(0, "PEXPIREAT", b[1], at),
		S(0, "RENAME", a[1], b[1]), S(0, "GET", b[1]), S(0, "PEXPIRETIME", b[1]),
		S(0, "SET", a[1], "v2"),
		S(0, "RENAMENX", a[1], b[1]), S(0, "GET", a[1]), S(0, "GET", b[1]),
		S(0, "RENAMENX", a[1], d[0]), S(0, "GET", d[0]), S(0, "EXISTS", a[1]),
		S(0, "RENAMENX", "missing"+a[2], d[1]),
		S(0, "COPY", d[0], a[2]), S(0, "GET", a[2]), S(0, "GET", d[0]),
		S(0, "COPY", b[0], a[2]), S(0, "GET", a[2]),
		S(0, "COPY", b[0], a[2], "REPLACE"), S(0, "GET", a[2]), S(0, "PEXPIRETIME", a[2]),
		S(0, "COPY", "missing"+a[2], d[1]),
		S(0, "MSETNX", a[0], "1", b[2], "2", d[1], "3"), S(0, "MGET", a[0], b[2], d[1]),
		S(0, "MSETNX", a[0], "x", b[2], "y", d[0], "z"), S(0, "MGET", a[0], b[2], d[0]),
		S(0, "DEL", a[0], b[2], d[1], "missing"+a[0]), S(0, "UNLINK", a[1], a[2], b[0], d[0]),
		S(0, "MSET", a[0], "p", b[0], "q", d[0], "r"), S(0, "MGET", a[0], b[0], d[0]),
	}
	likeRedis(t, c, steps)
}

// go-redis TxPipelined (MULTI ... EXEC) over keys of three shards runs as
// one transaction with the replies in the client's order; with WATCH, a
// change of a watched key fails EXEC with nothing applied.
func TestCrossShardMultiExec(t *testing.T) {
	crossShardMultiExec(t, startCluster(t, clusterOpts{nodes: 3}))
}

// crossShardMultiExec is TestCrossShardMultiExec on the 3-node cluster c.
func crossShardMultiExec(t *testing.T, c *cluster) {
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		var k []string
		for i := 0; i < 3; i++ {
			k = append(k, c.keysOn(i, 1, fmt.Sprintf("mx%d-%d-", proto, i))[0])
		}
		r.Set(ctx, k[2], "10", 0)
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k[0], "a", 0)
			p.IncrBy(ctx, k[2], 5)
			p.Get(ctx, k[1])
			p.Append(ctx, k[1], "xy")
			p.Get(ctx, k[0])
			return nil
		})
		if err != nil && err != redis.Nil {
			t.Fatalf("TxPipelined: %v", err)
		}
		if cmds[1].(*redis.IntCmd).Val() != 15 || cmds[2].(*redis.StringCmd).Err() != redis.Nil ||
			cmds[3].(*redis.IntCmd).Val() != 2 || cmds[4].(*redis.StringCmd).Val() != "a" {
			t.Fatalf("replies: %v", cmds)
		}
		if got := fmt.Sprint(r.MGet(ctx, k[0], k[1], k[2]).Val()); got != "[a xy 15]" {
			t.Fatalf("after EXEC: %s", got)
		}
		// WATCH one shard, write all three: a change fails the EXEC.
		other := c.client(proto)
		for _, interfere := range []bool{false, true} {
			err := r.Watch(ctx, func(tx *redis.Tx) error {
				n, err := tx.Get(ctx, k[2]).Int()
				if err != nil {
					return err
				}
				if interfere {
					other.Set(ctx, k[2], "100", 0)
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, k[0], n+1, 0)
					p.Set(ctx, k[1], n+1, 0)
					p.Set(ctx, k[2], n+1, 0)
					return nil
				})
				return err
			}, k[2])
			if interfere && !errors.Is(err, redis.TxFailedErr) || !interfere && err != nil {
				t.Fatalf("WATCH (a change: %v): %v", interfere, err)
			}
		}
		if got := fmt.Sprint(r.MGet(ctx, k[0], k[1], k[2]).Val()); got != "[16 16 100]" {
			t.Fatalf("after the WATCH transactions: %s", got)
		}
	})
}

// A bank: accounts on three shards, clients moving money between them in
// cross-shard MULTI transactions (INCRBY, DECRBY), readers summing every
// balance in one MULTI of GETs; every sum is the total, and opposite
// transfers between the same accounts all finish.
func TestCrossShardBank(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	var acct []string
	for i := 0; i < 3; i++ {
		acct = append(acct, c.keysOn(i, 3, fmt.Sprintf("bank%d-", i))...)
	}
	const start = 100
	r := c.client(2)
	for _, a := range acct {
		r.Set(ctx, a, start, 0)
	}
	total := start * len(acct)
	sum := func(r *redis.Client) (int, error) {
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range acct {
				p.Get(ctx, a)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, cmd := range cmds {
			v, err := cmd.(*redis.StringCmd).Int()
			if err != nil {
				return 0, err
			}
			n += v
		}
		return n, nil
	}
	concurrently(t, c, 6, 2, 40, func(r *redis.Client, w, i int) error {
		from, to := acct[(w+i)%len(acct)], acct[(w+2*i+1)%len(acct)]
		if w%2 == 1 {
			from, to = to, from
		}
		if _, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.DecrBy(ctx, from, 3)
			p.IncrBy(ctx, to, 3)
			return nil
		}); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
		return nil
	}, func(r *redis.Client) error {
		n, err := sum(r)
		if err == nil && n != total {
			err = fmt.Errorf("a reader saw the sum %d, not %d", n, total)
		}
		if err != nil {
			return fmt.Errorf("sum: %w", err)
		}
		return nil
	})
	if n, err := sum(r); err != nil || n != total {
		t.Fatalf("final sum %d %v", n, err)
	}
}

// FuzzSplitArray: any bytes split into elements that are each one whole
// reply, or nil.
func FuzzSplitArray(f *testing.F) {
	f.Add([]byte("*2\r\n+OK\r\n:1\r\n"))
	f.Add([]byte("*1\r\n$-1\r\n"))
	f.Add([]byte("*3\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range splitArray(b) {
			if n, err := resp.ReplyLen(e); err != nil || n != len(e) {
				t.Fatalf("element %q is not one reply", e)
			}
		}
	})
}
