package bitcask

import (
	"bytes"
	"encoding/binary"
	"sync"
)

// The key directory maps every live key to the newest put record holding
// its value. It is split into numShards shards by the top bits of the key's
// xxhash64, each with its own RWMutex. A shard keeps its entries sorted by
// (hash, key) in a list of small sorted chunks, so the shards read in order
// are the whole key space in hash order, which is what SCAN walks.
//
// Memory and the garbage collector: an entry is 40 bytes and holds no
// pointer; a key lives in its shard's key arena, append-only blocks of
// bytes holding a uvarint length and the key, and an entry refers to it by
// block and offset. Neither entries nor arena blocks contain pointers, so
// the collector never scans the key directory however many keys there are,
// and a key costs its own bytes plus one or two, with no allocation of its
// own. Chunks grow in small steps and split in halves, which keeps them
// around 90% full. BenchmarkKeydirBytesPerKey measures the result.
const (
	shardBits = 8
	numShards = 1 << shardBits
	// maxChunk bounds a chunk's length: an insertion moves at most this
	// many entries, and a lookup is a binary search over the chunks'
	// first hashes then within one chunk.
	maxChunk = 32
	// chunkGrow is how many entries a full chunk grows by.
	chunkGrow = 4
)

// entry is one key's slot in the key directory.
type entry struct {
	hash     uint64 // xxhash64 of the key; the primary sort key
	seq      uint64 // sequence number of the newest record of the key (put or expire)
	expireAt int64  // absolute unix ms, 0 = none
	off      uint32 // offset of the put record in its data file
	vlen     uint32 // logical value length; vlenInt set if the value is stored as an integer
	key      uint32 // the key in the shard's arena: block<<16 | offset
	file     uint16 // handle of the data file holding the put record
	// typ is 0 for a string; for a collection it is the key type of its
	// root record (keyTypeHash), which off and file then point at, and
	// the collection's elements are in the shard's colls.
	typ uint8
	// tag is the caller's in-memory mark of a string's value (Tx.PutTagged),
	// kept by expiry changes and merges, 0 after Open: never on disk.
	tag uint8
}

// vlenInt marks an integer value in entry.vlen (values are at most 512 MiB).
const vlenInt = 1 << 31

func (e *entry) valueLen() uint32 { return e.vlen &^ vlenInt }

func (e *entry) vtype() byte {
	if e.vlen&vlenInt != 0 {
		return valTypeInt
	}
	return valTypeBytes
}

func packVlen(vlen uint32, vtype byte) uint32 {
	if vtype == valTypeInt {
		return vlen | vlenInt
	}
	return vlen
}

// recSize is the size on disk of the put record the entry points at.
func (e *entry) recSize(klen int) int64 {
	if e.vlen&vlenInt != 0 {
		return headerSize + int64(klen) + intValueSize
	}
	return headerSize + int64(klen) + int64(e.vlen)
}

// liveLen is the entry's contribution to LiveBytes.
func (e *entry) liveLen(klen int) int64 { return int64(klen) + int64(e.valueLen()) }

func (e *entry) expired(now int64) bool { return e.expireAt != 0 && e.expireAt <= now }

func (e *entry) meta() Meta {
	return Meta{ExpireAt: e.expireAt, Seq: e.seq, Len: int64(e.valueLen()), Type: Type(e.typ), Tag: e.tag}
}

// chunk is a sorted run of entries.
type chunk struct {
	first uint64  // e[0].hash, so searches do not touch e
	last  uint64  // e[len(e)-1].hash
	e     []entry // sorted by (hash, key); never empty
}

func (c *chunk) bounds() { c.first, c.last = c.e[0].hash, c.e[len(c.e)-1].hash }

// Key arena layout.
const (
	arenaMinBlock = 256
	// arenaMaxBlock bounds the unused tail of a shard's open block; it
	// must not exceed 1<<16 (offsets in a block are 16 bits). A shard
	// then holds up to 512 MiB of keys (block numbers are 16 bits).
	arenaMaxBlock = 8 << 10
	arenaBigKey   = arenaMaxBlock / 4 // larger keys get a block of their own
	maxArenaBlock = 1 << 16
)

// keyArena stores a shard's keys. Blocks are append-only: bytes once
// written never change, so a slice of a key stays valid (the collector
// keeps its block alive) after the key is removed or the arena compacted.
type keyArena struct {
	blocks [][]byte // each a uvarint length then the key, repeated; big keys get a block of their own
	open   int      // index of the block new keys go to, or -1
	used   int64    // bytes of live keys (with their length prefix)
	dead   int64    // bytes of removed keys, reclaimed by compact
}

type shard struct {
	mu sync.RWMutex
	// chunks are sorted: every entry of chunks[i] sorts before every
	// entry of chunks[i+1]. Guarded by mu, as is everything below.
	chunks []chunk
	arena  keyArena
	n      int // entries in the shard
	nexp   int // entries with an expiry, so the sweep can skip shards without any
	// free is the key directory's free chunk arrays (see chunkArray); nil
	// for a shard on its own (tests).
	free *chunkFree
	// colls holds the elements of the shard's collections, by the
	// collection's key: one per entry with a typ.
	colls map[string]*coll
	_     [32]byte
}

// chunkFree holds chunk arrays that chunks let go, by capacity class, for
// the next growth or split of any shard of the key directory. Every shard
// mutation runs under DB.writeMu (commits, expiry removals, merges' drops;
// the rebuild at Open before anything runs concurrently), which therefore
// guards it too.
type chunkFree struct {
	lists [chunkClasses][][]entry
}

// Chunk arrays come in capacity classes, multiples of chunkGrow from
// minChunkCap to maxChunk. Growing a chunk copies it into an array one
// class larger, and a split copies it into two smaller ones; the array
// left behind goes to the key directory's free list and is taken by the
// next growth or split that needs its class, instead of becoming garbage.
// Without this, loading a million keys allocated five times the key
// directory's size, and the collector let the heap grow to twice its live
// size between cycles, which was most of a loaded node's memory. The lists
// are short (maxFreeChunks per class, a few hundred KiB in all): in a
// growing directory every class is freed about as often as it is needed,
// and one list for all shards lets one shard's frees feed another's
// growth (lists per shard dropped a third of what was freed).
const (
	minChunkCap   = 2 * chunkGrow
	chunkClasses  = (maxChunk-minChunkCap)/chunkGrow + 1
	maxFreeChunks = 64
)

// chunkCapFor is the class of a chunk of n entries that keeps room to
// grow.
func chunkCapFor(n int) int {
	c := (n + 2*chunkGrow - 1) / chunkGrow * chunkGrow
	return min(max(c, minChunkCap), maxChunk)
}

// chunkArray returns an array of length n and capacity c (a class), from
// the free list when it has one.
func (s *shard) chunkArray(n, c int) []entry {
	if s.free != nil {
		k := (c - minChunkCap) / chunkGrow
		if l := s.free.lists[k]; len(l) > 0 {
			a := l[len(l)-1]
			l[len(l)-1] = nil
			s.free.lists[k] = l[:len(l)-1]
			return a[:n]
		}
	}
	return make([]entry, n, c)
}

// freeArray hands back an array no chunk uses any more.
func (s *shard) freeArray(a []entry) {
	c := cap(a)
	if s.free == nil || c < minChunkCap || c > maxChunk || c%chunkGrow != 0 {
		return
	}
	k := (c - minChunkCap) / chunkGrow
	if len(s.free.lists[k]) < maxFreeChunks {
		s.free.lists[k] = append(s.free.lists[k], a[:0])
	}
}

type keydir struct {
	shards [numShards]shard
	free   chunkFree
}

// init links the shards to the directory's free chunk arrays.
func (kd *keydir) init() {
	for i := range kd.shards {
		kd.shards[i].free = &kd.free
	}
}

func (kd *keydir) shardFor(h uint64) *shard { return &kd.shards[h>>(64-shardBits)] }

// keyOf returns the entry's key. The slice stays valid after the shard lock
// is released (see keyArena), but must not be modified.
func (s *shard) keyOf(e *entry) []byte {
	b := s.arena.blocks[e.key>>16]
	o := int(e.key & 0xffff)
	klen, n := binary.Uvarint(b[o:])
	o += n
	return b[o : o+int(klen) : o+int(klen)]
}

// addKey copies key into the arena and returns its reference.
func (s *shard) addKey(key []byte) uint32 {
	a := &s.arena
	var lb [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(lb[:], uint64(len(key)))
	size := ln + len(key)
	a.used += int64(size)
	if len(a.blocks) >= maxArenaBlock {
		s.compact()
		if len(a.blocks) >= maxArenaBlock {
			panic("bitcask: key arena of a shard exceeds 65536 blocks")
		}
	}
	if size > arenaBigKey {
		b := make([]byte, 0, size)
		b = append(append(b, lb[:ln]...), key...)
		a.blocks = append(a.blocks, b)
		return uint32(len(a.blocks)-1) << 16
	}
	if a.open < 0 || len(a.blocks) == 0 || cap(a.blocks[a.open])-len(a.blocks[a.open]) < size {
		c := arenaMinBlock
		if a.open >= 0 && len(a.blocks) > 0 {
			c = min(2*cap(a.blocks[a.open]), arenaMaxBlock)
		}
		a.blocks = append(a.blocks, make([]byte, 0, c))
		a.open = len(a.blocks) - 1
	}
	b := a.blocks[a.open]
	ref := uint32(a.open)<<16 | uint32(len(b))
	b = append(append(b, lb[:ln]...), key...)
	a.blocks[a.open] = b
	return ref
}

// dropKey accounts for a removed key and compacts the arena when at least
// half of it is dead.
func (s *shard) dropKey(klen int) {
	var lb [binary.MaxVarintLen64]byte
	size := int64(binary.PutUvarint(lb[:], uint64(klen)) + klen)
	s.arena.used -= size
	s.arena.dead += size
	if s.arena.dead >= 4096 && s.arena.dead >= s.arena.used {
		s.compact()
	}
}

// compact copies the live keys into a fresh arena.
func (s *shard) compact() {
	old := s.arena
	s.arena = keyArena{open: -1}
	for ci := range s.chunks {
		es := s.chunks[ci].e
		for i := range es {
			b := old.blocks[es[i].key>>16]
			o := int(es[i].key & 0xffff)
			klen, n := binary.Uvarint(b[o:])
			es[i].key = s.addKey(b[o+n : o+n+int(klen)])
		}
	}
}

// search returns the chunk index and the position in it where (h, key) is
// or would be inserted, and whether it is there.
//
// Only hashes are compared until the entries with hash h are found, and
// keys are compared only among those (virtually always none or one): a
// lookup touches the arena once, for the key it finds. Hashes are uniform,
// so the chunk and the position in it are first guessed by interpolation
// and then found by galloping from the guess: a cache line or two instead
// of a binary search's dozen, and still O(log n) whatever the hashes.
func (s *shard) search(h uint64, key []byte) (ci, i int, found bool) {
	cs := s.chunks
	n := len(cs)
	if n == 0 {
		return 0, 0, false
	}
	ci = firstChunkNotBefore(cs, h)
	if ci == n {
		// h is above every entry: append to the last chunk.
		return n - 1, len(cs[n-1].e), false
	}
	c := &cs[ci]
	es := c.e
	i = lowerBound(es, c.first, c.last, h)
	for {
		for ; i < len(es) && es[i].hash == h; i++ {
			switch k := s.keyOf(&es[i]); {
			case len(k) == len(key) && bytes.Equal(k, key):
				return ci, i, true
			case bytes.Compare(k, key) > 0:
				return ci, i, false
			}
		}
		if i < len(es) || ci+1 == n || cs[ci+1].first != h {
			return ci, i, false
		}
		// Keys sharing a hash straddle chunks: go on in the next one.
		ci++
		es, i = cs[ci].e, 0
	}
}

// firstChunkNotBefore returns the index of the first chunk whose last hash
// is >= h, or len(cs). The guess assumes the chunks split the shard's hash
// range evenly, which uniform hashes make nearly true.
func firstChunkNotBefore(cs []chunk, h uint64) int {
	n := len(cs)
	g := int((h << shardBits >> 32) * uint64(n) >> 32) // h's position in the shard's range, scaled to n
	g = min(g, n-1)
	lo, hi := 0, n // answer in [lo, hi]
	if cs[g].last < h {
		lo = g + 1
		for step := 1; ; step <<= 1 {
			p := g + step
			if p >= n {
				break
			}
			if cs[p].last >= h {
				hi = p
				break
			}
			lo = p + 1
		}
	} else {
		hi = g
		for step := 1; ; step <<= 1 {
			p := g - step
			if p < 0 {
				break
			}
			if cs[p].last < h {
				lo = p + 1
				break
			}
			hi = p
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cs[m].last < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// lowerBound returns the index of the first entry of es (sorted, first and
// last being its first and last hash, last >= h) whose hash is >= h.
func lowerBound(es []entry, first, last, h uint64) int {
	if h <= first {
		return 0
	}
	// es[0].hash < h <= es[n-1].hash, so the answer is in [1, n-1].
	n := len(es)
	g := int(float64(h-first) / float64(last-first) * float64(n-1))
	g = min(max(g, 1), n-1)
	lo, hi := 1, n-1
	if es[g].hash < h {
		lo = g + 1
		for step := 1; ; step <<= 1 {
			p := g + step
			if p >= hi {
				break
			}
			if es[p].hash >= h {
				hi = p
				break
			}
			lo = p + 1
		}
	} else {
		hi = g
		for step := 1; ; step <<= 1 {
			p := g - step
			if p < lo {
				break
			}
			if es[p].hash < h {
				lo = p + 1
				break
			}
			hi = p
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// getUnverified returns the entry of key or nil, like get, except that when
// exactly one entry has key's hash it returns that entry without comparing
// its key (verified false): a reader about to read the entry's record
// compares the key in the record instead, which saves touching the arena.
// When verified is false the caller must treat a record holding another
// key as the key being absent (see DB.get).
func (s *shard) getUnverified(h uint64, key []byte) (e *entry, verified bool) {
	cs := s.chunks
	n := len(cs)
	if n == 0 {
		return nil, true
	}
	ci := firstChunkNotBefore(cs, h)
	if ci == n {
		return nil, true
	}
	c := &cs[ci]
	i := lowerBound(c.e, c.first, c.last, h)
	es := c.e
	if es[i].hash != h {
		return nil, true
	}
	if i+1 < len(es) && es[i+1].hash != h || i+1 == len(es) && (ci+1 == n || cs[ci+1].first != h) {
		return &es[i], false
	}
	return s.get(h, key), true
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

// insertAt inserts e for key at position (ci, i) returned by search,
// copying the key into the arena.
func (s *shard) insertAt(ci, i int, e entry, key []byte) {
	e.key = s.addKey(key)
	s.n++
	if e.expireAt != 0 {
		s.nexp++
	}
	if len(s.chunks) == 0 {
		a := s.chunkArray(1, minChunkCap)
		a[0] = e
		s.chunks = append(s.chunks, chunk{first: e.hash, last: e.hash, e: a})
		return
	}
	c := &s.chunks[ci]
	if len(c.e) >= maxChunk {
		// Split in halves, each with a little room to grow.
		half := len(c.e) / 2
		old := c.e
		right := s.chunkArray(len(old)-half, chunkCapFor(len(old)-half))
		copy(right, old[half:])
		left := s.chunkArray(half, chunkCapFor(half))
		copy(left, old[:half])
		s.freeArray(old)
		c.e = left
		c.bounds()
		s.chunks = append(s.chunks, chunk{})
		copy(s.chunks[ci+2:], s.chunks[ci+1:])
		s.chunks[ci+1] = chunk{e: right}
		s.chunks[ci+1].bounds()
		c = &s.chunks[ci]
		if i > half {
			c, i = &s.chunks[ci+1], i-half
		}
	}
	if len(c.e) == cap(c.e) {
		ne := s.chunkArray(len(c.e), min(cap(c.e)+chunkGrow, maxChunk))
		copy(ne, c.e)
		s.freeArray(c.e)
		c.e = ne
	}
	c.e = c.e[:len(c.e)+1]
	copy(c.e[i+1:], c.e[i:])
	c.e[i] = e
	c.bounds()
}

// removeAt removes the entry at (ci, i) and its key.
func (s *shard) removeAt(ci, i int) {
	c := &s.chunks[ci]
	if c.e[i].expireAt != 0 {
		s.nexp--
	}
	s.n--
	klen := len(s.keyOf(&c.e[i]))
	copy(c.e[i:], c.e[i+1:])
	c.e = c.e[:len(c.e)-1]
	switch {
	case len(c.e) == 0:
		s.freeArray(c.e)
		copy(s.chunks[ci:], s.chunks[ci+1:])
		s.chunks[len(s.chunks)-1] = chunk{}
		s.chunks = s.chunks[:len(s.chunks)-1]
	case ci+1 < len(s.chunks) && len(c.e)+len(s.chunks[ci+1].e) <= maxChunk/2:
		// Merge small neighbours so heavy deletion does not leave many
		// nearly empty chunks behind.
		next := s.chunks[ci+1].e
		n := len(c.e) + len(next)
		ne := s.chunkArray(n, chunkCapFor(n))
		copy(ne, c.e)
		copy(ne[len(c.e):], next)
		s.freeArray(c.e)
		s.freeArray(next)
		c.e = ne
		c.bounds()
		copy(s.chunks[ci+1:], s.chunks[ci+2:])
		s.chunks[len(s.chunks)-1] = chunk{}
		s.chunks = s.chunks[:len(s.chunks)-1]
	default:
		c.bounds()
		if cap(c.e) > 16 && len(c.e) < cap(c.e)/2 {
			ne := s.chunkArray(len(c.e), chunkCapFor(len(c.e)))
			copy(ne, c.e)
			s.freeArray(c.e)
			c.e = ne
		}
	}
	s.dropKey(klen)
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

// countRange returns how many entries have a hash in [lo, hi] and how many
// of those have an expiry. DB.CountHashRange calls it only for the shards
// the range cuts; the others are counted by n and nexp.
func (s *shard) countRange(lo, hi uint64) (keys, expiring int) {
	for ci := range s.chunks {
		c := &s.chunks[ci]
		if c.last < lo || c.first > hi {
			continue
		}
		for i := range c.e {
			if h := c.e[i].hash; lo <= h && h <= hi {
				keys++
				if c.e[i].expireAt != 0 {
					expiring++
				}
			}
		}
	}
	return keys, expiring
}

// reset drops every entry and key.
func (s *shard) reset() {
	s.chunks = nil
	s.colls = nil
	s.arena = keyArena{open: -1}
	s.n = 0
	s.nexp = 0
}

// filter keeps the entries for which keep returns true, compacting chunks.
func (s *shard) filter(keep func(e *entry) bool) {
	out := s.chunks[:0]
	s.n, s.nexp = 0, 0
	for _, c := range s.chunks {
		es := c.e[:0]
		for i := range c.e {
			if keep(&c.e[i]) {
				es = append(es, c.e[i])
				s.n++
				if c.e[i].expireAt != 0 {
					s.nexp++
				}
			} else {
				if c.e[i].typ != 0 {
					delete(s.colls, string(s.keyOf(&c.e[i])))
				}
				s.dropKeyNoCompact(len(s.keyOf(&c.e[i])))
			}
		}
		if len(es) > 0 {
			out = append(out, chunk{first: es[0].hash, last: es[len(es)-1].hash, e: es})
		}
	}
	clear(s.chunks[len(out):])
	s.chunks = out
	if s.arena.dead >= 4096 && s.arena.dead >= s.arena.used {
		s.compact()
	}
}

func (s *shard) dropKeyNoCompact(klen int) {
	var lb [binary.MaxVarintLen64]byte
	size := int64(binary.PutUvarint(lb[:], uint64(klen)) + klen)
	s.arena.used -= size
	s.arena.dead += size
}
