package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestListsThroughProxy drives the list commands with go-redis's typed
// API through the proxy and three nodes, in RESP2 and RESP3: lists on
// every shard, the generic commands over them, WRONGTYPE, the moves and
// LMPOP within one shard, and CROSSSHARD for them across shards with
// nothing moved.
func TestListsThroughProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var on [3][]string
		var keys []string
		for i := range c.nodes {
			on[i] = c.keysOn(i, 3, fmt.Sprintf("jobs:%d:", proto))
			keys = append(keys, on[i]...)
		}
		for _, k := range keys {
			if n, err := r.RPush(ctx, k, "a", "b", "c").Result(); err != nil || n != 3 {
				t.Fatalf("RPUSH %s: %d %v", k, n, err)
			}
		}
		k := keys[0]
		if n, err := r.LPush(ctx, k, "z").Result(); err != nil || n != 4 {
			t.Fatalf("LPUSH: %d %v", n, err)
		}
		if vs, err := r.LRange(ctx, k, 0, -1).Result(); err != nil || !slices.Equal(vs, []string{"z", "a", "b", "c"}) {
			t.Fatalf("LRANGE: %v %v", vs, err)
		}
		if n, err := r.LInsertAfter(ctx, k, "a", "ab").Result(); err != nil || n != 5 {
			t.Fatalf("LINSERT: %d %v", n, err)
		}
		if err := r.LSet(ctx, k, -1, "C").Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := r.LIndex(ctx, k, 2).Result(); err != nil || v != "ab" {
			t.Fatalf("LINDEX: %q %v", v, err)
		}
		if n, err := r.LPos(ctx, k, "C", redis.LPosArgs{}).Result(); err != nil || n != 4 {
			t.Fatalf("LPOS: %d %v", n, err)
		}
		if n, err := r.LRem(ctx, k, 0, "ab").Result(); err != nil || n != 1 {
			t.Fatalf("LREM: %d %v", n, err)
		}
		if vs, err := r.LPopCount(ctx, k, 2).Result(); err != nil || !slices.Equal(vs, []string{"z", "a"}) {
			t.Fatalf("LPOP 2: %v %v", vs, err)
		}
		if v, err := r.RPop(ctx, k).Result(); err != nil || v != "C" {
			t.Fatalf("RPOP: %q %v", v, err)
		}
		if err := r.LTrim(ctx, k, 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Fatalf("EXISTS after LTRIM of all: %d %v", n, err)
		}
		if err := r.LPop(ctx, k).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("LPOP of an absent key: %v", err)
		}
		r.RPush(ctx, k, "a", "b", "c")
		if typ, err := r.Type(ctx, k).Result(); err != nil || typ != "list" {
			t.Fatalf("TYPE: %q %v", typ, err)
		}
		if enc, err := r.ObjectEncoding(ctx, k).Result(); err != nil || enc != "quicklist" {
			t.Fatalf("OBJECT ENCODING: %q %v", enc, err)
		}
		var scanned []string
		iter := r.ScanType(ctx, 0, "", 100, "list").Iterator()
		for iter.Next(ctx) {
			scanned = append(scanned, iter.Val())
		}
		if iter.Err() != nil || len(scanned) != len(keys) {
			t.Fatalf("SCAN TYPE list: %v %v", scanned, iter.Err())
		}
		if ok, err := r.Expire(ctx, k, time.Hour).Result(); err != nil || !ok {
			t.Fatalf("EXPIRE: %v %v", ok, err)
		}

		// Moves within one shard and across shards.
		s1, s2, s3 := on[1][0], on[1][1], on[1][2]
		if v, err := r.RPopLPush(ctx, s1, s2).Result(); err != nil || v != "c" {
			t.Fatalf("RPOPLPUSH on one shard: %q %v", v, err)
		}
		if v, err := r.LMove(ctx, s2, s3, "LEFT", "RIGHT").Result(); err != nil || v != "c" {
			t.Fatalf("LMOVE on one shard: %q %v", v, err)
		}
		if key, vs, err := r.LMPop(ctx, "left", 5, s1, s2).Result(); err != nil || key != s1 || !slices.Equal(vs, []string{"a", "b"}) {
			t.Fatalf("LMPOP on one shard: %q %v %v", key, vs, err)
		}
		a, b := on[0][0], on[2][0]
		for _, e := range []error{
			r.RPopLPush(ctx, a, b).Err(), r.LMove(ctx, a, b, "LEFT", "LEFT").Err(), r.LMPop(ctx, "left", 1, a, b).Err(),
		} {
			if e != nil {
				t.Fatalf("a list move across shards: %v", e)
			}
		}
		if n, err := r.LLen(ctx, a).Result(); err != nil || n != 0 {
			t.Fatalf("the source after three moves across shards: %d %v", n, err)
		}

		// SORT: STORE on the key's shard or another; the keys BY and GET
		// name on the key's shard, else CROSSSHARD with nothing stored.
		r.Del(ctx, s1, s2)
		r.RPush(ctx, s1, "2", "1")
		if vs, err := r.Sort(ctx, s1, &redis.Sort{}).Result(); err != nil || !slices.Equal(vs, []string{"1", "2"}) {
			t.Fatalf("SORT: %v %v", vs, err)
		}
		if n, err := r.SortStore(ctx, s1, s2, &redis.Sort{Order: "DESC"}).Result(); err != nil || n != 2 {
			t.Fatalf("SORT STORE on one shard: %d %v", n, err)
		}
		if vs, err := r.SortRO(ctx, s2, &redis.Sort{By: "nosort"}).Result(); err != nil || !slices.Equal(vs, []string{"2", "1"}) {
			t.Fatalf("SORT_RO of the stored list: %v %v", vs, err)
		}
		if n, err := r.SortStore(ctx, s1, a, &redis.Sort{}).Result(); err != nil || n != 2 || !slices.Equal(r.LRange(ctx, a, 0, -1).Val(), []string{"1", "2"}) {
			t.Fatalf("SORT STORE across shards: %d %v", n, err)
		}
		// Weights on the key's shard and on another one.
		var local, remote string
		for i := 0; local == "" || remote == ""; i++ {
			p := fmt.Sprintf("w%d:%d_", proto, i)
			switch on1, on1b := c.owner(p+"1"), c.owner(p+"2"); {
			case on1 == 1 && on1b == 1 && local == "":
				local = p
			case on1 != 1 && on1b != 1 && remote == "":
				remote = p
			}
		}
		r.Set(ctx, local+"1", "20", 0)
		r.Set(ctx, local+"2", "10", 0)
		if vs, err := r.Sort(ctx, s1, &redis.Sort{By: local + "*", Get: []string{"#", local + "*"}}).Result(); err != nil || !slices.Equal(vs, []string{"2", "10", "1", "20"}) {
			t.Fatalf("SORT BY and GET on the key's shard: %v %v", vs, err)
		}
		for _, e := range []error{
			r.Sort(ctx, s1, &redis.Sort{By: remote + "*"}).Err(), r.Sort(ctx, s1, &redis.Sort{Get: []string{remote + "*"}}).Err(),
		} {
			if e == nil || !strings.HasPrefix(e.Error(), "CROSSSHARD") {
				t.Fatalf("SORT BY or GET naming keys on another shard: %v", e)
			}
		}

		// WRONGTYPE both ways.
		r.Set(ctx, b+"str", "v", 0)
		if err := r.LPush(ctx, b+"str", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("LPUSH to a string: %v", err)
		}
		if err := r.Get(ctx, b).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("GET of a list: %v", err)
		}
		// A transaction on one shard.
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.RPush(ctx, s3, "tx")
			p.LRange(ctx, s3, -1, -1)
			return nil
		})
		if err != nil || !slices.Equal(cmds[1].(*redis.StringSliceCmd).Val(), []string{"tx"}) {
			t.Fatalf("MULTI/EXEC: %v %v", cmds, err)
		}
		if n, err := r.Del(ctx, keys...).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("DEL over every shard: %d %v", n, err)
		}
	})
}
