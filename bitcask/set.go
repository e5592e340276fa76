package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// Sets. A set is a collection (collection.go) whose elements are its
// members, each an element put record without a value (key type set).
// In memory a set is a memberSet rather than a hash's map: the members
// packed in one byte slice, a dense slice of their record locations, and
// an open-addressing table of indexes into it. That is about 16 bytes
// per member plus the member and 4-8 bytes of table, where a Go map of
// strings to elemLoc costs several times that; and the dense slice gives
// SPOP and SRANDMEMBER a uniform random member in O(1).
//
// A big set's three arrays live outside the Go heap (anonymous mappings,
// arena below): they hold no pointers, and on the heap they would count
// twice in resident memory, the collector letting the heap grow to twice
// what is live before it collects. A set of a million members of 16 bytes
// then costs about as much memory as in redis-server, or less.
//
// A hash's fields are a memberSet too, with one more array of the values'
// lengths (the values stay on disk).

// maxSetBytes bounds a set's members' total length: offsets into
// memberSet.data are 32 bits, and data holds at most twice the live bytes
// before it is compacted.
const maxSetBytes = 1<<31 - 1

// memberSet is a set's members. Guarded by its shard's mu.
type memberSet struct {
	mems  []member // dense, in no particular order; a removal moves the last one into the hole
	data  []byte   // the members' bytes, at mems[i].at
	slots []uint32 // linear probing by xxhash of the member: index into mems + 1, 0 empty
	// vlens are a hash's values' lengths (packed as entry.vlen), by index
	// in mems; nil for a set, whose members have no value.
	vlens []uint32
	waste int // bytes of data no member refers to
}

// member is one member: where its bytes are in data and where its record
// is on disk. A set member's record has no value, and its sequence
// number is not kept: merge reads it from the record (copyElem).
type member struct {
	at   uint32 // offset in data
	n    uint32 // length
	off  uint32 // offset of the record in its file
	file uint16 // handle of the data file
}

// newMemberSet makes a memberSet with room for n members, with their
// values' lengths (a hash's fields) if values.
func newMemberSet(n int, values bool) *memberSet {
	ms := &memberSet{}
	if n > 0 {
		ms.mems = growMembers(nil, n)
		ms.slots = makeSlots(nil, slotsFor(n))
	}
	if values {
		ms.vlens = arenaAlloc[uint32](nil, max(n, 8))[:0]
	}
	return ms
}

// loc is where member i's record is.
func (ms *memberSet) loc(i int) elemLoc {
	m := &ms.mems[i]
	l := elemLoc{off: m.off, file: m.file}
	if ms.vlens != nil {
		l.vlen = ms.vlens[i]
	}
	return l
}

// slotsFor is the table size for n members: a power of two at most 3/4 full.
func slotsFor(n int) int {
	size := 8
	for size*3/4 < n {
		size *= 2
	}
	return size
}

func (ms *memberSet) bytesOf(m *member) []byte { return ms.data[m.at : m.at+m.n] }

// find returns the slot holding b (ok) or the empty slot where it would go.
func (ms *memberSet) find(b []byte) (slot int, ok bool) {
	if len(ms.slots) == 0 {
		return -1, false
	}
	mask := len(ms.slots) - 1
	for i := int(xxhash.Sum64(b)) & mask; ; i = (i + 1) & mask {
		j := ms.slots[i]
		if j == 0 {
			return i, false
		}
		if bytes.Equal(ms.bytesOf(&ms.mems[j-1]), b) {
			return i, true
		}
	}
}

// slotOfIndex returns the slot pointing at mems[i].
func (ms *memberSet) slotOfIndex(i int) int {
	mask := len(ms.slots) - 1
	for s := int(xxhash.Sum64(ms.bytesOf(&ms.mems[i]))) & mask; ; s = (s + 1) & mask {
		if ms.slots[s] == uint32(i+1) {
			return s
		}
	}
}

func (ms *memberSet) lookup(b []byte) (elemLoc, bool) {
	s, ok := ms.find(b)
	if !ok {
		return elemLoc{}, false
	}
	return ms.loc(int(ms.slots[s] - 1)), true
}

// put adds b, or moves its record to l if it is a member.
func (ms *memberSet) put(b []byte, l elemLoc) {
	s, ok := ms.find(b)
	if ok {
		i := ms.slots[s] - 1
		m := &ms.mems[i]
		m.off, m.file = l.off, l.file
		if ms.vlens != nil {
			ms.vlens[i] = l.vlen
		}
		return
	}
	if (len(ms.mems) + 1) > len(ms.slots)*3/4 {
		ms.grow()
		s, _ = ms.find(b)
	}
	ms.data = appendData(ms.data, b)
	if len(ms.mems) == cap(ms.mems) {
		ms.mems = growMembers(ms.mems, 2*cap(ms.mems)+8)
	}
	ms.mems = append(ms.mems, member{at: uint32(len(ms.data) - len(b)), n: uint32(len(b)), off: l.off, file: l.file})
	ms.slots[s] = uint32(len(ms.mems))
	ms.appendVlen(l.vlen)
}

// appendVlen appends the value length of a hash's new last field.
func (ms *memberSet) appendVlen(v uint32) {
	if ms.vlens == nil {
		return
	}
	if len(ms.vlens) == cap(ms.vlens) {
		ms.vlens = arenaAlloc(ms.vlens, 2*cap(ms.vlens)+8)[:len(ms.vlens)]
	}
	ms.vlens = append(ms.vlens, v)
}

func (ms *memberSet) grow() {
	ms.slots = makeSlots(ms.slots, slotsFor(max(2*len(ms.mems), 6)))
	ms.rehash()
}

// rehash fills the (empty) table with every member.
func (ms *memberSet) rehash() {
	mask := len(ms.slots) - 1
	for i := range ms.mems {
		s := int(xxhash.Sum64(ms.bytesOf(&ms.mems[i]))) & mask
		for ms.slots[s] != 0 {
			s = (s + 1) & mask
		}
		ms.slots[s] = uint32(i + 1)
	}
}

// build fills an empty set, made by newMemberSet(len(rc.recs), ...), with the
// distinct members rc holds after its final dedup: no lookups, the
// bytes in one array of the right size.
func (ms *memberSet) build(rc *replayColl) {
	if len(rc.recs) == 0 {
		return
	}
	size := 0
	for i := range rc.recs {
		size += int(rc.recs[i].flen)
	}
	ms.data = arenaAlloc[byte](nil, size)[:0]
	for i := range rc.recs {
		r := &rc.recs[i]
		ms.data = append(ms.data, rc.field(r)...)
		ms.mems = append(ms.mems, member{at: uint32(len(ms.data)) - r.flen, n: r.flen, off: r.off, file: r.file})
		ms.appendVlen(r.vlen)
	}
	ms.rehash()
}

// remove deletes b if it is a member.
func (ms *memberSet) remove(b []byte) {
	s, ok := ms.find(b)
	if !ok {
		return
	}
	i := int(ms.slots[s] - 1)
	ms.clearSlot(s)
	ms.waste += int(ms.mems[i].n)
	if last := len(ms.mems) - 1; i != last {
		ms.slots[ms.slotOfIndex(last)] = uint32(i + 1)
		ms.mems[i] = ms.mems[last]
		if ms.vlens != nil {
			ms.vlens[i] = ms.vlens[last]
		}
	}
	ms.mems = ms.mems[:len(ms.mems)-1]
	if ms.vlens != nil {
		ms.vlens = ms.vlens[:len(ms.mems)]
	}
	if ms.waste > 4096 && ms.waste > len(ms.data)/2 {
		ms.compact()
	}
}

// clearSlot empties slot s, shifting back the entries after it that
// probed past it (no tombstones).
func (ms *memberSet) clearSlot(s int) {
	mask := len(ms.slots) - 1
	for i := (s + 1) & mask; ms.slots[i] != 0; i = (i + 1) & mask {
		home := int(xxhash.Sum64(ms.bytesOf(&ms.mems[ms.slots[i]-1]))) & mask
		// Move slot i into the hole s unless its home lies in (s, i].
		if (i-home)&mask >= (i-s)&mask {
			ms.slots[s] = ms.slots[i]
			s = i
		}
	}
	ms.slots[s] = 0
}

// compact rewrites data without the bytes of removed members.
func (ms *memberSet) compact() {
	data := arenaAlloc[byte](nil, len(ms.data)-ms.waste)[:0]
	for i := range ms.mems {
		m := &ms.mems[i]
		data = append(data, ms.bytesOf(m)...)
		m.at = uint32(len(data)) - m.n
	}
	arenaFree(ms.data)
	ms.data, ms.waste = data, 0
}

// The arena: arrays of big sets in anonymous mappings, smaller ones on the
// heap. An array is freed when it is replaced (growth, compaction) and,
// for the last ones, when the memberSet is collected (a finalizer): no
// reference into an array outlives its set's lock or call (readers copy
// members out).

// arenaMin is the size from which an array is mapped: below it a mapping's
// page and system calls cost more than the heap's overhead.
const arenaMin = 64 << 10

// arenaAlloc returns an array of n elements of T (T holds no pointers)
// with old's elements copied in, and frees old.
func arenaAlloc[T any](old []T, n int) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	var out []T
	if size < arenaMin {
		out = make([]T, n)
	} else {
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			// As the runtime does when the heap cannot grow.
			panic(fmt.Sprintf("bitcask: out of memory mapping %d bytes for a set: %v", size, err))
		}
		out = unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
	}
	copy(out, old)
	arenaFree(old)
	return out
}

// arenaGrow returns a with room for n elements (n > cap(a)), its elements
// kept: a mapped array is moved by the kernel (mremap), not copied.
func arenaGrow[T any](a []T, n int) []T {
	var zero T
	sz := int(unsafe.Sizeof(zero))
	if old := cap(a) * sz; old >= arenaMin {
		b, err := unix.Mremap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a))), old), n*sz, unix.MREMAP_MAYMOVE)
		if err == nil {
			return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)[:len(a)]
		}
	}
	return arenaAlloc(a, n)[:len(a)]
}

// arenaFree unmaps a mapped array (a heap one is the collector's).
func arenaFree[T any](a []T) {
	var zero T
	if size := cap(a) * int(unsafe.Sizeof(zero)); size >= arenaMin {
		_ = unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a))), size))
	}
}

func growMembers(old []member, n int) []member {
	return arenaAlloc(old, n)[:len(old)]
}

func makeSlots(old []uint32, n int) []uint32 {
	arenaFree(old)
	return arenaAlloc[uint32](nil, n)
}

// appendData appends b to data, growing it in the arena.
func appendData(data, b []byte) []byte {
	if len(data)+len(b) > cap(data) {
		data = arenaAlloc(data, max(2*cap(data), len(data)+len(b), 256))[:len(data)]
	}
	return append(data, b...)
}

// release frees the set's arrays (its finalizer).
func (ms *memberSet) release() {
	arenaFree(ms.mems)
	arenaFree(ms.data)
	arenaFree(ms.slots)
	arenaFree(ms.vlens)
	ms.mems, ms.data, ms.slots, ms.vlens = nil, nil, nil, nil
}

// The element index of a collection, whichever form it has.

func newColl(gen uint64, t Type, n int) *coll {
	if t == TypeSet || t == TypeHash {
		// A hash's fields are packed as a set's members are, with their
		// values' lengths beside them: about 40 bytes a field with its
		// bytes, none of it on the Go heap.
		ms := newMemberSet(n, t == TypeHash)
		runtime.SetFinalizer(ms, (*memberSet).release)
		return &coll{gen: gen, set: ms}
	}
	if t == TypeZSet {
		return &coll{gen: gen, zm: newZmembers(n), z: &zindex{}}
	}
	if t == TypeList {
		return &coll{gen: gen, l: &ltree{}}
	}
	return &coll{gen: gen, elems: make(map[string]elemLoc, n)}
}

func (c *coll) lookup(field []byte) (elemLoc, bool) {
	if c.l != nil {
		return c.l.lookup(field)
	}
	if c.set != nil {
		return c.set.lookup(field)
	}
	if c.zm != nil {
		return c.zm.get(bstr(field))
	}
	l, ok := c.elems[string(field)]
	return l, ok
}

func (c *coll) store(field []byte, l elemLoc) {
	if c.l != nil {
		c.l.store(field, l)
		return
	}
	if c.set != nil {
		c.set.put(field, l)
		return
	}
	if c.zm != nil {
		if _, ok := c.zm.get(bstr(field)); ok {
			c.zm.set(bstr(field), l) // keeps the member's string
		} else {
			c.zm.set(string(field), l)
		}
		return
	}
	c.elems[string(field)] = l
}

func (c *coll) storeString(field string, l elemLoc) {
	if c.l != nil {
		c.l.store(unsafe.Slice(unsafe.StringData(field), len(field)), l)
		return
	}
	if c.set != nil {
		c.set.put(unsafe.Slice(unsafe.StringData(field), len(field)), l)
		return
	}
	if c.zm != nil {
		c.zm.set(field, l)
		return
	}
	c.elems[field] = l
}

func (c *coll) remove(field []byte) {
	if c.l != nil {
		c.l.remove(field)
		return
	}
	if c.set != nil {
		c.set.remove(field)
		return
	}
	if c.zm != nil {
		c.zm.del(bstr(field))
		return
	}
	delete(c.elems, string(field))
}

func (c *coll) count() int {
	if c.l != nil {
		return c.l.len()
	}
	if c.set != nil {
		return len(c.set.mems)
	}
	if c.zm != nil {
		return c.zm.n
	}
	return len(c.elems)
}

// each calls fn for every element; a set's element string is valid only
// during the call.
func (c *coll) each(fn func(field string, l elemLoc)) {
	if c.l != nil {
		var kbuf []byte
		c.l.walk(0, false, func(it *litem) bool {
			kbuf = c.l.keyOf(kbuf[:0], it)
			fn(unsafe.String(unsafe.SliceData(kbuf), len(kbuf)), it.loc())
			return true
		})
		return
	}
	if c.zm != nil {
		c.zm.each(fn)
		return
	}
	if c.set == nil {
		for f, l := range c.elems {
			fn(f, l)
		}
		return
	}
	ms := c.set
	for i := range ms.mems {
		b := ms.bytesOf(&ms.mems[i])
		fn(unsafe.String(unsafe.SliceData(b), len(b)), ms.loc(i))
	}
}

// Reads outside a Tx. now is as for GetAppendHashed.

func (db *DB) setOf(h uint64, key []byte, now int64, fn func(ms *memberSet)) error {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, TypeSet, now)
	if err != nil {
		return err
	}
	fn(c.set)
	return nil
}

// SetIsMember reports whether member is in the set at key; ErrWrongType
// when key holds another type, ErrNotFound when it is absent.
func (db *DB) SetIsMember(h uint64, key, member []byte, now int64) (bool, error) {
	var ok bool
	err := db.setOf(h, key, now, func(ms *memberSet) { _, ok = ms.find(member) })
	return ok, err
}

// SetCard returns the number of members of the set at key.
func (db *DB) SetCard(h uint64, key []byte, now int64) (int, error) {
	var n int
	err := db.setOf(h, key, now, func(ms *memberSet) { n = len(ms.mems) })
	return n, err
}

// SetMembers returns the members of the set at key, in no particular order.
func (db *DB) SetMembers(h uint64, key []byte, now int64) ([][]byte, error) {
	var out [][]byte
	err := db.setOf(h, key, now, func(ms *memberSet) { out = ms.all(nil) })
	return out, err
}

// all appends copies of the members to dst.
func (ms *memberSet) all(dst [][]byte) [][]byte {
	if dst == nil {
		dst = make([][]byte, 0, len(ms.mems))
	}
	for i := range ms.mems {
		dst = append(dst, bytes.Clone(ms.bytesOf(&ms.mems[i])))
	}
	return dst
}

// SetRandom returns n members of the set at key chosen at random:
// distinct ones (all of them, shuffled, when n is at least the size) or,
// when not distinct, n picks that may repeat. Each pick is O(1).
func (db *DB) SetRandom(h uint64, key []byte, n int, distinct bool, now int64) ([][]byte, error) {
	var out [][]byte
	err := db.setOf(h, key, now, func(ms *memberSet) {
		out = randomPicks(len(ms.mems), n, distinct, func(i int) ([]byte, bool) {
			return bytes.Clone(ms.bytesOf(&ms.mems[i])), true
		})
	})
	return out, err
}

// randomPicks picks n of size candidates: at(i) returns candidate i, or
// false when it is not one (rejected and drawn again). Distinct picks of
// most of the candidates shuffle them all instead of drawing.
func randomPicks(size, n int, distinct bool, at func(i int) ([]byte, bool)) [][]byte {
	if size == 0 || n <= 0 {
		return nil
	}
	if distinct && n*2 >= size {
		var all [][]byte
		for i := range size {
			if b, ok := at(i); ok {
				all = append(all, b)
			}
		}
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		return all[:min(n, len(all))]
	}
	out := make([][]byte, 0, n)
	var seen map[int]bool
	if distinct {
		seen = make(map[int]bool, n)
	}
	for len(out) < n {
		i := rand.IntN(size)
		if distinct && seen[i] {
			continue
		}
		b, ok := at(i)
		if !ok {
			continue
		}
		if distinct {
			seen[i] = true
		}
		out = append(out, b)
	}
	return out
}

// Writes and reads in a Tx, seeing the Tx's own writes.

// SetAdd adds member to the set at key, making the set if key is absent
// (ErrWrongType if it holds another type), and reports whether it is new.
// It writes one record for a new member (two for a new set: its root
// first), none for a member already there.
func (tx *Tx) SetAdd(key, member []byte) (added bool, err error) {
	if tx.isDone() {
		return false, ErrTxDone
	}
	db, st := tx.db, tx.st
	if err := db.checkSizes(key, 0); err != nil {
		return false, err
	}
	if err := db.checkSizes(member, 0); err != nil {
		return false, err
	}
	if n := uvarintLen(uint64(len(key))) + len(key) + len(member); n > maxKeySizeLimit {
		return false, fmt.Errorf("%w: key and member of %d bytes, format limit %d", ErrKeyTooLarge, n, maxKeySizeLimit)
	}
	h := xxhash.Sum64(key)
	tc, err := db.txCollOf(st, h, key, TypeSet)
	if err != nil {
		return false, err
	}
	if tc == nil {
		if tc, err = db.txNewColl(st, h, key, TypeSet); err != nil {
			return false, err
		}
	}
	_, had, err := db.txElem(st, tc, h, key, member)
	if had || err != nil {
		return false, err
	}
	if db.setBytes(h, key, tc)+int64(len(member)) > maxSetBytes {
		return false, fmt.Errorf("%w: a set's members past %d bytes", ErrValueTooLarge, int64(maxSetBytes))
	}
	if err := db.txElemRecord(st, tc, kindElemPut, h, key, member, nil); err != nil {
		return false, err
	}
	if tc.sr != nil {
		tc.sr.put(db, h, key, tc, member)
	}
	tc.n++
	tc.addBytes += int64(len(member))
	st.elemDelta += int64(len(member))
	return true, nil
}

// setBytes is an upper bound of the members' bytes of a set (the fields'
// of a hash) as the Tx sees it.
func (db *DB) setBytes(h uint64, key []byte, tc *txColl) int64 {
	n := tc.addBytes
	if tc.base {
		s := db.kd.shardFor(h)
		s.mu.RLock()
		if c := s.colls[string(key)]; c != nil && c.set != nil {
			n += int64(len(c.set.data) - c.set.waste)
		}
		s.mu.RUnlock()
	}
	return n
}

// SetRemove removes member from the set at key and reports whether it was
// there. Removing the last member deletes the key, with one tombstone.
func (tx *Tx) SetRemove(key, member []byte) (bool, error) {
	if tx.isDone() {
		return false, ErrTxDone
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	tc, err := db.txCollOf(st, h, key, TypeSet)
	if tc == nil || err != nil {
		return false, err
	}
	_, had, err := db.txElem(st, tc, h, key, member)
	if !had || err != nil {
		return false, err
	}
	st.elemDelta -= int64(len(member))
	if tc.n == 1 {
		_, err := db.txDelete(st, key)
		return true, err
	}
	if err := db.txElemRecord(st, tc, kindElemDelete, h, key, member, nil); err != nil {
		return false, err
	}
	if tc.sr != nil {
		tc.sr.del(db, h, key, tc, member)
	}
	tc.n--
	return true, nil
}

// SetIsMember reports whether member is in the set at key.
func (tx *Tx) SetIsMember(key, member []byte) (bool, error) {
	if tx.isDone() {
		return false, ErrTxDone
	}
	h := xxhash.Sum64(key)
	tc, err := tx.db.txCollOf(tx.st, h, key, TypeSet)
	if tc == nil || err != nil {
		return false, err
	}
	_, ok, err := tx.db.txElem(tx.st, tc, h, key, member)
	return ok, err
}

// SetCard returns the number of members of the set at key (0 when absent).
func (tx *Tx) SetCard(key []byte) (int, error) {
	if tx.isDone() {
		return 0, ErrTxDone
	}
	tc, err := tx.db.txCollOf(tx.st, xxhash.Sum64(key), key, TypeSet)
	if tc == nil || err != nil {
		return 0, err
	}
	return tc.n, nil
}

// SetMembers returns the members of the set at key, nil when absent.
func (tx *Tx) SetMembers(key []byte) ([][]byte, error) {
	if tx.isDone() {
		return nil, ErrTxDone
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	tc, err := db.txCollOf(st, h, key, TypeSet)
	if tc == nil || err != nil {
		return nil, err
	}
	out := make([][]byte, 0, tc.n)
	if tc.base {
		s := db.kd.shardFor(h)
		s.mu.RLock()
		if c := s.colls[string(key)]; c != nil && c.set != nil {
			ms := c.set
			for i := range ms.mems {
				if b := ms.bytesOf(&ms.mems[i]); !tc.has(b) {
					out = append(out, bytes.Clone(b))
				}
			}
		}
		s.mu.RUnlock()
	}
	for f, j := range tc.elems {
		if st.ops[j].kind == kindElemPut {
			out = append(out, []byte(f))
		}
	}
	return out, nil
}

func (tc *txColl) has(b []byte) bool {
	_, ok := tc.elems[string(b)]
	return ok
}

// SetRandom is DB.SetRandom as the Tx sees the set: a pick of a member
// the Tx removed is drawn again, and the members the Tx added are
// candidates after the key directory's.
func (tx *Tx) SetRandom(key []byte, n int, distinct bool) ([][]byte, error) {
	if tx.isDone() {
		return nil, ErrTxDone
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	tc, err := db.txCollOf(st, h, key, TypeSet)
	if tc == nil || err != nil || n <= 0 {
		return nil, err
	}
	if len(tc.elems) == 0 && tc.base {
		out, err := db.SetRandom(h, key, n, distinct, -1)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return out, err
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var base *memberSet
	if c := s.colls[string(key)]; tc.base && c != nil {
		base = c.set
	}
	if tc.sr == nil {
		tc.sr = newSetTxRand(st, tc, base)
	}
	added, removed := tc.sr.added, tc.sr.removed
	nb := 0
	if base != nil {
		nb = len(base.mems)
	}
	if removed*2 > nb {
		// Mostly rejections: list the candidates instead.
		nb = 0
		var live [][]byte
		if base != nil {
			for i := range base.mems {
				if b := base.bytesOf(&base.mems[i]); !tc.has(b) || st.ops[tc.elems[string(b)]].kind == kindElemPut {
					live = append(live, b)
				}
			}
		}
		added = append(live, added...)
	}
	return randomPicks(nb+len(added), n, distinct, func(i int) ([]byte, bool) {
		if i >= nb {
			return bytes.Clone(added[i-nb]), true
		}
		b := base.bytesOf(&base.mems[i])
		if j, mine := tc.elems[string(b)]; mine && st.ops[j].kind != kindElemPut {
			return nil, false
		}
		return bytes.Clone(b), true
	}), nil
}

// setTxRand is what SetRandom needs of a set the Tx wrote: the members
// it added that the key directory's set lacks, and how many of that
// set's members it removed. Made from the Tx's writes at the first
// SetRandom and kept up to date by SetAdd and SetRemove after it, so
// that each SPOP of a Tx costs the same, not one more look at every
// member the Tx wrote before it.
type setTxRand struct {
	added   [][]byte
	at      map[string]int // added's index of each member
	removed int
}

// newSetTxRand makes tc's setTxRand; caller holds the shard's read lock
// (base is the key directory's set, nil if the Tx does not build on it).
func newSetTxRand(st *txState, tc *txColl, base *memberSet) *setTxRand {
	sr := &setTxRand{at: make(map[string]int)}
	for f, j := range tc.elems {
		inBase := false
		if base != nil {
			_, inBase = base.find([]byte(f))
		}
		switch put := st.ops[j].kind == kindElemPut; {
		case put && !inBase:
			sr.at[f] = len(sr.added)
			sr.added = append(sr.added, []byte(f))
		case !put && inBase:
			sr.removed++
		}
	}
	return sr
}

// inBaseSet reports whether the key directory's set under the Tx holds member.
func (db *DB) inBaseSet(h uint64, key []byte, tc *txColl, member []byte) bool {
	if !tc.base {
		return false
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.colls[string(key)]
	if c == nil || c.set == nil {
		return false
	}
	_, ok := c.set.find(member)
	return ok
}

// put is SetAdd of member, which the Tx does not see in the set.
func (sr *setTxRand) put(db *DB, h uint64, key []byte, tc *txColl, member []byte) {
	if db.inBaseSet(h, key, tc, member) {
		sr.removed--
		return
	}
	sr.at[string(member)] = len(sr.added)
	sr.added = append(sr.added, bytes.Clone(member))
}

// del is SetRemove of member, which the Tx sees in the set.
func (sr *setTxRand) del(db *DB, h uint64, key []byte, tc *txColl, member []byte) {
	i, ok := sr.at[string(member)]
	if !ok {
		sr.removed++
		return
	}
	last := len(sr.added) - 1
	sr.added[i] = sr.added[last]
	sr.at[string(sr.added[i])] = i
	sr.added[last] = nil
	sr.added = sr.added[:last]
	delete(sr.at, string(member))
}
