package bitcask

import (
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// zmembers is a sorted set's element map (member -> its newest put
// record), packed: the entries in one array and an open-addressing table
// of their indexes (linear probing, deletion by backward shift). A Go map
// of string to elemLoc costs 70 to 100 bytes an entry; this costs the
// entry (40 bytes) and 4 to 8 bytes of table.
type zmembers struct {
	ents []zent   // by id; a free one has vlen zfree
	free []uint32 // free ids, reused first
	tab  []uint32 // slot -> id+1, 0 empty; a power of two long
	n    int      // live entries
}

type zent struct {
	member string // shared with the ordered index's item
	loc    elemLoc
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
		if zm.ents[v-1].member == m {
			return i, v - 1, true
		}
	}
}

func (zm *zmembers) get(m string) (elemLoc, bool) {
	_, id, ok := zm.find(m)
	if !ok {
		return elemLoc{}, false
	}
	return zm.ents[id].loc, true
}

// set gives m the record at l; a new member keeps m's string.
func (zm *zmembers) set(m string, l elemLoc) {
	slot, id, ok := zm.find(m)
	if ok {
		zm.ents[id].loc = l
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
		id = uint32(len(zm.ents))
		zm.ents = append(zm.ents, zent{})
	}
	zm.ents[id] = zent{member: m, loc: l}
	zm.tab[slot] = id + 1
	zm.n++
}

func (zm *zmembers) del(m string) {
	slot, id, ok := zm.find(m)
	if !ok {
		return
	}
	zm.ents[id] = zent{loc: elemLoc{vlen: zfree}}
	zm.free = append(zm.free, id)
	zm.n--
	mask := len(zm.tab) - 1
	i := slot
	for j := (i + 1) & mask; zm.tab[j] != 0; j = (j + 1) & mask {
		k := int(zhash(zm.ents[zm.tab[j]-1].member)) & mask
		// An entry whose home lies cyclically in (i, j] stays.
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		zm.tab[i] = zm.tab[j]
		i = j
	}
	zm.tab[i] = 0
	if zm.n < len(zm.ents)/4 && len(zm.ents) > 64 {
		zm.compact()
	}
}

// compact drops the free entries (after many deletes).
func (zm *zmembers) compact() {
	ents := make([]zent, 0, zm.n)
	for _, e := range zm.ents {
		if e.loc.vlen != zfree {
			ents = append(ents, e)
		}
	}
	zm.ents, zm.free = ents, nil
	size := 8
	for size*3 < zm.n*4 {
		size *= 2
	}
	zm.resize(size)
}

// resize rebuilds the table with size slots.
func (zm *zmembers) resize(size int) {
	zm.tab = make([]uint32, size)
	mask := size - 1
	for id, e := range zm.ents {
		if e.loc.vlen == zfree {
			continue
		}
		i := int(zhash(e.member)) & mask
		for zm.tab[i] != 0 {
			i = (i + 1) & mask
		}
		zm.tab[i] = uint32(id) + 1
	}
}
