package shardnode

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// readCache keeps recently read values in memory so that a GET of a hot key
// costs a key-directory lookup instead of a pread. An entry is tagged with
// the key's sequence number (bitcask.Meta.Seq), which changes on every
// write of the key, so a cached value is served only while it is still the
// key's current value: writes never have to reach the cache for it to be
// correct.
type readCache struct {
	shards [cacheShards]cacheShard
	// limit is the byte budget of one shard.
	limit int64
	hits  atomic.Int64
	miss  atomic.Int64
}

const (
	cacheShards = 64
	// maxCachedValue keeps large values out: they would evict many small
	// ones, and a pread of them costs little next to the copy anyway.
	maxCachedValue = 64 << 10
	// cacheOverhead approximates the bytes an entry costs beyond its key
	// and value (map slot, entry struct, string header).
	cacheOverhead = 64
)

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]cacheEntry
	bytes int64
}

type cacheEntry struct {
	seq uint64
	val []byte
}

// newReadCache returns a cache of about size bytes, or nil when size is
// too small to be useful.
func newReadCache(size int64) *readCache {
	if size < cacheShards*4096 {
		return nil
	}
	rc := &readCache{limit: size / cacheShards}
	for i := range rc.shards {
		rc.shards[i].m = make(map[string]cacheEntry)
	}
	return rc
}

func (rc *readCache) shard(key []byte) *cacheShard {
	return &rc.shards[xxhash.Sum64(key)%cacheShards]
}

// get appends key's cached value to dst if the cache holds it at seq.
func (rc *readCache) get(dst, key []byte, seq uint64) ([]byte, bool) {
	s := rc.shard(key)
	s.mu.Lock()
	e, ok := s.m[string(key)]
	if ok && e.seq == seq {
		dst = append(dst, e.val...)
		s.mu.Unlock()
		rc.hits.Add(1)
		return dst, true
	}
	s.mu.Unlock()
	rc.miss.Add(1)
	return dst, false
}

// put caches a copy of value as key's value at seq.
func (rc *readCache) put(key, value []byte, seq uint64) {
	if len(value) > maxCachedValue {
		return
	}
	cost := int64(len(key) + len(value) + cacheOverhead)
	s := rc.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[string(key)]; ok {
		if old.seq >= seq {
			return // a newer value is cached already
		}
		s.bytes -= int64(len(key) + len(old.val) + cacheOverhead)
	}
	// Make room by dropping arbitrary entries: Go's map iteration order
	// is random enough for an eviction policy at this price.
	for k, e := range s.m {
		if s.bytes+cost <= rc.limit {
			break
		}
		s.bytes -= int64(len(k) + len(e.val) + cacheOverhead)
		delete(s.m, k)
	}
	if s.bytes+cost > rc.limit {
		return
	}
	s.m[string(key)] = cacheEntry{seq: seq, val: append([]byte(nil), value...)}
	s.bytes += cost
}

// reset empties the cache (FLUSHALL).
func (rc *readCache) reset() {
	for i := range rc.shards {
		s := &rc.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// size returns the bytes the cache holds.
func (rc *readCache) size() int64 {
	var n int64
	for i := range rc.shards {
		s := &rc.shards[i]
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}
