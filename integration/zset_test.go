package integration

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestZSetsThroughProxy drives sorted sets with go-redis's typed API
// through the proxy and three nodes, in RESP2 and RESP3: one-key commands,
// ZUNION/ZINTER/ZDIFF/ZINTERCARD with keys on several shards (gathered by
// the proxy) and on one, and the STORE forms across shards (cross-shard
// transactions).
func TestZSetsThroughProxy(t *testing.T) {
	c := StartCluster(t, Options{})
	ctx := context.Background()
	a, b, d := c.KeysOn(0, "za", 1)[0], c.KeysOn(1, "zb", 1)[0], c.KeysOn(2, "zd", 1)[0]
	same := c.KeysOn(0, "zs", 2)
	for _, proto := range []int{2, 3} {
		rdb := c.ClientWith(func(o *redis.Options) { o.Protocol = proto })
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("RESP%d %s: %v", proto, what, err)
			}
		}
		n, err := rdb.ZAdd(ctx, a, redis.Z{Score: 1, Member: "x"}, redis.Z{Score: 2, Member: "y"}, redis.Z{Score: 3, Member: "z"}).Result()
		check("ZADD", err)
		if n != 3 {
			t.Fatalf("ZADD added %d", n)
		}
		check("ZADD", rdb.ZAdd(ctx, b, redis.Z{Score: 10, Member: "y"}, redis.Z{Score: 20, Member: "z"}, redis.Z{Score: 30, Member: "w"}).Err())
		check("ZADD", rdb.ZAdd(ctx, d, redis.Z{Score: 0.5, Member: "z"}).Err())
		s, err := rdb.ZScore(ctx, a, "y").Result()
		check("ZSCORE", err)
		if s != 2 {
			t.Fatalf("ZSCORE %v", s)
		}
		f, err := rdb.ZIncrBy(ctx, a, 0.5, "y").Result()
		check("ZINCRBY", err)
		if f != 2.5 {
			t.Fatalf("ZINCRBY %v", f)
		}
		rng, err := rdb.ZRangeWithScores(ctx, a, 0, -1).Result()
		check("ZRANGE", err)
		if want := []redis.Z{{Score: 1, Member: "x"}, {Score: 2.5, Member: "y"}, {Score: 3, Member: "z"}}; !slices.Equal(rng, want) {
			t.Fatalf("ZRANGE WITHSCORES %v", rng)
		}
		byScore, err := rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: a, Start: "(1", Stop: "+inf", ByScore: true, Rev: false}).Result()
		check("ZRANGE BYSCORE", err)
		if !slices.Equal(byScore, []string{"y", "z"}) {
			t.Fatalf("ZRANGE BYSCORE %v", byScore)
		}
		r, err := rdb.ZRank(ctx, a, "z").Result()
		check("ZRANK", err)
		if r != 2 {
			t.Fatalf("ZRANK %d", r)
		}
		if err := rdb.ZRank(ctx, a, "nope").Err(); err != redis.Nil {
			t.Fatalf("ZRANK of a missing member: %v", err)
		}
		card, err := rdb.ZCard(ctx, a).Result()
		check("ZCARD", err)
		if card != 3 {
			t.Fatalf("ZCARD %d", card)
		}
		typ, err := rdb.Type(ctx, a).Result()
		check("TYPE", err)
		if typ != "zset" {
			t.Fatalf("TYPE %q", typ)
		}

		// Keys on three shards: gathered by the proxy.
		union, err := rdb.ZUnionWithScores(ctx, redis.ZStore{Keys: []string{a, b, d}}).Result()
		check("ZUNION", err)
		if want := []redis.Z{{Score: 1, Member: "x"}, {Score: 12.5, Member: "y"}, {Score: 23.5, Member: "z"}, {Score: 30, Member: "w"}}; !slices.Equal(union, want) {
			t.Fatalf("ZUNION across shards %v", union)
		}
		weighted, err := rdb.ZUnionWithScores(ctx, redis.ZStore{Keys: []string{a, b}, Weights: []float64{2, 1}, Aggregate: "MAX"}).Result()
		check("ZUNION WEIGHTS", err)
		if want := []redis.Z{{Score: 2, Member: "x"}, {Score: 10, Member: "y"}, {Score: 20, Member: "z"}, {Score: 30, Member: "w"}}; !slices.Equal(weighted, want) {
			t.Fatalf("ZUNION WEIGHTS AGGREGATE MAX across shards %v", weighted)
		}
		inter, err := rdb.ZInterWithScores(ctx, &redis.ZStore{Keys: []string{a, b, d}, Aggregate: "MIN"}).Result()
		check("ZINTER", err)
		if want := []redis.Z{{Score: 0.5, Member: "z"}}; !slices.Equal(inter, want) {
			t.Fatalf("ZINTER across shards %v", inter)
		}
		diff, err := rdb.ZDiff(ctx, a, b).Result()
		check("ZDIFF", err)
		if !slices.Equal(diff, []string{"x"}) {
			t.Fatalf("ZDIFF across shards %v", diff)
		}
		ic, err := rdb.ZInterCard(ctx, 0, a, b).Result()
		check("ZINTERCARD", err)
		if ic != 2 {
			t.Fatalf("ZINTERCARD across shards %d", ic)
		}
		ic, err = rdb.ZInterCard(ctx, 1, a, b).Result()
		check("ZINTERCARD LIMIT", err)
		if ic != 1 {
			t.Fatalf("ZINTERCARD LIMIT 1 across shards %d", ic)
		}
		// A plain set on a third shard is an input, every score 1.
		check("SADD", rdb.SAdd(ctx, d+"s", "x", "w").Err())
		withSet, err := rdb.ZUnionWithScores(ctx, redis.ZStore{Keys: []string{a, b, d + "s"}}).Result()
		check("ZUNION with a set", err)
		if want := []redis.Z{{Score: 2, Member: "x"}, {Score: 12.5, Member: "y"}, {Score: 23, Member: "z"}, {Score: 31, Member: "w"}}; !slices.Equal(withSet, want) {
			t.Fatalf("ZUNION with a plain set across shards %v", withSet)
		}
		check("DEL", rdb.Del(ctx, d+"s").Err())
		check("SET", rdb.Set(ctx, same[0], "str", 0).Err())
		if err := rdb.ZUnion(ctx, redis.ZStore{Keys: []string{a, same[0]}}).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("ZUNION across shards with a string: %v", err)
		}
		check("DEL", rdb.Del(ctx, same[0]).Err())

		// The STORE forms: atomic within one shard and across shards.
		for _, err := range []error{
			rdb.ZUnionStore(ctx, same[0], &redis.ZStore{Keys: []string{a, b}}).Err(),
			rdb.ZInterStore(ctx, same[0], &redis.ZStore{Keys: []string{a, b}}).Err(),
			rdb.ZDiffStore(ctx, same[0], a, b).Err(),
			rdb.ZRangeStore(ctx, d+"r", redis.ZRangeArgs{Key: a, Start: 0, Stop: -1}).Err(),
		} {
			if err != nil {
				t.Fatalf("RESP%d: a STORE form across shards: %v", proto, err)
			}
		}
		if n, err := rdb.ZUnionStore(ctx, same[1], &redis.ZStore{Keys: []string{a}, Weights: []float64{10}}).Result(); err != nil || n != 3 {
			t.Fatalf("ZUNIONSTORE on one shard: %d %v", n, err)
		}
		if n, err := rdb.ZRangeStore(ctx, same[0], redis.ZRangeArgs{Key: same[1], Start: 0, Stop: 0}).Result(); err != nil || n != 1 {
			t.Fatalf("ZRANGESTORE on one shard: %d %v", n, err)
		}
		got, err := rdb.ZRangeWithScores(ctx, same[0], 0, -1).Result()
		check("ZRANGE", err)
		if want := []redis.Z{{Score: 10, Member: "x"}}; !slices.Equal(got, want) {
			t.Fatalf("stored %v", got)
		}
		pop, err := rdb.ZPopMax(ctx, same[1], 2).Result()
		check("ZPOPMAX", err)
		if want := []redis.Z{{Score: 30, Member: "z"}, {Score: 25, Member: "y"}}; !slices.Equal(pop, want) {
			t.Fatalf("ZPOPMAX %v", pop)
		}
		key, mp, err := rdb.ZMPop(ctx, "min", 5, same[1], same[0]).Result()
		check("ZMPOP", err)
		if key != same[1] || len(mp) != 1 || mp[0].Member != "x" {
			t.Fatalf("ZMPOP %q %v", key, mp)
		}
		check("ZADD", rdb.ZAdd(ctx, a, redis.Z{Score: math.Inf(1), Member: "top"}).Err())
		top, err := rdb.ZRevRangeWithScores(ctx, a, 0, 0).Result()
		check("ZREVRANGE", err)
		if len(top) != 1 || !math.IsInf(top[0].Score, 1) {
			t.Fatalf("ZREVRANGE %v", top)
		}
	}
}
