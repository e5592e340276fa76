package bitcask

import (
	"bytes"
	"sync"
	"unsafe"
)

// The key directory maps every live key to the newest record that holds its
// value. It is split into numShards shards by the top bits of the key's
// xxhash64, each with its own RWMutex, and every shard keeps its entries
// sorted by (hash, key) in a list of small sorted chunks. Sorted by hash, the
// shards read in order form the whole key space in hash order, which is what
// SCAN's cursor walks.
//
// Memory: an entry is 48 bytes with no per-entry allocation other than the
// key's own bytes; chunks grow in small steps and split in halves, so they
// stay about 90% full. That keeps the directory near 52 bytes per key plus
// the key (see BenchmarkKeydirBytesPerKey).
const (
	shardBits = 8
	numShards = 1 << shardBits
	// maxChunk bounds a chunk's length: insertions move at most this many
	// entries, and a lookup is a binary search over chunks then within one.
	maxChunk = 64
)

// entry is one key's slot in the key directory.
type entry struct {
	hash     uint64 // xxhash64 of the key; the primary sort key
	key      *byte  // first byte of the key's private copy; nil when klen == 0
	seq      uint64 // sequence number of the newest record of the key (put or expire)
	expireAt int64  // absolute unix ms, 0 = none
	off      uint32 // offset of the put record in its data file
	vlen     uint32 // logical value length (the bytes the caller wrote)
	klen     uint32 // key length
	file     uint16 // handle of the data file holding the put record
	vtype    uint8  // value type of the put record
	_        uint8
}

func (e *entry) keyBytes() []byte { return unsafe.Slice(e.key, e.klen) }

// recSize is the size on disk of the put record the entry points at.
func (e *entry) recSize() int64 {
	if e.vtype == valTypeInt {
		return headerSize + int64(e.klen) + intValueSize
	}
	return headerSize + int64(e.klen) + int64(e.vlen)
}

// liveLen is the entry's contribution to LiveBytes.
func (e *entry) liveLen() int64 { return int64(e.klen) + int64(e.vlen) }

func (e *entry) expired(now int64) bool { return e.expireAt != 0 && e.expireAt <= now }

func (e *entry) meta() Meta { return Meta{ExpireAt: e.expireAt, Seq: e.seq} }

// cmp orders an entry against (h, key).
func (e *entry) cmp(h uint64, key []byte) int {
	if e.hash != h {
		if e.hash < h {
			return -1
		}
		return 1
	}
	return bytes.Compare(e.keyBytes(), key)
}

// newKey copies key into a private allocation for the key directory.
func newKey(key []byte) *byte {
	if len(key) == 0 {
		return nil
	}
	b := make([]byte, len(key))
	copy(b, key)
	return &b[0]
}

type chunk struct {
	e []entry // sorted by (hash, key); never empty unless it is the shard's only chunk
}

type shard struct {
	mu sync.RWMutex
	// chunks are sorted: every entry of chunks[i] sorts before every entry
	// of chunks[i+1]. Guarded by mu.
	chunks []*chunk
	n      int // entries in the shard
	nexp   int // entries with an expiry, so the sweep can skip shards without any
	_      [64]byte
}

type keydir struct {
	shards [numShards]shard
}

func (kd *keydir) shardFor(h uint64) *shard { return &kd.shards[h>>(64-shardBits)] }

// search returns the chunk index and the position in it where (h, key) is or
// would be inserted, and whether it is there.
func (s *shard) search(h uint64, key []byte) (ci, i int, found bool) {
	cs := s.chunks
	if len(cs) == 0 {
		return 0, 0, false
	}
	// The last chunk whose first entry is <= (h, key).
	lo, hi := 0, len(cs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cs[m].e[0].cmp(h, key) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	ci = lo - 1
	if ci < 0 {
		ci = 0
	}
	es := cs[ci].e
	lo, hi = 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].cmp(h, key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return ci, lo, lo < len(es) && es[lo].cmp(h, key) == 0
}

// get returns the entry of key or nil. The pointer is valid until the
// shard's lock is released or the shard is modified.
func (s *shard) get(h uint64, key []byte) *entry {
	ci, i, ok := s.search(h, key)
	if !ok {
		return nil
	}
	return &s.chunks[ci].e[i]
}

// insertAt inserts e at position (ci, i) returned by search.
func (s *shard) insertAt(ci, i int, e entry) {
	s.n++
	if e.expireAt != 0 {
		s.nexp++
	}
	if len(s.chunks) == 0 {
		s.chunks = append(s.chunks, &chunk{e: append(make([]entry, 0, 4), e)})
		return
	}
	c := s.chunks[ci]
	if len(c.e) >= maxChunk {
		// Split in halves, each with a little room to grow.
		half := len(c.e) / 2
		right := &chunk{e: make([]entry, len(c.e)-half, len(c.e)-half+maxChunk/8)}
		copy(right.e, c.e[half:])
		left := make([]entry, half, half+maxChunk/8)
		copy(left, c.e[:half])
		c.e = left
		s.chunks = append(s.chunks, nil)
		copy(s.chunks[ci+2:], s.chunks[ci+1:])
		s.chunks[ci+1] = right
		if i > half {
			c, i = right, i-half
		} else if i == half {
			// Either chunk can take it; the left one keeps chunk firsts unchanged.
			c = s.chunks[ci]
		}
	}
	if len(c.e) == cap(c.e) {
		n := cap(c.e) + cap(c.e)/4 + 2
		if n > maxChunk {
			n = maxChunk
		}
		ne := make([]entry, len(c.e), n)
		copy(ne, c.e)
		c.e = ne
	}
	c.e = c.e[:len(c.e)+1]
	copy(c.e[i+1:], c.e[i:])
	c.e[i] = e
}

// removeAt removes the entry at (ci, i).
func (s *shard) removeAt(ci, i int) {
	c := s.chunks[ci]
	if c.e[i].expireAt != 0 {
		s.nexp--
	}
	s.n--
	copy(c.e[i:], c.e[i+1:])
	c.e[len(c.e)-1] = entry{}
	c.e = c.e[:len(c.e)-1]
	switch {
	case len(c.e) == 0:
		copy(s.chunks[ci:], s.chunks[ci+1:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
	case ci+1 < len(s.chunks) && len(c.e)+len(s.chunks[ci+1].e) <= maxChunk/2:
		// Merge small neighbours so heavy deletion does not leave many
		// nearly empty chunks behind.
		next := s.chunks[ci+1]
		ne := make([]entry, len(c.e)+len(next.e), len(c.e)+len(next.e)+maxChunk/8)
		copy(ne, c.e)
		copy(ne[len(c.e):], next.e)
		c.e = ne
		copy(s.chunks[ci+1:], s.chunks[ci+2:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
	case cap(c.e) > 16 && len(c.e) < cap(c.e)/2:
		ne := make([]entry, len(c.e), len(c.e)+len(c.e)/8+1)
		copy(ne, c.e)
		c.e = ne
	}
}

// setExpireAt changes an entry's expiry keeping nexp right.
func (s *shard) setExpireAt(e *entry, expireAt int64) {
	if (e.expireAt != 0) != (expireAt != 0) {
		if expireAt != 0 {
			s.nexp++
		} else {
			s.nexp--
		}
	}
	e.expireAt = expireAt
}

// ascend calls fn for the entries with hash >= from, in order, until fn
// returns false. fn must not modify the shard.
func (s *shard) ascend(from uint64, fn func(e *entry) bool) {
	ci, i := 0, 0
	if from != 0 {
		ci, i, _ = s.search(from, nil)
	}
	for ; ci < len(s.chunks); ci, i = ci+1, 0 {
		es := s.chunks[ci].e
		for ; i < len(es); i++ {
			if !fn(&es[i]) {
				return
			}
		}
	}
}

// reset drops every entry.
func (s *shard) reset() {
	s.chunks = nil
	s.n = 0
	s.nexp = 0
}
