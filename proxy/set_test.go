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

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestSetsThroughProxy drives the set commands with go-redis's typed API
// through the proxy and three nodes, in RESP2 and RESP3 (sets there):
// sets on every shard, the generic commands over them, WRONGTYPE, the
// multi-key reads across shards computed by the proxy, and CROSSSHARD for
// the atomic forms across shards.
func TestSetsThroughProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		// Three keys on each node: one key per shard for the cross-shard
		// reads, three on one shard for the atomic forms.
		var on [3][]string
		var keys []string
		for i := range c.nodes {
			on[i] = c.keysOn(i, 3, fmt.Sprintf("tags:%d:", proto))
			keys = append(keys, on[i]...)
		}
		for _, k := range keys {
			if n, err := r.SAdd(ctx, k, "common", k, 1, 2).Result(); err != nil || n != 4 {
				t.Fatalf("SADD %s: %d %v", k, n, err)
			}
		}
		k := keys[0]
		if n, err := r.SAdd(ctx, k, "common", "extra").Result(); err != nil || n != 1 {
			t.Fatalf("SADD again: %d %v", n, err)
		}
		if ms, err := r.SMembers(ctx, k).Result(); err != nil || !slices.Equal(sorted(ms), sorted([]string{"common", k, "1", "2", "extra"})) {
			t.Fatalf("SMEMBERS: %v %v", ms, err)
		}
		if ok, err := r.SIsMember(ctx, k, "extra").Result(); err != nil || !ok {
			t.Fatalf("SISMEMBER: %v %v", ok, err)
		}
		if bs, err := r.SMIsMember(ctx, k, "extra", "nope").Result(); err != nil || !slices.Equal(bs, []bool{true, false}) {
			t.Fatalf("SMISMEMBER: %v %v", bs, err)
		}
		if n, err := r.SCard(ctx, k).Result(); err != nil || n != 5 {
			t.Fatalf("SCARD: %d %v", n, err)
		}
		if m, err := r.SRandMember(ctx, k).Result(); err != nil || m == "" {
			t.Fatalf("SRANDMEMBER: %q %v", m, err)
		}
		if ms, err := r.SRandMemberN(ctx, k, -7).Result(); err != nil || len(ms) != 7 {
			t.Fatalf("SRANDMEMBER -7: %v %v", ms, err)
		}
		if ms, err := r.SRandMemberN(ctx, k, 3).Result(); err != nil || len(ms) != 3 || len(slices.Compact(sorted(ms))) != 3 {
			t.Fatalf("SRANDMEMBER 3: %v %v", ms, err)
		}
		if ms, err := r.SPopN(ctx, k, 2).Result(); err != nil || len(ms) != 2 {
			t.Fatalf("SPOP 2: %v %v", ms, err)
		}
		if m, err := r.SPop(ctx, k).Result(); err != nil || m == "" {
			t.Fatalf("SPOP: %q %v", m, err)
		}
		if n, err := r.SCard(ctx, k).Result(); err != nil || n != 2 {
			t.Fatalf("SCARD after SPOP: %d %v", n, err)
		}
		if n, err := r.SRem(ctx, k, "common", k, "1", "2", "extra").Result(); err != nil || n != 2 {
			t.Fatalf("SREM: %d %v", n, err)
		}
		if n, err := r.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Fatalf("EXISTS after the last SREM: %d %v", n, err)
		}
		r.SAdd(ctx, k, "common", k, 1, 2)
		ms, cur, err := r.SScan(ctx, k, 0, "c*", 10).Result()
		if err != nil || cur != 0 || !slices.Equal(ms, []string{"common"}) {
			t.Fatalf("SSCAN: %v %d %v", ms, cur, err)
		}
		if typ, err := r.Type(ctx, k).Result(); err != nil || typ != "set" {
			t.Fatalf("TYPE: %q %v", typ, err)
		}
		if enc, err := r.ObjectEncoding(ctx, k).Result(); err != nil || enc != "hashtable" {
			t.Fatalf("OBJECT ENCODING: %q %v", enc, err)
		}
		if n, err := r.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("DBSIZE: %d %v", n, err)
		}
		var scanned []string
		iter := r.ScanType(ctx, 0, "", 100, "set").Iterator()
		for iter.Next(ctx) {
			scanned = append(scanned, iter.Val())
		}
		if iter.Err() != nil || len(scanned) != len(keys) {
			t.Fatalf("SCAN TYPE set: %v %v", scanned, iter.Err())
		}
		if ok, err := r.Expire(ctx, k, time.Hour).Result(); err != nil || !ok {
			t.Fatalf("EXPIRE: %v %v", ok, err)
		}
		if d, err := r.TTL(ctx, k).Result(); err != nil || d <= 0 {
			t.Fatalf("TTL: %v %v", d, err)
		}

		// Reads across the three shards, computed by the proxy.
		a, b, d := on[0][0], on[1][0], on[2][0]
		r.SAdd(ctx, b, "onlyb")
		if ms, err := r.SInter(ctx, a, b, d).Result(); err != nil || !slices.Equal(sorted(ms), []string{"1", "2", "common"}) {
			t.Fatalf("SINTER across shards: %v %v", ms, err)
		}
		if n, err := r.SInterCard(ctx, 0, a, b, d).Result(); err != nil || n != 3 {
			t.Fatalf("SINTERCARD across shards: %d %v", n, err)
		}
		if n, err := r.SInterCard(ctx, 2, a, b, d).Result(); err != nil || n != 2 {
			t.Fatalf("SINTERCARD LIMIT 2 across shards: %d %v", n, err)
		}
		if ms, err := r.SUnion(ctx, a, b, d, "missing").Result(); err != nil || len(ms) != 7 {
			t.Fatalf("SUNION across shards: %v %v", ms, err)
		}
		if ms, err := r.SDiff(ctx, b, a, d).Result(); err != nil || !slices.Equal(sorted(ms), sorted([]string{b, "onlyb"})) {
			t.Fatalf("SDIFF across shards: %v %v", ms, err)
		}
		if ms, err := r.SInter(ctx, a, "missing", d).Result(); err != nil || len(ms) != 0 {
			t.Fatalf("SINTER with an absent key: %v %v", ms, err)
		}
		r.Set(ctx, d+"str", "v", 0)
		for _, e := range []error{
			r.SInter(ctx, a, b, d+"str").Err(), r.SUnion(ctx, a, d+"str").Err(),
			r.SDiff(ctx, "missing", b, d+"str").Err(), r.SInterCard(ctx, 0, a, d+"str").Err(),
		} {
			if e == nil || !strings.HasPrefix(e.Error(), "WRONGTYPE") {
				t.Fatalf("a string among the keys across shards: %v", e)
			}
		}
		if err := r.Do(ctx, "SINTERCARD", "3", a, b).Err(); err == nil || err.Error() != "ERR Number of keys can't be greater than number of args" {
			t.Fatalf("SINTERCARD numkeys past the args: %v", err)
		}

		// The atomic forms, within one shard and across shards.
		s1, s2, s3 := on[1][0], on[1][1], on[1][2]
		if n, err := r.SInterStore(ctx, s3, s1, s2).Result(); err != nil || n != 3 {
			t.Fatalf("SINTERSTORE on one shard: %d %v", n, err)
		}
		if n, err := r.SUnionStore(ctx, s3, s1, s2).Result(); err != nil || n != 6 {
			t.Fatalf("SUNIONSTORE on one shard: %d %v", n, err)
		}
		if ok, err := r.SMove(ctx, s1, s2, "onlyb").Result(); err != nil || !ok {
			t.Fatalf("SMOVE on one shard: %v %v", ok, err)
		}
		before := r.SCard(ctx, b).Val()
		if ok, err := r.SMove(ctx, a, b, "common").Result(); err != nil || !ok {
			t.Fatalf("SMOVE of a member the destination holds, across shards: %v %v", ok, err)
		}
		if r.SIsMember(ctx, a, "common").Val() || r.SCard(ctx, b).Val() != before {
			t.Fatalf("SMOVE across shards: the member is still in the source, or the destination grew")
		}
		if n, err := r.SInterStore(ctx, s3, a, b).Result(); err != nil || n != int64(len(r.SInter(ctx, a, b).Val())) {
			t.Fatalf("SINTERSTORE across shards: %d %v", n, err)
		}
		if n, err := r.SUnionStore(ctx, s3, b, d).Result(); err != nil || n != r.SCard(ctx, s3).Val() || n == 0 {
			t.Fatalf("SUNIONSTORE across shards: %d %v", n, err)
		}

		// WRONGTYPE both ways, and a string over a set.
		if err := r.Get(ctx, a).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("GET of a set: %v", err)
		}
		if err := r.SAdd(ctx, d+"str", "m").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("SADD to a string: %v", err)
		}
		if err := r.Set(ctx, a, "now a string", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := r.Get(ctx, a).Result(); err != nil || v != "now a string" {
			t.Fatalf("GET after SET over a set: %q %v", v, err)
		}
		if err := r.SPop(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("SPOP of an absent key: %v", err)
		}
		// A transaction on one shard.
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s2, "tx")
			p.SMembers(ctx, s2)
			return nil
		})
		if err != nil || !slices.Contains(cmds[1].(*redis.StringSliceCmd).Val(), "tx") {
			t.Fatalf("MULTI/EXEC: %v %v", cmds, err)
		}
		if n, err := r.Del(ctx, keys...).Result(); err != nil || n != int64(len(keys)) {
			t.Fatalf("DEL over every shard: %d %v", n, err)
		}
		if n, err := r.SCard(ctx, s2).Result(); err != nil || n != 0 {
			t.Fatalf("SCARD after DEL: %d %v", n, err)
		}
	})
}
