package bitcask

import (
	"runtime"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// zmembers is a sorted set's element map (member -> its newest put
// record), packed: the entries in arrays by id and an open-addressing
// table of their ids (linear probing, deletion by backward shift). A Go
// map of string to elemLoc costs 70 to 100 bytes an entry; this costs 24
// bytes and 4 to 8 bytes of table. Only a pointer to each member's bytes
// (8 bytes; the string itself, bytes and header, is the ordered index's,
// whose items share the bytes) is on the heap: the records' locations,
// the members' lengths and the table hold no pointers and live in the
// arena (set.go), so they add nothing to what the collector scans and to
// its heap goal, and an array outgrown is unmapped at once instead of
// waiting for a collection. zmembers' finalizer frees them (newZmembers).
type zmembers struct {
	mems []unsafe.Pointer // by id, the member's bytes (which it keeps alive); nil for a free id or an empty member
	locs []zloc           // by id, in the arena; a free one has vlen zfree
	free []uint32         // free ids, reused first
	tab  []uint32         // slot -> id+1, 0 empty; a power of two long; in the arena
	n    int              // live entries
}

// zloc is where a member's record is, and the member's length. A sorted
// set keeps no sequence number per member: merge reads it from the
// record (copyElem), as for a set's.
type zloc struct {
	off  uint32
	vlen uint32 // packed as entry.vlen; zfree for a free id
	mlen uint32 // the member's length
	file uint16
}

func (l *zloc) elemLoc() elemLoc { return elemLoc{off: l.off, vlen: l.vlen, file: l.file} }

// member returns the member of id, sharing its bytes.
func (zm *zmembers) member(id uint32) string {
	return unsafe.String((*byte)(zm.mems[id]), int(zm.locs[id].mlen))
}

// newZmembers makes a zmembers with room for n entries.
func newZmembers(n int) *zmembers {
	zm := &zmembers{}
	if n > 0 {
		zm.mems = make([]unsafe.Pointer, 0, n)
		zm.locs = arenaAlloc[zloc](nil, n)[:0]
	}
	runtime.SetFinalizer(zm, (*zmembers).release)
	return zm
}

func (zm *zmembers) release() {
	arenaFree(zm.locs)
	arenaFree(zm.tab)
	zm.locs, zm.tab = nil, nil
}

// each calls fn for every live entry.
func (zm *zmembers) each(fn func(m string, l elemLoc)) {
	for id, l := range zm.locs {
		if l.vlen != zfree {
			fn(zm.member(uint32(id)), l.elemLoc())
		}
	}
}

// build fills an empty zmembers, made by newZmembers(len(rc.recs)),
// with the distinct elements rc holds after its final dedup, in rc's
// order: no lookups, one table of the right size.
func (zm *zmembers) build(rc *replayColl) {
	if len(rc.recs) == 0 {
		return
	}
	for i := range rc.recs {
		r := &rc.recs[i]
		m := string(rc.field(r))
		zm.mems = append(zm.mems, unsafe.Pointer(unsafe.StringData(m)))
		zm.locs = append(zm.locs, zloc{off: r.off, vlen: r.vlen, mlen: r.flen, file: r.file})
	}
	zm.n = len(zm.mems)
	zm.resize(zmTableFor(zm.n))
}

// zmTableFor is the table size for n entries: a power of two at most 3/4
// full.
func zmTableFor(n int) int {
	size := 8
	for size*3 < n*4 {
		size *= 2
	}
	return size
}

// zfree marks a free entry's vlen (a member's value is 8 bytes).
const zfree = ^uint32(0)

func zhash(m string) uint64 { return xxhash.Sum64String(m) }

// bstr views b as a string for a lookup (never kept).
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// find returns the slot holding m, or the empty slot where it would go.
func (zm *zmembers) find(m string) (slot int, id uint32, ok bool) {
	if len(zm.tab) == 0 {
		return -1, 0, false
	}
	mask := len(zm.tab) - 1
	for i := int(zhash(m)) & mask; ; i = (i + 1) & mask {
		v := zm.tab[i]
		if v == 0 {
			return i, 0, false
		}
		if int(zm.locs[v-1].mlen) == len(m) && zm.member(v-1) == m {
			return i, v - 1, true
		}
	}
}

func (zm *zmembers) get(m string) (elemLoc, bool) {
	_, id, ok := zm.find(m)
	if !ok {
		return elemLoc{}, false
	}
	return zm.locs[id].elemLoc(), true
}

// set gives m the record at l; a new member keeps m's string.
func (zm *zmembers) set(m string, l elemLoc) {
	slot, id, ok := zm.find(m)
	zl := zloc{off: l.off, vlen: l.vlen, mlen: uint32(len(m)), file: l.file}
	if ok {
		zm.locs[id] = zl
		return
	}
	if (zm.n+1)*4 > len(zm.tab)*3 {
		zm.resize(max(8, 2*len(zm.tab)))
		slot, _, _ = zm.find(m)
	}
	if k := len(zm.free); k > 0 {
		id = zm.free[k-1]
		zm.free = zm.free[:k-1]
	} else {
		id = uint32(len(zm.locs))
		if len(zm.locs) == cap(zm.locs) {
			zm.locs = arenaAlloc(zm.locs, max(8, cap(zm.locs)+cap(zm.locs)/2))[:len(zm.locs)]
		}
		zm.locs = append(zm.locs, zloc{})
		zm.mems = append(zm.mems, nil)
	}
	zm.mems[id], zm.locs[id] = unsafe.Pointer(unsafe.StringData(m)), zl
	zm.tab[slot] = id + 1
	zm.n++
}

func (zm *zmembers) del(m string) {
	slot, id, ok := zm.find(m)
	if !ok {
		return
	}
	zm.mems[id], zm.locs[id] = nil, zloc{vlen: zfree}
	zm.free = append(zm.free, id)
	zm.n--
	mask := len(zm.tab) - 1
	i := slot
	for j := (i + 1) & mask; zm.tab[j] != 0; j = (j + 1) & mask {
		k := int(zhash(zm.member(zm.tab[j]-1))) & mask
		// An entry whose home lies cyclically in (i, j] stays.
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		zm.tab[i] = zm.tab[j]
		i = j
	}
	zm.tab[i] = 0
	if zm.n < len(zm.locs)/4 && len(zm.locs) > 64 {
		zm.compact()
	}
}

// compact drops the free entries (after many deletes).
func (zm *zmembers) compact() {
	mems := make([]unsafe.Pointer, 0, zm.n)
	locs := arenaAlloc[zloc](nil, zm.n)[:0]
	for id, l := range zm.locs {
		if l.vlen != zfree {
			mems = append(mems, zm.mems[id])
			locs = append(locs, l)
		}
	}
	arenaFree(zm.locs)
	zm.mems, zm.locs, zm.free = mems, locs, nil
	zm.resize(zmTableFor(zm.n))
}

// resize rebuilds the table with size slots.
func (zm *zmembers) resize(size int) {
	zm.tab = makeSlots(zm.tab, size)
	mask := size - 1
	for id, l := range zm.locs {
		if l.vlen == zfree {
			continue
		}
		i := int(zhash(zm.member(uint32(id)))) & mask
		for zm.tab[i] != 0 {
			i = (i + 1) & mask
		}
		zm.tab[i] = uint32(id) + 1
	}
}
