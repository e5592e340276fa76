package bitcask

import (
	"runtime"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// zmembers is a sorted set's element map (member -> its newest put
// record), packed: the entries in arrays by id and an open-addressing
// table of their ids (linear probing, deletion by backward shift). A Go
// map of string to elemLoc costs 70 to 100 bytes an entry; this costs 40
// bytes and 4 to 8 bytes of table. Only the member strings (16 bytes an
// entry, shared with the ordered index) are on the heap: the records'
// locations and the table hold no pointers and live in the arena (set.go),
// so they add nothing to what the collector scans and to its heap goal,
// and an array outgrown is unmapped at once instead of waiting for a
// collection. zmembers' finalizer frees them (newZmembers).
type zmembers struct {
	mems []string  // by id; "" for a free id
	locs []elemLoc // by id, in the arena; a free one has vlen zfree
	free []uint32  // free ids, reused first
	tab  []uint32  // slot -> id+1, 0 empty; a power of two long; in the arena
	n    int       // live entries
}

// newZmembers makes a zmembers with room for n entries.
func newZmembers(n int) *zmembers {
	zm := &zmembers{}
	if n > 0 {
		zm.mems = make([]string, 0, n)
		zm.locs = arenaAlloc[elemLoc](nil, n)[:0]
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
			fn(zm.mems[id], l)
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
		zm.mems = append(zm.mems, string(rc.field(r)))
		zm.locs = append(zm.locs, r.loc())
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
		if zm.mems[v-1] == m {
			return i, v - 1, true
		}
	}
}

func (zm *zmembers) get(m string) (elemLoc, bool) {
	_, id, ok := zm.find(m)
	if !ok {
		return elemLoc{}, false
	}
	return zm.locs[id], true
}

// set gives m the record at l; a new member keeps m's string.
func (zm *zmembers) set(m string, l elemLoc) {
	slot, id, ok := zm.find(m)
	if ok {
		zm.locs[id] = l
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
		zm.locs = append(zm.locs, elemLoc{})
		zm.mems = append(zm.mems, "")
	}
	zm.mems[id], zm.locs[id] = m, l
	zm.tab[slot] = id + 1
	zm.n++
}

func (zm *zmembers) del(m string) {
	slot, id, ok := zm.find(m)
	if !ok {
		return
	}
	zm.mems[id], zm.locs[id] = "", elemLoc{vlen: zfree}
	zm.free = append(zm.free, id)
	zm.n--
	mask := len(zm.tab) - 1
	i := slot
	for j := (i + 1) & mask; zm.tab[j] != 0; j = (j + 1) & mask {
		k := int(zhash(zm.mems[zm.tab[j]-1])) & mask
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
	mems := make([]string, 0, zm.n)
	locs := arenaAlloc[elemLoc](nil, zm.n)[:0]
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
		i := int(zhash(zm.mems[id])) & mask
		for zm.tab[i] != 0 {
			i = (i + 1) & mask
		}
		zm.tab[i] = uint32(id) + 1
	}
}
