package shardnode

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestReadCache(t *testing.T) {
	if newReadCache(1000) != nil {
		t.Fatal("a tiny cache should be off")
	}
	rc := newReadCache(cacheShards * 4096)
	rc.put([]byte("k"), []byte("v1"), 5)
	if v, ok := rc.get(nil, []byte("k"), 5); !ok || string(v) != "v1" {
		t.Fatalf("hit: %q %v", v, ok)
	}
	if _, ok := rc.get(nil, []byte("k"), 6); ok {
		t.Fatal("a value cached at seq 5 served for seq 6")
	}
	rc.put([]byte("k"), []byte("old"), 4)
	if v, _ := rc.get(nil, []byte("k"), 5); string(v) != "v1" {
		t.Fatal("an older value replaced a newer one")
	}
	big := make([]byte, maxCachedValue+1)
	rc.put([]byte("big"), big, 1)
	if _, ok := rc.get(nil, []byte("big"), 1); ok {
		t.Fatal("a value over maxCachedValue was cached")
	}
	for i := 0; i < 10000; i++ {
		rc.put([]byte(fmt.Sprintf("key%d", i)), make([]byte, 100), uint64(i))
	}
	if got, limit := rc.size(), rc.limit*cacheShards; got > limit {
		t.Fatalf("cache holds %d bytes, limit %d", got, limit)
	}
	rc.reset()
	if rc.size() != 0 {
		t.Fatal("reset left bytes")
	}
}

// TestReadCacheCoherent: readers on many connections never see a value
// older than the last write they observed, while writers overwrite.
func TestReadCacheCoherent(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	rdb := n.client(2, func(o *redis.Options) { o.PoolSize = 8 })
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			key := fmt.Sprintf("c%d", w)
			for i := 0; i < 300; i++ {
				if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
					t.Error(err)
					return
				}
				got, err := rdb.Get(ctx, key).Int()
				if err != nil || got != i {
					t.Errorf("GET %s after SET %d: %d %v", key, i, got, err)
					return
				}
				if i%50 == 0 {
					rdb.Del(ctx, key)
					if err := rdb.Get(ctx, key).Err(); err != redis.Nil {
						t.Errorf("GET after DEL: %v", err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if info := n.raw().do("INFO", "memory"); !contains(info, "read_cache_hits:") {
		t.Errorf("INFO memory lacks the cache counters: %q", info)
	}
}
