package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/rangemap"
)

// nodeEntry is a map entry served by n.
func nodeEntry(n *node, name string, start, end float64, size int64) rangemap.Shard {
	host, port, _ := net.SplitHostPort(n.addr)
	p, _ := strconv.Atoi(port)
	return rangemap.Shard{Name: name, Start: start, End: end, Size: size, Host: host, Port: p}
}

// A node serving two entries of the map that are not adjacent gets both
// ranges in one assignment, serves the keys of both through the proxy, and
// is sent a command for every node once; SCAN sees every key although the
// node's walk crosses the other node's range.
func TestNodeWithRangesNotAdjacent(t *testing.T) {
	c := startCluster(t, clusterOpts{mapFile: true, shards: func(ns []*node) []rangemap.Shard {
		return []rangemap.Shard{nodeEntry(ns[0], "a", 0, 0.3, 0), nodeEntry(ns[1], "b", 0.3, 0.6, 0), nodeEntry(ns[0], "c", 0.6, 1, 0)}
	}})
	ctx := context.Background()
	if n := len(c.srv.table.Load().nodes); n != 2 {
		t.Fatalf("%d nodes in the table, want 2", n)
	}
	r := c.client(2)
	const n = 3000
	pipe := r.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(ctx, fmt.Sprintf("k%d", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Each key is on the node the map names, which refuses it on the
	// other (the first 200 keys).
	direct := [2]*redis.Client{c.nodes[0].client(t), c.nodes[1].client(t)}
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("k%d", i)
		want := 0
		if e := c.m.Shards[c.owner(k)]; e.Name == "b" {
			want = 1
		}
		got, err := direct[want].Get(ctx, k).Result()
		if err != nil || got != strconv.Itoa(i) {
			t.Fatalf("GET %s on node %d: %q %v", k, want, got, err)
		}
		if err := direct[1-want].Get(ctx, k).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGSHARD ") {
			t.Fatalf("GET %s on the other node: %v", k, err)
		}
	}
	info, err := direct[0].Info(ctx, "shard").Result()
	if err != nil || !strings.Contains(info, "shard_ranges:2\r\n") || !strings.Contains(info, "shard_range_1:name=c,start=0.6,end=1,size=0\r\n") {
		t.Fatalf("node 0 INFO shard: %v\n%s", err, info)
	}
	if got, err := r.DBSize(ctx).Result(); err != nil || got != n {
		t.Fatalf("DBSIZE %d %v, want %d", got, err, n)
	}
	seen := map[string]bool{}
	var cursor uint64
	for pages := 0; ; pages++ {
		keys, next, err := r.Scan(ctx, cursor, "k*", 50).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		if cursor = next; cursor == 0 {
			break
		}
		if pages > 10000 {
			t.Fatal("SCAN never ended")
		}
	}
	if len(seen) != n {
		t.Fatalf("SCAN saw %d keys, want %d", len(seen), n)
	}
	// MSET over both ranges of node 0 and node 1, then MGET.
	ka, kb, kc := keyInEntry(t, c, "a"), keyInEntry(t, c, "b"), keyInEntry(t, c, "c")
	if err := r.MSet(ctx, ka, "1", kb, "2", kc, "3").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := r.MGet(ctx, ka, kb, kc).Result(); err != nil || fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("MGET %v %v", got, err)
	}
	// An atomic command over node 0's two ranges is one node's.
	if err := r.Rename(ctx, ka, kc).Err(); err != nil {
		t.Fatalf("RENAME across node 0's ranges: %v", err)
	}

	// A reload that changes one range's size pushes the list again.
	m := *c.m
	m.Shards = append([]rangemap.Shard(nil), c.m.Shards...)
	m.Shards[2].Size = 1 << 30
	m.Shards[0].Size = 1 << 30
	c.writeMap(&m)
	if err := r.Do(ctx, "SHARD.RELOAD").Err(); err != nil {
		t.Fatal(err)
	}
	info, err = direct[0].Info(ctx, "shard").Result()
	if err != nil || !strings.Contains(info, "shard_size_limit:"+strconv.Itoa(2<<30)+"\r\n") {
		t.Fatalf("node 0 after the reload: %v\n%s", err, info)
	}
	for _, sh := range c.srv.table.Load().nodes {
		if !sh.healthy() {
			t.Errorf("shard %s: %s", sh.name, sh.health())
		}
	}
}

// keyInEntry is a key the map places in the entry named name.
func keyInEntry(t *testing.T, c *cluster, name string) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		k := "e" + strconv.Itoa(i)
		if c.m.Shards[c.owner(k)].Name == name {
			return k
		}
	}
	t.Fatalf("no key in %s", name)
	return ""
}

// The node's "already assigned" refusal is read back range by range: only
// sizes may differ for the proxy to FORCE its assignment.
func TestSameRangeOtherSize(t *testing.T) {
	rs := []rangemap.Shard{{Name: "a", Start: 0, End: 0.25, Size: 5}, {Name: "c", Start: 0.5, End: 0.75}}
	for _, tc := range []struct {
		msg  string
		tags bool
		want bool
	}{
		{"ERR shard node already assigned a [0,0.25) size 1, c [0.5,0.75) size 2 epoch 3; add FORCE to replace it", false, true},
		{"ERR shard node already assigned a [0,0.25) size 1, c [0.5,0.75) size 2 hash_tags 1 epoch 3; add FORCE to replace it", true, true},
		{"ERR shard node already assigned a [0,0.25) size 1, c [0.5,0.75) size 2 hash_tags 1; add FORCE to replace it", false, false},
		{"ERR shard node already assigned a [0,0.25) size 1; add FORCE to replace it", false, false},
		{"ERR shard node already assigned a [0,0.25) size 1, c [0.5,0.8) size 2; add FORCE to replace it", false, false},
		{"ERR shard node already assigned a [0,0.25) size 1, d [0.5,0.75) size 2; add FORCE to replace it", false, false},
		{"ERR shard node already assigned a [0,0.25) size 1, c [0.5,0.75) size 2, e [0.8,0.9) size 0; add FORCE to replace it", false, false},
		{"ERR stale epoch 2: shard node is at epoch 3", false, false},
	} {
		if got := sameRangeOtherSize(tc.msg, rs, tc.tags); got != tc.want {
			t.Errorf("%q (hash tags %v): %v, want %v", tc.msg, tc.tags, got, tc.want)
		}
	}
	if !sameRangeOtherSize("ERR shard node already assigned a [0,0.25) size 0; add FORCE to replace it", rs[:1], false) {
		t.Error("one range of another size")
	}
}
