package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// The commands that move values between shards reply as Redis does on one
// server, types and expiry included: the same script runs against
// redis-server and through the proxy over three shards, each step's keys
// on different shards, in RESP2 and RESP3.
func TestCrossShardMovesLikeRedis(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	a := c.keysOn(0, 13, "xc-a")
	b := c.keysOn(1, 13, "xc-b")
	d := c.keysOn(2, 13, "xc-d")
	const at = "4102444800000" // 2100-01-01, so PEXPIRETIME replies the same
	S := redistest.S
	U := func(args ...string) redistest.Step { return redistest.Step{Args: args, SortElems: true} }
	steps := []redistest.Step{
		// SMOVE
		S(0, "SADD", a[0], "x", "y", "z"), S(0, "SADD", b[0], "w"), S(0, "PEXPIREAT", a[0], at),
		S(0, "SMOVE", a[0], b[0], "x"), U("SMEMBERS", a[0]), U("SMEMBERS", b[0]), S(0, "PEXPIRETIME", a[0]),
		S(0, "SMOVE", a[0], b[0], "nope"), S(0, "SMOVE", "missing"+a[0], b[0], "x"),
		S(0, "SET", d[0], "str"), S(0, "SMOVE", a[0], d[0], "y"), S(0, "SMOVE", d[0], a[0], "y"), U("SMEMBERS", a[0]),
		S(0, "SMOVE", a[0], b[0], "y"), S(0, "SMOVE", a[0], b[0], "z"), S(0, "EXISTS", a[0]), S(0, "SCARD", b[0]),
		S(0, "SMOVE", a[0], d[1], "w"), S(0, "SMOVE", b[0], d[1], "w"), U("SMEMBERS", d[1]),
		// LMOVE, RPOPLPUSH
		S(0, "RPUSH", a[1], "1", "2", "3"), S(0, "PEXPIREAT", a[1], at),
		S(0, "LMOVE", a[1], b[1], "LEFT", "RIGHT"), S(0, "LRANGE", a[1], "0", "-1"), S(0, "LRANGE", b[1], "0", "-1"),
		S(0, "PEXPIRETIME", a[1]), S(0, "PEXPIRETIME", b[1]),
		S(0, "RPOPLPUSH", a[1], b[1]), S(0, "LRANGE", b[1], "0", "-1"),
		S(0, "LMOVE", a[1], b[1], "RIGHT", "LEFT"), S(0, "EXISTS", a[1]), S(0, "LRANGE", b[1], "0", "-1"),
		S(0, "LMOVE", "missing"+a[1], b[1], "LEFT", "LEFT"), S(0, "RPOPLPUSH", "missing"+a[1], b[1]),
		S(0, "LMOVE", b[1], d[0], "LEFT", "LEFT"), S(0, "LMOVE", b[1], a[1], "UP", "LEFT"),
		// RENAME, RENAMENX, COPY of collections
		S(0, "HSET", a[2], "f", "v", "g", "w"), S(0, "PEXPIREAT", a[2], at),
		S(0, "RENAME", a[2], b[2]), S(0, "EXISTS", a[2]), S(0, "HGET", b[2], "f"), S(0, "HLEN", b[2]), S(0, "PEXPIRETIME", b[2]),
		S(0, "ZADD", a[3], "1", "m", "2.5", "n"),
		S(0, "RENAMENX", a[3], b[2]), S(0, "RENAMENX", a[3], d[2]), S(0, "ZRANGE", d[2], "0", "-1", "WITHSCORES"),
		S(0, "COPY", d[2], a[3]), S(0, "COPY", d[2], b[2]), S(0, "COPY", d[2], b[2], "REPLACE"), S(0, "TYPE", b[2]),
		S(0, "ZSCORE", b[2], "n"), S(0, "COPY", d[2], a[4], "DB", "0"), S(0, "ZCARD", a[4]),
		S(0, "RENAME", "missing"+a[2], b[3]), S(0, "COPY", "missing"+a[2], b[3]),
		// COPY ... DB into another database across shards.
		S(0, "COPY", d[2], a[5], "DB", "1"), S(0, "COPY", d[2], a[5], "DB", "1"), S(0, "COPY", d[2], d[2], "DB", "1"),
		S(0, "COPY", "missing"+d[2], a[5], "DB", "1"), S(0, "COPY", d[2], a[5], "DB", "1", "REPLACE"),
		S(0, "COPY", d[2], a[5], "DB", "16"), S(0, "COPY", d[2], a[5], "DB", "x"), S(0, "COPY", d[2], a[5], "DB", "1", "NOPE"),
		S(0, "SELECT", "1"), S(0, "ZRANGE", a[5], "0", "-1", "WITHSCORES"), S(0, "TYPE", d[2]), S(0, "FLUSHDB"), S(0, "SELECT", "0"),
		S(0, "RPUSH", b[3], "l"), S(0, "RENAME", b[3], d[0]), S(0, "TYPE", d[0]), S(0, "LRANGE", d[0], "0", "-1"),
		// The *STORE commands
		S(0, "SADD", a[5], "1", "2", "3"), S(0, "SADD", b[5], "2", "3", "4"), S(0, "SADD", d[5], "3", "9"),
		S(0, "SINTERSTORE", a[6], a[5], b[5], d[5]), U("SMEMBERS", a[6]),
		S(0, "SUNIONSTORE", b[6], a[5], b[5], d[5]), S(0, "SCARD", b[6]),
		S(0, "SDIFFSTORE", d[6], a[5], b[5]), U("SMEMBERS", d[6]),
		S(0, "SET", d[7], "str"), S(0, "SINTERSTORE", a[6], a[5], d[7]), S(0, "SCARD", a[6]),
		S(0, "SUNIONSTORE", a[6], "missing"+b[6], "missing"+d[6]), S(0, "EXISTS", a[6]),
		S(0, "ZADD", a[7], "1", "x", "2", "y"), S(0, "ZADD", b[7], "10", "y", "20", "z"),
		S(0, "ZUNIONSTORE", d[8], "2", a[7], b[7], "WEIGHTS", "2", "1", "AGGREGATE", "MAX"),
		S(0, "ZRANGE", d[8], "0", "-1", "WITHSCORES"),
		S(0, "ZINTERSTORE", d[8], "2", a[7], b[7]), S(0, "ZRANGE", d[8], "0", "-1", "WITHSCORES"),
		S(0, "ZDIFFSTORE", b[8], "2", a[7], b[7]), S(0, "ZRANGE", b[8], "0", "-1", "WITHSCORES"),
		S(0, "ZRANGESTORE", b[8], a[7], "0", "-1"), S(0, "ZRANGESTORE", b[8], a[7], "(1", "(2", "BYSCORE"), S(0, "EXISTS", b[8]),
		S(0, "ZUNIONSTORE", d[8], "2", a[7], b[7], "WEIGHTS", "1"),
		// BITOP, SORT ... STORE, LCS
		S(0, "SET", a[9], "abc"), S(0, "SET", b[9], "x"),
		S(0, "BITOP", "OR", d[9], a[9], b[9]), S(0, "GET", d[9]), S(0, "BITOP", "NOT", d[9], a[9]), S(0, "GET", d[9]),
		S(0, "BITOP", "AND", d[9], a[9], b[5]),
		S(0, "RPUSH", a[10], "3", "1", "2"), S(0, "SORT", a[10], "STORE", b[10]), S(0, "LRANGE", b[10], "0", "-1"),
		S(0, "SORT", a[10], "DESC", "LIMIT", "0", "2", "STORE", b[10]), S(0, "LRANGE", b[10], "0", "-1"),
		S(0, "SET", a[11], "ohmytext"), S(0, "SET", b[11], "mynewtext"),
		S(0, "LCS", a[11], b[11]), S(0, "LCS", a[11], b[11], "LEN"), S(0, "LCS", a[11], b[5]),
		// LMPOP, ZMPOP: the first key holding elements may be on another
		// shard than the first key.
		S(0, "RPUSH", b[12], "p", "q", "r"), S(0, "LMPOP", "2", a[12], b[12], "LEFT", "COUNT", "2"),
		S(0, "LRANGE", b[12], "0", "-1"), S(0, "LMPOP", "2", a[12], d[12], "RIGHT"),
		S(0, "ZADD", d[12]+"z", "1", "m", "2", "n"), S(0, "ZMPOP", "2", a[12], d[12]+"z", "MAX"),
		S(0, "ZRANGE", d[12]+"z", "0", "-1", "WITHSCORES"), S(0, "LMPOP", "2", a[12], d[12]+"z", "LEFT"),
	}
	likeRedis(t, c, steps)
}

// likeRedis runs steps against a redis-server and through the proxy, in
// RESP2 and RESP3, and reports each step whose replies differ.
func likeRedis(t *testing.T, c *cluster, steps []redistest.Step) {
	for _, proto := range []int{2, 3} {
		redisAddr := redistest.Start(t)
		want := redistest.Transcript(t, redisAddr, []int{proto}, steps)
		c.client(2).FlushAll(context.Background())
		got := redistest.Transcript(t, c.addr, []int{proto}, steps)
		redistest.Compare(t, steps, want, got)
	}
}

// MULTI ... EXEC over collections on three shards replies as Redis does:
// commands whose keys share a shard (each shard prepares its own), and
// commands whose own keys span shards (SMOVE a b, MSET a b), which run the
// whole transaction on one shard; errors inside stay per command, as in
// Redis.
func TestCrossShardMultiCollectionsLikeRedis(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	a := c.keysOn(0, 4, "xm-a")
	b := c.keysOn(1, 4, "xm-b")
	d := c.keysOn(2, 4, "xm-d")
	const at = "4102444800000"
	S, Tx := redistest.S, redistest.Tx
	q := func(args ...string) []string { return args }
	steps := []redistest.Step{
		Tx(0, q("HSET", a[0], "f", "1", "g", "2"), q("SADD", b[0], "x", "y"), q("ZADD", d[0], "1", "m", "2", "n"),
			q("LPUSH", a[1], "p", "q"), q("SET", b[1], "s"), q("HINCRBY", a[0], "f", "10"), q("SCARD", b[0]),
			q("ZINCRBY", d[0], "0.5", "m"), q("LRANGE", a[1], "0", "-1"), q("GET", b[1]), q("PEXPIREAT", d[0], at)),
		S(0, "HGET", a[0], "f"), S(0, "ZRANGE", d[0], "0", "-1", "WITHSCORES"), S(0, "PEXPIRETIME", d[0]),
		// A WRONGTYPE inside: that command's error, the others run.
		Tx(0, q("SADD", a[0], "z"), q("RPUSH", b[2], "1"), q("ZREM", d[0], "n"), q("HLEN", a[0])),
		S(0, "LRANGE", b[2], "0", "-1"), S(0, "ZCARD", d[0]),
		// Commands whose keys span shards, reading what earlier ones wrote.
		Tx(0, q("SADD", a[2], "u", "v"), q("SMOVE", a[2], b[0], "u"), q("SCARD", b[0]), q("SISMEMBER", a[2], "u"),
			q("MSET", a[3], "1", b[3], "2", d[3], "3"), q("INCR", b[3]), q("MGET", a[3], b[3], d[3]),
			q("RENAME", d[0], b[2]), q("LMOVE", a[1], d[1], "LEFT", "RIGHT"), q("ZSCORE", b[2], "m"),
			q("SUNIONSTORE", d[2], a[2], b[0]), q("GET", a[0])),
		// Keyless PING and ECHO run on a participant, the first first.
		Tx(0, q("PING"), q("SET", a[3], "p"), q("ECHO", "hello"), q("SET", d[3], "q"), q("PING", "msg")),
		S(0, "SCARD", d[2]), S(0, "TYPE", b[2]), S(0, "EXISTS", d[0]), S(0, "LRANGE", d[1], "0", "-1"),
		S(0, "MGET", a[3], b[3], d[3]), S(0, "PEXPIRETIME", b[2]),
	}
	likeRedis(t, c, steps)
}

// WATCH before a transaction that runs on one shard because a command's
// keys span shards: a change of the watched key fails EXEC with nothing
// applied, on whichever shard the watched key lives.
func TestCrossShardWatchWithSpanningCommand(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	r, other := c.client(2), c.client(2)
	a, b, w := c.keysOn(0, 1, "xw-a")[0], c.keysOn(1, 1, "xw-b")[0], c.keysOn(2, 1, "xw-w")[0]
	r.SAdd(ctx, a, "m1", "m2")
	for _, watched := range []string{w, a} {
		for _, interfere := range []bool{false, true} {
			err := r.Watch(ctx, func(tx *redis.Tx) error {
				tx.Get(ctx, watched)
				if interfere {
					other.Set(ctx, watched+"-changed", "x", 0)
					other.Append(ctx, w, "x")
					other.SAdd(ctx, a, "new-"+watched) // a new member each time: a change
				}
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.SMove(ctx, a, b, "m1")
					p.SAdd(ctx, b, "m3")
					return nil
				})
				return err
			}, watched)
			if interfere && !errors.Is(err, redis.TxFailedErr) || !interfere && err != nil {
				t.Fatalf("WATCH %s (a change: %v): %v", watched, interfere, err)
			}
			if got := r.SIsMember(ctx, b, "m1").Val(); got == interfere {
				t.Fatalf("WATCH %s (a change: %v): m1 moved: %v", watched, interfere, got)
			}
			r.SMove(ctx, b, a, "m1")
		}
	}
}

// Members moving between sets on three shards: SMOVEs in rounds, LMOVEs
// and RENAMEs, in opposite directions at once, while readers count every
// set and list in one MULTI: every count is the total (no move is seen
// half done), every mover finishes (no deadlock), and nothing is lost.
func TestCrossShardMovesIsolated(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	var sets, lists []string
	for i := 0; i < 3; i++ {
		sets = append(sets, c.keysOn(i, 2, fmt.Sprintf("mvs%d-", i))...)
		lists = append(lists, c.keysOn(i, 1, fmt.Sprintf("mvl%d-", i))...)
	}
	const perSet = 10
	r := c.client(2)
	for i, s := range sets {
		for m := 0; m < perSet; m++ {
			r.SAdd(ctx, s, fmt.Sprintf("m%d-%d", i, m))
		}
	}
	for _, l := range lists {
		r.RPush(ctx, l, "a", "b", "c")
	}
	total := perSet*len(sets) + 3*len(lists)
	count := func(r *redis.Client) (int, error) {
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, s := range sets {
				p.SCard(ctx, s)
			}
			for _, l := range lists {
				p.LLen(ctx, l)
			}
			return nil
		})
		n := 0
		for _, cmd := range cmds {
			n += int(cmd.(*redis.IntCmd).Val())
		}
		return n, err
	}
	concurrently(t, c, 6, 2, 30, func(r *redis.Client, w, i int) error {
		from, to := sets[(w+i)%len(sets)], sets[(w+2*i+1)%len(sets)]
		lf, lt := lists[(w+i)%len(lists)], lists[(w+i+1)%len(lists)]
		if w%2 == 1 {
			from, to, lf, lt = to, from, lt, lf
		}
		ms, err := r.SRandMemberN(ctx, from, 1).Result()
		if err == nil && len(ms) == 1 {
			err = r.SMove(ctx, from, to, ms[0]).Err()
		}
		if err == nil {
			err = r.LMove(ctx, lf, lt, "LEFT", "RIGHT").Err()
		}
		if err != nil && err != redis.Nil {
			return fmt.Errorf("move: %w", err)
		}
		return nil
	}, func(r *redis.Client) error {
		n, err := count(r)
		if err == nil && n != total {
			err = fmt.Errorf("a reader counted %d members, not %d", n, total)
		}
		return err
	})
	if n, err := count(r); err != nil || n != total {
		t.Fatalf("final count %d %v", n, err)
	}
}

// concurrently runs writers goroutines calling write rounds times (w is
// the writer, i the round) and readers goroutines calling read as often,
// each on a client of its own, and fails the test with the first error.
func concurrently(t *testing.T, c *cluster, writers, readers, rounds int, write func(r *redis.Client, w, i int) error, read func(r *redis.Client) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for g := 0; g < writers+readers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.client(2)
			for i := 0; i < rounds; i++ {
				var err error
				if g < writers {
					err = write(r, g, i)
				} else {
					err = read(r)
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
}

// Transfers in Redis's optimistic style, between accounts on different
// shards: WATCH both accounts, read them, write both in MULTI; EXEC fails
// when another transfer changed either, and the client tries again. A
// WATCH that missed a change on either shard would lose an update, and
// the total would move.
func TestCrossShardWatchBank(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	var acct []string
	for i := 0; i < 3; i++ {
		acct = append(acct, c.keysOn(i, 2, fmt.Sprintf("wbank%d-", i))...)
	}
	r := c.client(2)
	for _, a := range acct {
		r.Set(ctx, a, 100, 0)
	}
	total := 100 * len(acct)
	sum := func(r *redis.Client) (int, error) {
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range acct {
				p.Get(ctx, a)
			}
			return nil
		})
		n := 0
		for _, cmd := range cmds {
			v, _ := cmd.(*redis.StringCmd).Int()
			n += v
		}
		return n, err
	}
	concurrently(t, c, 6, 2, 25, func(r *redis.Client, w, i int) error {
		from, to := acct[(w+i)%len(acct)], acct[(w+i+1+w%2)%len(acct)]
		for {
			err := r.Watch(ctx, func(tx *redis.Tx) error {
				f, err := tx.Get(ctx, from).Int()
				if err != nil {
					return err
				}
				g, err := tx.Get(ctx, to).Int()
				if err != nil {
					return err
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, from, f-1, 0)
					p.Set(ctx, to, g+1, 0)
					return nil
				})
				return err
			}, from, to)
			if !errors.Is(err, redis.TxFailedErr) {
				return err
			}
		}
	}, func(r *redis.Client) error {
		n, err := sum(r)
		if err == nil && n != total {
			err = fmt.Errorf("a reader saw the sum %d, not %d", n, total)
		}
		return err
	})
	if n, err := sum(r); err != nil || n != total {
		t.Fatalf("final sum %d %v", n, err)
	}
}

// A client blocked on a list is served when a cross-shard transaction
// pushes to it, as after any write.
func TestCrossShardPushWakesBlocked(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	l, k := c.keysOn(1, 1, "wake-l")[0], c.keysOn(0, 1, "wake-k")[0]
	got := make(chan []string, 1)
	go func() {
		v, err := c.client(2).BLPop(ctx, 30*time.Second, l).Result() // a bound, not a wait
		if err != nil {
			v = []string{err.Error()}
		}
		got <- v
	}()
	r := c.client(2)
	// The pop is blocked once the node counts a blocked client.
	for end := time.Now().Add(30 * time.Second); !strings.Contains(r.Do(ctx, "INFO", "clients").String(), "blocked_clients:1"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the BLPOP never blocked")
		}
	}
	if _, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k, "v", 0)
		p.RPush(ctx, l, "x", "y")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v := <-got; fmt.Sprint(v) != "["+l+" x]" {
		t.Fatalf("BLPOP got %v", v)
	}
	if v := r.LRange(ctx, l, 0, -1).Val(); fmt.Sprint(v) != "[y]" {
		t.Fatalf("left in the list: %v", v)
	}
}

// Random scripts of collection commands over keys of three shards, alone
// and in MULTI, reply as redis-server replies: a differential test with a
// fixed seed, so a failure replays.
func TestCrossShardRandomLikeRedis(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	var keys []string
	for i := 0; i < 3; i++ {
		keys = append(keys, c.keysOn(i, 2, fmt.Sprintf("rnd%d-", i))...)
	}
	rng := rand.New(rand.NewPCG(16, 7))
	key := func() string { return keys[rng.IntN(len(keys))] }
	member := func() string { return fmt.Sprint("m", rng.IntN(4)) }
	cmd := func() []string {
		switch rng.IntN(21) {
		case 0:
			return []string{"SADD", key(), member(), member()}
		case 1:
			return []string{"SREM", key(), member()}
		case 2:
			return []string{"SMOVE", key(), key(), member()}
		case 3:
			return []string{"SUNIONSTORE", key(), key(), key()}
		case 4:
			return []string{"SINTERSTORE", key(), key(), key()}
		case 5:
			return []string{"RPUSH", key(), member()}
		case 6:
			return []string{"LMOVE", key(), key(), "LEFT", "RIGHT"}
		case 7:
			return []string{"LRANGE", key(), "0", "-1"}
		case 8:
			return []string{"HSET", key(), member(), member()}
		case 9:
			return []string{"HLEN", key()}
		case 10:
			return []string{"ZADD", key(), fmt.Sprint(rng.IntN(5)), member()}
		case 11:
			return []string{"ZUNIONSTORE", key(), "2", key(), key(), "AGGREGATE", "MAX"}
		case 12:
			return []string{"RENAME", key(), key()}
		case 13:
			return []string{"COPY", key(), key(), "REPLACE"}
		case 14:
			return []string{"TYPE", key()}
		case 15:
			return []string{"PEXPIREAT", key(), "4102444800000"}
		case 16:
			return []string{"PEXPIRETIME", key()}
		case 17:
			return []string{"SORT", key(), "ALPHA", "STORE", key()}
		case 18:
			return []string{"LMPOP", "2", key(), key(), "RIGHT"}
		case 19:
			return []string{"MSET", key(), member(), key(), member()}
		default:
			return []string{"DEL", key()}
		}
	}
	var steps []redistest.Step
	for i := 0; i < 150; i++ {
		if rng.IntN(3) == 0 {
			var cmds [][]string
			for range 1 + rng.IntN(4) {
				cmds = append(cmds, cmd())
			}
			steps = append(steps, redistest.Tx(0, cmds...))
			continue
		}
		steps = append(steps, redistest.S(0, cmd()...))
	}
	for _, k := range keys {
		steps = append(steps, redistest.S(0, "TYPE", k), redistest.Step{Args: []string{"SMEMBERS", k}, SortElems: true},
			redistest.S(0, "LRANGE", k, "0", "-1"), redistest.S(0, "ZRANGE", k, "0", "-1", "WITHSCORES"), redistest.S(0, "HLEN", k))
	}
	likeRedis(t, c, steps)
}
