package proxy

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/rangemap"
)

// Under hash tags, keys with one tag live on one shard, so the atomic
// commands and MULTI/EXEC over them run there, while untagged keys still
// spread over every shard.
func TestHashTagsRouting(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3, hashTags: true})
	ctx := context.Background()
	r := c.client(2)
	keys := []string{"user:{42}:a", "user:{42}:b", "{42}", "x{42}y", "{42}:set1", "{42}:set2", "{42}:dst"}
	owner := c.owner("42")
	whole := map[int]bool{}
	for _, k := range keys {
		if got := c.owner(k); got != owner {
			t.Fatalf("%s: shard %d, want %d (its tag's)", k, got, owner)
		}
		whole[c.m.Find(rangemap.PositionString(k))] = true
	}
	if len(whole) < 2 {
		t.Fatalf("the test keys share a shard by their whole bytes too: it would prove nothing")
	}
	loc, err := r.Do(ctx, "SHARD.LOCATE", "user:{42}:a").StringSlice()
	if err != nil || len(loc) != 4 || loc[1] != c.m.Shards[owner].Name || loc[3] != "42" ||
		loc[0] != rangemap.FormatPosition(rangemap.PositionString("42")) {
		t.Fatalf("SHARD.LOCATE user:{42}:a = %q, %v", loc, err)
	}

	cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "user:{42}:a", "1", 0)
		p.Set(ctx, "user:{42}:b", "2", 0)
		p.IncrBy(ctx, "user:{42}:a", 10)
		return nil
	})
	if err != nil || len(cmds) != 3 || cmds[2].(*redis.IntCmd).Val() != 11 {
		t.Fatalf("MULTI/EXEC over {42}: %v %v", cmds, err)
	}
	if err := r.Rename(ctx, "user:{42}:b", "x{42}y").Err(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	if v, err := r.Get(ctx, "x{42}y").Result(); v != "2" || err != nil {
		t.Fatalf("GET after RENAME: %q %v", v, err)
	}
	if ok, err := r.MSetNX(ctx, "{42}", "a", "user:{42}:b", "b").Result(); !ok || err != nil {
		t.Fatalf("MSETNX: %v %v", ok, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.SAdd(ctx, "{42}:set1", "m1", "m2", "m3").Err())
	must(r.SAdd(ctx, "{42}:set2", "m2", "m3", "m4").Err())
	if ok, err := r.SMove(ctx, "{42}:set1", "{42}:set2", "m1").Result(); !ok || err != nil {
		t.Fatalf("SMOVE: %v %v", ok, err)
	}
	if n, err := r.SInterStore(ctx, "{42}:dst", "{42}:set1", "{42}:set2").Result(); n != 2 || err != nil {
		t.Fatalf("SINTERSTORE: %v %v", n, err)
	}
	// Everything is on the tag's node.
	node := c.nodes[owner].client(t)
	for _, k := range keys {
		if n, err := node.Exists(ctx, k).Result(); n != 1 || err != nil {
			t.Errorf("%s is not on the node of its tag: %v %v", k, n, err)
		}
	}

	// Untagged keys (and "{}" keys, whose tag is empty) spread.
	per := make([]int, 3)
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("plain%d", i)
		if i%2 == 1 {
			k = fmt.Sprintf("{}%d", i)
		}
		must(r.Set(ctx, k, "v", 0).Err())
		per[c.owner(k)]++
	}
	for i, n := range per {
		got, err := c.nodes[i].client(t).DBSize(ctx).Result()
		if err != nil || n == 0 {
			t.Fatalf("shard %d: %d untagged keys, %v", i, n, err)
		}
		want := int64(n)
		if i == owner {
			want += int64(len(keys))
		}
		if got != want {
			ks, _ := c.nodes[i].client(t).Keys(ctx, "*").Result()
			t.Errorf("shard %d DBSIZE = %d, want %d; %d keys: %q", i, got, want, len(ks), ks)
		}
	}
	// Keys of two different tags on two shards: a cross-shard transaction.
	a, b := "{x0}", ""
	for i := 1; b == ""; i++ {
		if k := fmt.Sprintf("{x%d}", i); c.owner(k) != c.owner(a) {
			b = k
		}
	}
	if err := r.Rename(ctx, "user:{42}:a", b).Err(); err != nil {
		t.Errorf("RENAME across shards: %v", err)
	}
}

// SCAN through the proxy under hash tags returns every key that exists for
// the whole scan, while other keys come and go, over three shards; KEYS,
// DBSIZE and RANDOMKEY agree with it.
func TestHashTagsScanComplete(t *testing.T) {
	for _, tags := range []bool{true, false} {
		t.Run(fmt.Sprintf("hash_tags=%v", tags), func(t *testing.T) {
			c := startCluster(t, clusterOpts{nodes: 3, hashTags: tags})
			ctx := context.Background()
			r := c.client(3)
			want := map[string]bool{}
			pipe := r.Pipeline()
			for i := 0; i < 3000; i++ {
				k := fmt.Sprintf("plain:%d", i)
				if i%3 != 0 {
					k = fmt.Sprintf("u:{%d}:%d", i%40, i)
				}
				want[k] = true
				pipe.Set(ctx, k, "v", 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			per := make([]int, 3)
			for k := range want {
				per[c.owner(k)]++
			}
			for i, n := range per {
				if n == 0 {
					t.Fatalf("shard %d has no keys: %v", i, per)
				}
			}
			seen := map[string]bool{}
			var cursor uint64
			calls := 0
			for {
				keys, next, err := r.Scan(ctx, cursor, "", 37).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					seen[k] = true
				}
				// Churn: a key appears and another goes between calls.
				if err := r.Set(ctx, fmt.Sprintf("churn:{%d}", calls), "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
				if calls > 0 {
					r.Del(ctx, fmt.Sprintf("churn:{%d}", calls-1))
				}
				calls++
				if calls > 10000 {
					t.Fatal("SCAN does not end")
				}
				if next == 0 {
					break
				}
				cursor = next
			}
			for k := range want {
				if !seen[k] {
					t.Fatalf("SCAN missed %s (shard %d) after %d calls", k, c.owner(k), calls)
				}
			}
			r.Del(ctx, fmt.Sprintf("churn:{%d}", calls-1))
			// MATCH is applied on the nodes, per shard.
			matched := 0
			iter := r.Scan(ctx, 0, "plain:*", 100).Iterator()
			for iter.Next(ctx) {
				matched++
			}
			if err := iter.Err(); err != nil || matched < 1000 {
				t.Fatalf("SCAN MATCH plain:*: %d keys, %v", matched, err)
			}
			all, err := r.Keys(ctx, "*").Result()
			if err != nil || len(all) != len(want) {
				t.Fatalf("KEYS *: %d keys, %v; want %d", len(all), err, len(want))
			}
			if n, err := r.DBSize(ctx).Result(); err != nil || n != int64(len(want)) {
				t.Fatalf("DBSIZE = %d, %v; want %d", n, err, len(want))
			}
			for i := 0; i < 20; i++ {
				if k, err := r.RandomKey(ctx).Result(); err != nil || !want[k] {
					t.Fatalf("RANDOMKEY = %q, %v", k, err)
				}
			}
		})
	}
}

// A cursor past the last shard ends the scan, as Redis answers a cursor
// beyond its table.
func TestHashTagsScanCursorPastShards(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3, hashTags: true})
	r := c.client(2)
	keys, next, err := r.Scan(context.Background(), rangemap.TagCursor(5, 0), "", 10).Result()
	if err != nil || next != 0 || len(keys) != 0 {
		t.Fatalf("SCAN past the shards: %v %d %v", keys, next, err)
	}
}

// A node that holds the same range under the other placement mode is a map
// mismatch: the proxy forces sizes, never the mode, and serves none of that
// shard's keys. A reload cannot change the mode either.
func TestHashTagsModeNeverForced(t *testing.T) {
	ctx := context.Background()
	n0, n1 := newNode(t, "s0"), newNode(t, "s1")
	n0.start(t)
	n1.start(t)
	// n1 was assigned its range under hash tags, and a different size.
	if err := n1.client(t).Do(ctx, "SHARD.ASSIGN", "s1", "0.5", "1", "1000", "HASHTAGS", "1").Err(); err != nil {
		t.Fatal(err)
	}
	m := evenMap([]*node{n0, n1})
	cfg := DefaultConfig()
	cfg.Map = m
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	r := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	defer r.Close()
	c := &cluster{m: m}
	k0, k1 := c.keysOn(0, 1, "mode-")[0], c.keysOn(1, 1, "mode-")[0]
	eventually(t, 5*time.Second, func() error { return r.Set(ctx, k0, "v", 0).Err() })
	err = r.Get(ctx, k1).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN shard s1") || !strings.Contains(err.Error(), "hash_tags 1") {
		t.Fatalf("GET on the node of the other mode: %v", err)
	}
	if info := n1.client(t).Info(ctx, "shard").Val(); !strings.Contains(info, "shard_hash_tags:1\r\n") || !strings.Contains(info, "shard_size_limit:1000\r\n") {
		t.Fatalf("the proxy forced the node's assignment:\n%s", info)
	}

	cl := startCluster(t, clusterOpts{nodes: 2, mapFile: true})
	tagged := *cl.m
	tagged.HashTags = true
	cl.writeMap(&tagged)
	if err := cl.client(2).Do(ctx, "SHARD.RELOAD").Err(); err == nil || !strings.Contains(err.Error(), "turns hash_tags on") {
		t.Fatalf("SHARD.RELOAD turning hash tags on: %v", err)
	}
}
