package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestHashesThroughProxy drives the hash commands with go-redis's typed
// API through the proxy and three nodes, in RESP2 and RESP3 (HGETALL a
// map there): hashes on every shard, the generic commands over them, and
// WRONGTYPE both ways.
func TestHashesThroughProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for i := range c.nodes {
			keys = append(keys, c.keysOn(i, 2, fmt.Sprintf("user:%d:", proto))...)
		}
		for _, k := range keys {
			if n, err := r.HSet(ctx, k, "name", k, "visits", 1, "blob", strings.Repeat("x", 100)).Result(); err != nil || n != 3 {
				t.Fatalf("HSET %s: %d %v", k, n, err)
			}
			if v, err := r.HIncrBy(ctx, k, "visits", 41).Result(); err != nil || v != 42 {
				t.Fatalf("HINCRBY %s: %d %v", k, v, err)
			}
			if f, err := r.HIncrByFloat(ctx, k, "score", 1.5).Result(); err != nil || f != 1.5 {
				t.Fatalf("HINCRBYFLOAT %s: %v %v", k, f, err)
			}
		}
		k := keys[0]
		all, err := r.HGetAll(ctx, k).Result()
		if err != nil || len(all) != 4 || all["name"] != k || all["visits"] != "42" || all["score"] != "1.5" {
			t.Fatalf("HGETALL: %v %v", all, err)
		}
		if v, err := r.HGet(ctx, k, "missing").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("HGET of a missing field: %q %v", v, err)
		}
		if vs, err := r.HMGet(ctx, k, "name", "missing").Result(); err != nil || vs[0] != k || vs[1] != nil {
			t.Fatalf("HMGET: %v %v", vs, err)
		}
		if ok, err := r.HSetNX(ctx, k, "name", "other").Result(); err != nil || ok {
			t.Fatalf("HSETNX: %v %v", ok, err)
		}
		if n, err := r.HLen(ctx, k).Result(); err != nil || n != 4 {
			t.Fatalf("HLEN: %d %v", n, err)
		}
		if n, err := r.HStrLen(ctx, k, "blob").Result(); err != nil || n != 100 {
			t.Fatalf("HSTRLEN: %d %v", n, err)
		}
		if fs, err := r.HKeys(ctx, k).Result(); err != nil || len(fs) != 4 {
			t.Fatalf("HKEYS: %v %v", fs, err)
		}
		if vs, err := r.HVals(ctx, k).Result(); err != nil || len(vs) != 4 {
			t.Fatalf("HVALS: %v %v", vs, err)
		}
		if kv, err := r.HRandFieldWithValues(ctx, k, 10).Result(); err != nil || len(kv) != 4 {
			t.Fatalf("HRANDFIELD WITHVALUES: %v %v", kv, err)
		}
		if fs, cur, err := r.HScan(ctx, k, 0, "n*", 10).Result(); err != nil || cur != 0 || len(fs) != 2 || fs[0] != "name" {
			t.Fatalf("HSCAN: %v %d %v", fs, cur, err)
		}
		if ok, err := r.HExists(ctx, k, "blob").Result(); err != nil || !ok {
			t.Fatalf("HEXISTS: %v %v", ok, err)
		}
		if n, err := r.HDel(ctx, k, "blob", "missing").Result(); err != nil || n != 1 {
			t.Fatalf("HDEL: %d %v", n, err)
		}
		if typ, err := r.Type(ctx, k).Result(); err != nil || typ != "hash" {
			t.Fatalf("TYPE: %q %v", typ, err)
		}
		if enc, err := r.ObjectEncoding(ctx, k).Result(); err != nil || enc != "listpack" {
			t.Fatalf("OBJECT ENCODING: %q %v", enc, err)
		}
		if n, err := r.Exists(ctx, keys...).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("EXISTS over every shard: %d %v", n, err)
		}
		if n, err := r.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("DBSIZE: %d %v", n, err)
		}
		var scanned []string
		iter := r.ScanType(ctx, 0, "", 100, "hash").Iterator()
		for iter.Next(ctx) {
			scanned = append(scanned, iter.Val())
		}
		if iter.Err() != nil || len(scanned) != len(keys) {
			t.Fatalf("SCAN TYPE hash: %v %v", scanned, iter.Err())
		}
		if ok, err := r.Expire(ctx, k, time.Hour).Result(); err != nil || !ok {
			t.Fatalf("EXPIRE: %v %v", ok, err)
		}
		if d, err := r.TTL(ctx, k).Result(); err != nil || d <= 0 {
			t.Fatalf("TTL: %v %v", d, err)
		}
		// WRONGTYPE both ways, and a string over a hash.
		if err := r.Get(ctx, k).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("GET of a hash: %v", err)
		}
		r.Set(ctx, "plain", "v", 0)
		if err := r.HGet(ctx, "plain", "f").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("HGET of a string: %v", err)
		}
		if err := r.SetArgs(ctx, k, "v", redis.SetArgs{Get: true}).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("SET GET on a hash: %v", err)
		}
		if err := r.Set(ctx, k, "now a string", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := r.Get(ctx, k).Result(); err != nil || v != "now a string" {
			t.Fatalf("GET after SET over a hash: %q %v", v, err)
		}
		// A transaction on one shard.
		k1 := keys[1]
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, k1, "tx", "1")
			p.HGetAll(ctx, k1)
			return nil
		})
		if err != nil || cmds[1].(*redis.MapStringStringCmd).Val()["tx"] != "1" {
			t.Fatalf("MULTI/EXEC: %v %v", cmds, err)
		}
		if n, err := r.Del(ctx, keys...).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("DEL over every shard: %d %v", n, err)
		}
		if n, err := r.HLen(ctx, k1).Result(); err != nil || n != 0 {
			t.Fatalf("HLEN after DEL: %d %v", n, err)
		}
	})
}
