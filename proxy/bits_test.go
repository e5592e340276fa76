package proxy

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestBitsThroughProxy drives the bit commands and LCS with go-redis's
// typed API through the proxy and three nodes, in RESP2 and RESP3: bitmaps
// on every shard, BITOP and LCS on one shard and across shards (a
// cross-shard transaction).
func TestBitsThroughProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for i := range c.nodes {
			k := c.keysOn(i, 1, fmt.Sprintf("flags:%d:", proto))[0]
			for _, off := range []int64{0, 9, 1000} {
				if was, err := r.SetBit(ctx, k, off, 1).Result(); err != nil || was != 0 {
					t.Fatalf("SETBIT %s %d: %d %v", k, off, was, err)
				}
			}
			if b, err := r.GetBit(ctx, k, 9).Result(); err != nil || b != 1 {
				t.Fatalf("GETBIT %s: %d %v", k, b, err)
			}
			if n, err := r.BitCount(ctx, k, nil).Result(); err != nil || n != 3 {
				t.Fatalf("BITCOUNT %s: %d %v", k, n, err)
			}
			if n, err := r.BitCount(ctx, k, &redis.BitCount{Start: 1, End: 999, Unit: "BIT"}).Result(); err != nil || n != 1 {
				t.Fatalf("BITCOUNT BIT %s: %d %v", k, n, err)
			}
			if p, err := r.BitPos(ctx, k, 1, 1).Result(); err != nil || p != 9 {
				t.Fatalf("BITPOS %s: %d %v", k, p, err)
			}
			if vs, err := r.BitField(ctx, k, "SET", "u8", "#10", 200, "INCRBY", "u8", "#10", 100, "GET", "u8", "#10").Result(); err != nil ||
				len(vs) != 3 || vs[0] != 0 || vs[1] != 44 || vs[2] != 44 {
				t.Fatalf("BITFIELD %s: %v %v", k, vs, err)
			}
			if vs, err := r.BitFieldRO(ctx, k, "u8", "#10").Result(); err != nil || len(vs) != 1 || vs[0] != 44 {
				t.Fatalf("BITFIELD_RO %s: %v %v", k, vs, err)
			}
		}

		// BITOP and LCS with every key on one shard run there.
		same := c.keysOn(1, 3, fmt.Sprintf("same:%d:", proto))
		if err := r.MSet(ctx, same[1], "ohmytext", same[2], "mynewtext").Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := r.BitOpOr(ctx, same[0], same[1], same[2]).Result(); err != nil || n != 9 {
			t.Fatalf("BITOP OR on one shard: %d %v", n, err)
		}
		if s, err := r.LCS(ctx, &redis.LCSQuery{Key1: same[1], Key2: same[2]}).Result(); err != nil || s.MatchString != "mytext" {
			t.Fatalf("LCS on one shard: %+v %v", s, err)
		}
		if s, err := r.LCS(ctx, &redis.LCSQuery{Key1: same[1], Key2: same[2], Idx: true, WithMatchLen: true}).Result(); err != nil ||
			s.Len != 6 || len(s.Matches) != 2 || s.Matches[0].MatchLen != 4 {
			t.Fatalf("LCS IDX on one shard: %+v %v", s, err)
		}

		// Across shards: a cross-shard transaction, the same replies.
		a, b := c.keysOn(0, 1, fmt.Sprintf("x:%d:", proto))[0], c.keysOn(2, 1, fmt.Sprintf("y:%d:", proto))[0]
		if err := r.MSet(ctx, a, "abc", b, "abd").Err(); err != nil {
			t.Fatal(err)
		}
		dest := c.keysOn(1, 1, fmt.Sprintf("dest:%d:", proto))[0]
		if n, err := r.BitOpAnd(ctx, dest, a, b).Result(); err != nil || n != 3 {
			t.Fatalf("BITOP AND across shards: %d %v", n, err)
		}
		if v, err := r.Get(ctx, dest).Result(); err != nil || v != "ab`" {
			t.Fatalf("BITOP AND across shards stored %q %v", v, err)
		}
		if s, err := r.LCS(ctx, &redis.LCSQuery{Key1: a, Key2: b}).Result(); err != nil || s.MatchString != "ab" {
			t.Fatalf("LCS across shards: %+v %v", s, err)
		}
		if _, err := r.GetBit(ctx, a, 1<<32).Result(); err == nil || err.Error() != "ERR bit offset is not an integer or out of range" {
			t.Fatalf("GETBIT past 2^32-1: %v", err)
		}
	})
}
