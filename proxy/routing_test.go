package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every single-key command reaches the node that owns its key and replies as
// Redis does, in RESP2 and RESP3.
func TestRoutedSingleKeyCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		p := fmt.Sprintf("p%d", proto)
		k := func(s string) string { return p + s }
		check := func(name string, got, want any, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: got %v, want %v", name, got, want)
			}
		}
		s, err := r.Set(ctx, k("str"), "hello", 0).Result()
		check("SET", s, "OK", err)
		v, err := r.Get(ctx, k("str")).Result()
		check("GET", v, "hello", err)
		if _, err := r.Get(ctx, k("missing")).Result(); err != redis.Nil {
			t.Fatalf("GET missing: %v, want redis.Nil", err)
		}
		b, err := r.SetNX(ctx, k("str"), "x", 0).Result()
		check("SETNX", b, false, err)
		s, err = r.SetEx(ctx, k("ex"), "v", time.Minute).Result()
		check("SETEX", s, "OK", err)
		ttl, err := r.TTL(ctx, k("ex")).Result()
		if err != nil || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("TTL: %v %v", ttl, err)
		}
		pttl, err := r.PTTL(ctx, k("ex")).Result()
		if err != nil || pttl <= 0 {
			t.Fatalf("PTTL: %v %v", pttl, err)
		}
		s, err = r.Do(ctx, "PSETEX", k("pex"), 60000, "v").Text()
		check("PSETEX", s, "OK", err)
		v, err = r.GetSet(ctx, k("str"), "world").Result()
		check("GETSET", v, "hello", err)
		v, err = r.GetEx(ctx, k("str"), time.Hour).Result()
		check("GETEX", v, "world", err)
		n, err := r.Append(ctx, k("str"), "!").Result()
		check("APPEND", n, 6, err)
		n, err = r.StrLen(ctx, k("str")).Result()
		check("STRLEN", n, 6, err)
		v, err = r.GetRange(ctx, k("str"), 0, 2).Result()
		check("GETRANGE", v, "wor", err)
		n, err = r.SetRange(ctx, k("str"), 0, "W").Result()
		check("SETRANGE", n, 6, err)
		n, err = r.Incr(ctx, k("n")).Result()
		check("INCR", n, 1, err)
		n, err = r.IncrBy(ctx, k("n"), 10).Result()
		check("INCRBY", n, 11, err)
		n, err = r.Decr(ctx, k("n")).Result()
		check("DECR", n, 10, err)
		n, err = r.DecrBy(ctx, k("n"), 5).Result()
		check("DECRBY", n, 5, err)
		f, err := r.IncrByFloat(ctx, k("f"), 1.5).Result()
		check("INCRBYFLOAT", f, 1.5, err)
		typ, err := r.Type(ctx, k("str")).Result()
		check("TYPE", typ, "string", err)
		b, err = r.Expire(ctx, k("str"), time.Hour).Result()
		check("EXPIRE", b, true, err)
		b, err = r.PExpire(ctx, k("str"), time.Hour).Result()
		check("PEXPIRE", b, true, err)
		b, err = r.ExpireAt(ctx, k("str"), time.Now().Add(time.Hour)).Result()
		check("EXPIREAT", b, true, err)
		b, err = r.PExpireAt(ctx, k("str"), time.Now().Add(time.Hour)).Result()
		check("PEXPIREAT", b, true, err)
		et, err := r.ExpireTime(ctx, k("str")).Result()
		if err != nil || et < time.Duration(time.Now().Unix())*time.Second {
			t.Fatalf("EXPIRETIME: %v %v", et, err)
		}
		if _, err := r.PExpireTime(ctx, k("str")).Result(); err != nil {
			t.Fatalf("PEXPIRETIME: %v", err)
		}
		b, err = r.Persist(ctx, k("str")).Result()
		check("PERSIST", b, true, err)
		v, err = r.GetDel(ctx, k("str")).Result()
		check("GETDEL", v, "World!", err)
		if _, err := r.ObjectEncoding(ctx, k("n")).Result(); err != nil {
			t.Fatalf("OBJECT ENCODING: %v", err)
		}
		// Errors from the node come back as they are.
		if err := r.Incr(ctx, k("ex")).Err(); err == nil || !strings.Contains(err.Error(), "not an integer") {
			t.Fatalf("INCR on a string: %v", err)
		}
		// Arity errors are the proxy's, with Redis's text.
		if err := r.Do(ctx, "GET").Err(); err == nil || err.Error() != "ERR wrong number of arguments for 'get' command" {
			t.Fatalf("GET arity: %v", err)
		}
		if err := r.Do(ctx, "NOSUCH", "a", "b").Err(); err == nil || err.Error() != "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' " {
			t.Fatalf("unknown command: %v", err)
		}
		if err := r.Do(ctx, "SHARD.ASSIGN", "x", "0", "1", "0").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'SHARD.ASSIGN'") {
			t.Fatalf("SHARD.ASSIGN through the proxy: %v", err)
		}
	})
}

// MGET, MSET, DEL, UNLINK, EXISTS and TOUCH split by node and merge back in
// the client's order.
func TestSplitCommandsKeepOrder(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		var keys []string
		for i := 0; i < 3; i++ {
			keys = append(keys, c.keysOn(i, 4, fmt.Sprintf("split%d-", proto))...)
		}
		// Interleave owners: key i belongs to node i%3.
		var order []string
		for j := 0; j < 4; j++ {
			for i := 0; i < 3; i++ {
				order = append(order, keys[i*4+j])
			}
		}
		var pairs []any
		for i, k := range order {
			pairs = append(pairs, k, fmt.Sprintf("v%d", i))
		}
		if err := r.MSet(ctx, pairs...).Err(); err != nil {
			t.Fatal(err)
		}
		for i, k := range order {
			if got := c.nodes[c.owner(k)].client(t).Get(ctx, k).Val(); got != fmt.Sprintf("v%d", i) {
				t.Fatalf("%s on its node: %q", k, got)
			}
		}
		query := append([]string{"missing-a"}, order...)
		query = append(query, "missing-b", order[0])
		vals, err := r.MGet(ctx, query...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if vals[0] != nil || vals[len(vals)-2] != nil || vals[len(vals)-1] != "v0" {
			t.Fatalf("MGET ends: %v", vals)
		}
		for i := range order {
			if vals[i+1] != fmt.Sprintf("v%d", i) {
				t.Fatalf("MGET[%d] = %v, want v%d (all: %v)", i+1, vals[i+1], i, vals)
			}
		}
		// Counts are summed; a key named twice counts twice, as in Redis.
		n, err := r.Exists(ctx, append(order, order[1], "missing")...).Result()
		if err != nil || n != int64(len(order)+1) {
			t.Fatalf("EXISTS = %d %v", n, err)
		}
		n, err = r.Touch(ctx, order...).Result()
		if err != nil || n != int64(len(order)) {
			t.Fatalf("TOUCH = %d %v", n, err)
		}
		n, err = r.Del(ctx, order[:6]...).Result()
		if err != nil || n != 6 {
			t.Fatalf("DEL = %d %v", n, err)
		}
		n, err = r.Unlink(ctx, append(order[6:], "missing")...).Result()
		if err != nil || n != int64(len(order)-6) {
			t.Fatalf("UNLINK = %d %v", n, err)
		}
		if err := r.Do(ctx, "MSET", "a", "1", "b").Err(); err == nil || err.Error() != "ERR wrong number of arguments for 'mset' command" {
			t.Fatalf("MSET odd: %v", err)
		}
	})
}

// MSETNX, RENAME, RENAMENX and COPY run when their keys share a node, and
// across nodes.
func TestCrossShardCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		same := c.keysOn(0, 3, fmt.Sprintf("same%d-", proto))
		other := c.keysOn(1, 1, fmt.Sprintf("other%d-", proto))[0]
		ok, err := r.MSetNX(ctx, same[0], "a", same[1], "b").Result()
		if err != nil || !ok {
			t.Fatalf("MSETNX same node: %v %v", ok, err)
		}
		if err := r.Rename(ctx, same[0], same[2]).Err(); err != nil {
			t.Fatalf("RENAME same node: %v", err)
		}
		if ok, err := r.RenameNX(ctx, same[2], same[1]).Result(); err != nil || ok {
			t.Fatalf("RENAMENX onto an existing key: %v %v", ok, err)
		}
		if ok, err := r.Copy(ctx, same[2], same[0], 0, false).Result(); err != nil || ok != 1 {
			t.Fatalf("COPY same node: %v %v", ok, err)
		}
		// Across shards they are cross-shard transactions (xshard_test.go,
		// xcoll_test.go), collections too, and COPY into another database.
		r.Del(ctx, same[1])
		r.SAdd(ctx, same[1], "m")
		if n, err := r.Copy(ctx, same[1], other, 1, false).Result(); err != nil || n != 1 {
			t.Fatalf("COPY ... DB 1 across nodes: %v %v", n, err)
		}
		if n := r.Exists(ctx, other).Val(); n != 0 {
			t.Fatalf("COPY ... DB 1 wrote %s in database 0", other)
		}
		if err := r.Rename(ctx, same[1], other).Err(); err != nil {
			t.Fatalf("RENAME of a set across nodes: %v", err)
		}
		if r.Type(ctx, other).Val() != "set" || r.Exists(ctx, same[1]).Val() != 0 {
			t.Fatalf("RENAME of a set across nodes did not move it")
		}
	})
}

// SCAN walks every node with the global hash cursor: every key is returned
// at least once, with MATCH, COUNT and TYPE passed through.
func TestScanSeesEveryKey(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	load := c.client(2)
	want := map[string]bool{}
	pipe := load.Pipeline()
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("scan:%d", i)
		want[k] = true
		pipe.Set(ctx, k, "v", 0)
	}
	pipe.Set(ctx, "other", "v", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	forEachProto(t, func(t *testing.T, proto int) {
		r := c.client(proto)
		seen := map[string]int{}
		var cursor uint64
		pages := 0
		for {
			keys, next, err := r.ScanType(ctx, cursor, "scan:*", 100, "string").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				seen[k]++
			}
			pages++
			cursor = next
			if cursor == 0 {
				break
			}
			if pages > 10000 {
				t.Fatal("SCAN never ended")
			}
		}
		for k := range want {
			if seen[k] == 0 {
				t.Fatalf("SCAN missed %s (%d of %d seen)", k, len(seen), len(want))
			}
		}
		if seen["other"] != 0 {
			t.Fatal("SCAN MATCH returned a key that does not match")
		}
		if _, _, err := r.Scan(ctx, 0, "", 10).Result(); err != nil {
			t.Fatal(err)
		}
		if err := r.Do(ctx, "SCAN", "notanumber").Err(); err == nil || err.Error() != "ERR invalid cursor" {
			t.Fatalf("SCAN bad cursor: %v", err)
		}
		// The go-redis iterator agrees.
		it := r.Scan(ctx, 0, "scan:*", 500).Iterator()
		n := map[string]bool{}
		for it.Next(ctx) {
			n[it.Val()] = true
		}
		if it.Err() != nil || len(n) != len(want) {
			t.Fatalf("iterator saw %d keys, want %d: %v", len(n), len(want), it.Err())
		}
	})
}

// KEYS, DBSIZE, RANDOMKEY, FLUSHDB and FLUSHALL go to every node and merge.
func TestFanoutCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if k, err := r.RandomKey(ctx).Result(); err != redis.Nil {
			t.Fatalf("RANDOMKEY on an empty keyspace: %q %v", k, err)
		}
		var keys []string
		for i := 0; i < 60; i++ {
			keys = append(keys, fmt.Sprintf("fan%d", i))
			r.Set(ctx, keys[i], i, 0)
		}
		got, err := r.Keys(ctx, "fan*").Result()
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		sort.Strings(keys)
		if fmt.Sprint(got) != fmt.Sprint(keys) {
			t.Fatalf("KEYS = %v", got)
		}
		if n, err := r.DBSize(ctx).Result(); err != nil || n != 60 {
			t.Fatalf("DBSIZE = %d %v", n, err)
		}
		if k, err := r.RandomKey(ctx).Result(); err != nil || !strings.HasPrefix(k, "fan") {
			t.Fatalf("RANDOMKEY = %q %v", k, err)
		}
		if err := r.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if n := r.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("DBSIZE after FLUSHDB = %d", n)
		}
		for i, n := range c.nodes {
			if sz := n.client(t).DBSize(ctx).Val(); sz != 0 {
				t.Fatalf("node %d holds %d keys after FLUSHDB", i, sz)
			}
		}
	})
}

// INDEX.CREATE, INDEX.LIST and INDEX.DROP fan out; counts are summed.
func TestIndexCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		idx := fmt.Sprintf("users%d", proto)
		if err := r.Do(ctx, "INDEX.CREATE", idx).Err(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 40; i++ {
			r.Set(ctx, fmt.Sprintf("%s:%d", idx, i), "x", 0)
		}
		counts := indexList(t, r)
		if counts[idx] != 40 {
			t.Fatalf("INDEX.LIST %s = %d (all %v)", idx, counts[idx], counts)
		}
		n, err := r.Do(ctx, "INDEX.DROP", idx).Int64()
		if err != nil || n != 40 {
			t.Fatalf("INDEX.DROP = %d %v", n, err)
		}
		if r.Exists(ctx, idx+":1").Val() != 0 {
			t.Fatal("INDEX.DROP left a key")
		}
	})
}

func indexList(t *testing.T, r *redis.Client) map[string]int64 {
	t.Helper()
	v, err := r.Do(context.Background(), "INDEX.LIST").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	switch v := v.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			out[v[i].(string)] = v[i+1].(int64)
		}
	case map[any]any:
		for k, n := range v {
			out[k.(string)] = n.(int64)
		}
	default:
		t.Fatalf("INDEX.LIST reply %T", v)
	}
	return out
}

// MULTI/EXEC runs on the one node of its keys; keys on two nodes make EXEC
// fail with CROSSSHARD and nothing runs; queue-time errors abort like Redis.
func TestMultiExec(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		a := c.keysOn(0, 3, fmt.Sprintf("tx%d-", proto))
		b := c.keysOn(1, 1, fmt.Sprintf("tx%d-", proto))[0]
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a[0], "1", 0)
			p.Incr(ctx, a[0])
			p.MGet(ctx, a[0], a[1])
			p.Ping(ctx)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := cmds[1].(*redis.IntCmd).Val(); got != 2 {
			t.Fatalf("INCR in MULTI = %d", got)
		}
		if got := fmt.Sprint(cmds[2].(*redis.SliceCmd).Val()); got != "[2 <nil>]" {
			t.Fatalf("MGET in MULTI = %s", got)
		}
		// Across shards, a command a participant cannot prepare (a
		// script) refuses the whole transaction (the cross-shard ones
		// that run: xshard_test.go, xcoll_test.go).
		_, err = r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a[1], "x", 0)
			p.SAdd(ctx, b, "y")
			p.Eval(ctx, "return 1", nil)
			return nil
		})
		want := "CROSSSHARD 'eval' cannot be part of a transaction whose keys live on several shards"
		if err == nil || err.Error() != want {
			t.Fatalf("cross-shard EXEC: %v", err)
		}
		if r.Exists(ctx, a[1], b).Val() != 0 {
			t.Fatal("a refused transaction wrote keys")
		}
		// Raw protocol: queue-time errors, then EXECABORT.
		conn := r.Conn()
		defer conn.Close()
		if err := conn.Do(ctx, "MULTI").Err(); err != nil {
			t.Fatal(err)
		}
		if s := conn.Do(ctx, "SET", a[2], "v").Val(); s != "QUEUED" {
			t.Fatalf("queued reply %v", s)
		}
		if err := conn.Do(ctx, "GET").Err(); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
			t.Fatalf("arity in MULTI: %v", err)
		}
		if err := conn.Do(ctx, "KEYS", "*").Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSHARD 'keys'") {
			t.Fatalf("KEYS in MULTI: %v", err)
		}
		if err := conn.Do(ctx, "EXEC").Err(); err == nil || err.Error() != "EXECABORT Transaction discarded because of previous errors." {
			t.Fatalf("EXEC after errors: %v", err)
		}
		if r.Exists(ctx, a[2]).Val() != 0 {
			t.Fatal("an aborted transaction wrote")
		}
		if err := conn.Do(ctx, "EXEC").Err(); err == nil || err.Error() != "ERR EXEC without MULTI" {
			t.Fatalf("EXEC without MULTI: %v", err)
		}
		if err := conn.Do(ctx, "DISCARD").Err(); err == nil || err.Error() != "ERR DISCARD without MULTI" {
			t.Fatalf("DISCARD without MULTI: %v", err)
		}
		conn.Do(ctx, "MULTI")
		conn.Do(ctx, "SET", a[2], "v")
		if s, err := conn.Do(ctx, "DISCARD").Text(); err != nil || s != "OK" {
			t.Fatalf("DISCARD: %v %v", s, err)
		}
		if r.Exists(ctx, a[2]).Val() != 0 {
			t.Fatal("a discarded transaction wrote")
		}
	})
}

// WATCH pins a connection to the watched keys' node: EXEC succeeds when they
// are untouched and returns nil (go-redis: TxFailedErr) when another client
// changed them.
func TestWatch(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		other := c.client(proto)
		keys := c.keysOn(1, 2, fmt.Sprintf("w%d-", proto))
		elsewhere := c.keysOn(0, 1, fmt.Sprintf("w%d-", proto))[0]
		r.Set(ctx, keys[0], "10", 0)
		incr := func(interfere bool) error {
			return r.Watch(ctx, func(tx *redis.Tx) error {
				n, err := tx.Get(ctx, keys[0]).Int()
				if err != nil {
					return err
				}
				if interfere {
					other.Set(ctx, keys[0], "100", 0)
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, keys[0], n+1, 0)
					p.Set(ctx, keys[1], "done", 0)
					return nil
				})
				return err
			}, keys[0])
		}
		if err := incr(false); err != nil {
			t.Fatal(err)
		}
		if v := r.Get(ctx, keys[0]).Val(); v != "11" {
			t.Fatalf("after WATCH/EXEC: %s", v)
		}
		if err := incr(true); !errors.Is(err, redis.TxFailedErr) {
			t.Fatalf("EXEC after a watched key changed: %v", err)
		}
		if v := r.Get(ctx, keys[0]).Val(); v != "100" {
			t.Fatalf("the failed transaction ran: %s", v)
		}
		// Watching one node and writing another is a cross-shard
		// transaction whose watched node takes part.
		err := r.Watch(ctx, func(tx *redis.Tx) error {
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, elsewhere, "x", 0)
				return nil
			})
			return err
		}, keys[0])
		if err != nil || r.Get(ctx, elsewhere).Val() != "x" {
			t.Fatalf("WATCH s1 then EXEC on s0: %v", err)
		}
		err = r.Watch(ctx, func(tx *redis.Tx) error {
			other.Set(ctx, keys[0], "101", 0)
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, elsewhere, "y", 0)
				return nil
			})
			return err
		}, keys[0])
		if !errors.Is(err, redis.TxFailedErr) || r.Get(ctx, elsewhere).Val() != "x" {
			t.Fatalf("WATCH s1, a change, then EXEC on s0: %v", err)
		}
		// Keys watched on both nodes: a change on either fails EXEC.
		for _, changed := range []string{"", keys[0], elsewhere} {
			err := r.Watch(ctx, func(tx *redis.Tx) error {
				if changed != "" {
					other.Set(ctx, changed, "by-other", 0)
				}
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, keys[0], "w", 0)
					return nil
				})
				return err
			}, keys[0], elsewhere)
			if changed == "" && (err != nil || r.Get(ctx, keys[0]).Val() != "w") || changed != "" && !errors.Is(err, redis.TxFailedErr) {
				t.Fatalf("WATCH across nodes, a change of %q: %v", changed, err)
			}
		}
	})
}

// SHARD.LOCATE and SHARD.MAP describe the map.
func TestShardLocateAndMap(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		for _, key := range []string{"alpha", "beta", "gamma", "x:1"} {
			v, err := r.Do(ctx, "SHARD.LOCATE", key).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			i := c.owner(key)
			if len(v) != 4 || v[3] != key || v[1] != c.m.Shards[i].Name || v[2] != c.nodes[i].addr {
				t.Fatalf("SHARD.LOCATE %s = %v, want shard %d", key, v, i)
			}
		}
		v, err := r.Do(ctx, "SHARD.MAP").Slice()
		if err != nil || len(v) != 2 {
			t.Fatalf("SHARD.MAP = %v %v", v, err)
		}
		e := v[1].([]any)
		if fmt.Sprint(e) != fmt.Sprintf("[s1 0.5 1 %s 1 ok]", c.nodes[1].addr) {
			t.Fatalf("SHARD.MAP entry %v", e)
		}
	})
}

// Each of 10,000 keys written through the proxy is stored on the node whose
// range holds its position, and only there (checked on the nodes directly).
func TestPlacementOfTenThousandKeys(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	r := c.client(3)
	const n = 10000
	pipe := r.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(ctx, fmt.Sprintf("place:%d", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	direct := make([]*redis.Client, len(c.nodes))
	for i, nd := range c.nodes {
		direct[i] = nd.client(t)
	}
	var total int64
	for i := range direct {
		total += direct[i].DBSize(ctx).Val()
	}
	if total != n {
		t.Fatalf("the nodes hold %d keys, want %d", total, n)
	}
	pipes := make([]redis.Pipeliner, len(direct))
	cmds := make([][]*redis.IntCmd, len(direct))
	for i := range direct {
		pipes[i] = direct[i].Pipeline()
		for k := 0; k < n; k++ {
			cmds[i] = append(cmds[i], pipes[i].Exists(ctx, fmt.Sprintf("place:%d", k)))
		}
		pipes[i].Exec(ctx)
	}
	for k := 0; k < n; k++ {
		key := fmt.Sprintf("place:%d", k)
		own := c.owner(key)
		for i := range direct {
			has := cmds[i][k].Val() == 1
			if has != (i == own) {
				t.Fatalf("%s (position owned by node %d) present=%v on node %d", key, own, has, i)
			}
		}
	}
}
