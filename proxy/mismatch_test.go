package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/rangemap"
)

// A node forced onto a range that overlaps its map range only in part:
// keys in the overlap are served, the others get TRYAGAIN (a cross-shard MSET
// runs nowhere), the shard is unhealthy until the map's
// assignment is forced back, and then it serves every key again.
func TestMapMismatchPartialOverlap(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	if err := c.nodes[0].client(t).Do(ctx, "SHARD.ASSIGN", "s0", "0.25", "0.75", "0", "FORCE").Err(); err != nil {
		t.Fatal(err)
	}
	var inside, outside string
	for _, k := range c.keysOn(0, 200, "ov-") {
		if p := rangemap.PositionString(k); p >= 0.25 && inside == "" {
			inside = k
		} else if p < 0.25 && outside == "" {
			outside = k
		}
	}
	other := c.keysOn(1, 1, "ov-")[0]
	sh := c.srv.table.Load().shards[0]
	forEachProto(t, func(t *testing.T, proto int) {
		r := c.client(proto)
		if err := r.Set(ctx, inside, "v", 0).Err(); err != nil {
			t.Fatalf("a key in the overlap: %v", err)
		}
		err := r.Set(ctx, outside, "v", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN shard s0 ("+sh.addr+") map mismatch, nothing was executed: the node answered WRONGSHARD ") {
			t.Fatalf("a key outside the overlap: %v", err)
		}
		err = r.MSet(ctx, outside, "v", other, "w").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN shard s0") || !strings.HasSuffix(err.Error(), "(cross-shard transaction not executed)") {
			t.Fatalf("MSET across the shards: %v", err)
		}
		// A cross-shard MSET is a transaction: nothing on the other shard.
		if err := r.Get(ctx, other).Err(); err != redis.Nil {
			t.Fatalf("the other shard's part of a failed MSET: %v", err)
		}
	})
	if sh.healthy() || !strings.HasPrefix(sh.health(), "map mismatch: ") {
		t.Fatalf("shard s0: healthy %v, health %q", sh.healthy(), sh.health())
	}
	if err := c.nodes[0].client(t).Do(ctx, "SHARD.ASSIGN", "s0", "0", "0.5", "0", "FORCE").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if !sh.healthy() {
			return fmt.Errorf("shard s0 still unhealthy: %s", sh.health())
		}
		return nil
	})
	if err := c.client(2).Set(ctx, outside, "v", 0).Err(); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
}
