package bitcask

import (
	"bytes"
	"encoding/binary"
	"runtime"
)

// ltree is a list's elements in list order: a B+tree whose nodes count
// the items below them, so that the item at an index is found in
// O(log n), and whose leaves are linked for walking a range. The order is
// the elements' order keys' (lists.go): an item keeps its key's first 8
// bytes inline and, for the rare longer key (LINSERT between neighbours
// whose keys are adjacent), the whole key in longs. An item is 24 bytes
// and holds no pointer, so the leaves are never scanned by the collector;
// values stay on disk.
type ltree struct {
	root        *lnode
	first, last *lnode
	longs       []string // whole keys longer than 8 bytes, by litem.long-1
	freeLongs   []uint32 // free slots of longs
	slab        *leafSlab
}

// leafSlab holds the leaves' item arrays of a big list (from slabMin
// items) outside the Go heap, in the arena (set.go): the items hold no
// pointers, and on the heap they would count twice in resident memory
// under the collector's heap goal. Every array is a full leaf's (lmax+1
// items); a leaf dropped gives its array back to free, and the tree's
// finalizer unmaps the chunks (no reference to an item outlives the
// shard's lock).
type leafSlab struct {
	chunks [][]litem // slabLeaves arrays each
	free   [][]litem // arrays no leaf holds, empty, of capacity lmax+1
}

// slabMin is the length of a list from which new leaves take their
// arrays from the slab (a var for tests).
var slabMin = 8192

const slabLeaves = 256 // leaves of a slab's chunk: 774 KiB

// leafArray returns an array for a leaf of n items (capacity lmax+1), and
// whether it is the slab's.
func (t *ltree) leafArray(n int) ([]litem, bool) {
	if t.slab == nil {
		if t.len() < slabMin {
			return make([]litem, n, lmax+1), false
		}
		t.slab = &leafSlab{}
		runtime.SetFinalizer(t, (*ltree).release)
	}
	sl := t.slab
	if len(sl.free) == 0 {
		c := arenaAlloc[litem](nil, slabLeaves*(lmax+1))
		sl.chunks = append(sl.chunks, c)
		for i := 0; i < slabLeaves; i++ {
			sl.free = append(sl.free, c[i*(lmax+1):i*(lmax+1):(i+1)*(lmax+1)])
		}
	}
	a := sl.free[len(sl.free)-1]
	sl.free = sl.free[:len(sl.free)-1]
	return a[:n], true
}

// freeLeaf gives nd's items array back, if the slab's.
func (t *ltree) freeLeaf(nd *lnode) {
	if nd.inSlab {
		t.slab.free = append(t.slab.free, nd.items[:0])
	}
	nd.items, nd.inSlab = nil, false
}

// setItems gives leaf nd the array a (slab: the slab's), freeing its old one.
func (t *ltree) setItems(nd *lnode, a []litem, slab bool) {
	t.freeLeaf(nd)
	nd.items, nd.inSlab = a, slab
}

// release unmaps the slab's chunks (the tree's finalizer).
func (t *ltree) release() {
	if t.slab != nil {
		for _, c := range t.slab.chunks {
			arenaFree(c)
		}
		t.slab = nil
	}
}

// litem is one element: its order key and where its record is.
type litem struct {
	ord  uint64 // the order key's first 8 bytes, big endian
	long uint32 // 0: the key is those 8 bytes; else 1 + its index in ltree.longs
	off  uint32 // offset of the element's put record in its file
	vlen uint32 // logical value length, packed with vlenInt as entry.vlen
	file uint16 // handle of the data file
}

func (it *litem) loc() elemLoc { return elemLoc{off: it.off, vlen: it.vlen, file: it.file} }

type lnode struct {
	n          int      // items in the subtree
	items      []litem  // a leaf's items
	kids       []*lnode // an inner node's children
	prev, next *lnode   // a leaf's neighbours
	inSlab     bool     // items is the tree's slab's
}

// lmax is the most items of a leaf and children of an inner node.
const lmax = 128

func (t *ltree) len() int {
	if t.root == nil {
		return 0
	}
	return t.root.n
}

// keyOf appends it's order key to dst.
func (t *ltree) keyOf(dst []byte, it *litem) []byte {
	if it.long != 0 {
		return append(dst, t.longs[it.long-1]...)
	}
	return binary.BigEndian.AppendUint64(dst, it.ord)
}

// cmpKey compares it's order key with k.
func (t *ltree) cmpKey(it *litem, k []byte) int {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], it.ord)
	if c := bytes.Compare(b[:], k[:min(8, len(k))]); c != 0 || len(k) < 8 {
		if c == 0 {
			return 1 // k is shorter than every key (never made)
		}
		return c
	}
	if it.long == 0 {
		if len(k) == 8 {
			return 0
		}
		return -1
	}
	return bytes.Compare([]byte(t.longs[it.long-1]), k)
}

// newItem makes the item of order key k (at least 8 bytes) at l.
func (t *ltree) newItem(k []byte, l elemLoc) litem {
	it := litem{ord: binary.BigEndian.Uint64(k), off: l.off, vlen: l.vlen, file: l.file}
	if len(k) > 8 {
		s := string(k)
		if n := len(t.freeLongs); n > 0 {
			it.long = t.freeLongs[n-1] + 1
			t.freeLongs = t.freeLongs[:n-1]
			t.longs[it.long-1] = s
		} else {
			t.longs = append(t.longs, s)
			it.long = uint32(len(t.longs))
		}
	}
	return it
}

// dropItem frees what it holds outside the tree.
func (t *ltree) dropItem(it *litem) {
	if it.long != 0 {
		t.longs[it.long-1] = ""
		t.freeLongs = append(t.freeLongs, it.long-1)
	}
}

// at returns the item at index i (0 <= i < len) and its leaf and position.
func (t *ltree) at(i int) (*lnode, int) {
	nd := t.root
	for nd.kids != nil {
		for _, k := range nd.kids {
			if i < k.n {
				nd = k
				break
			}
			i -= k.n
		}
	}
	return nd, i
}

func (t *ltree) item(i int) *litem {
	nd, j := t.at(i)
	return &nd.items[j]
}

// search returns the index of the first item whose key is not less than
// k, and whether its key is k.
func (t *ltree) search(k []byte) (int, bool) {
	n := t.len()
	if n == 0 {
		return 0, false
	}
	// Pushes and pops touch the ends: answer those without descending.
	if c := t.cmpKey(&t.last.items[len(t.last.items)-1], k); c <= 0 {
		if c == 0 {
			return n - 1, true
		}
		return n, false
	}
	if c := t.cmpKey(&t.first.items[0], k); c >= 0 {
		return 0, c == 0
	}
	nd, base := t.root, 0
	for nd.kids != nil {
		// The child holding k is the last whose first key is not above k.
		lo, hi := 1, len(nd.kids)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if t.cmpKey(t.minOf(nd.kids[m]), k) <= 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
		for _, kd := range nd.kids[:lo-1] {
			base += kd.n
		}
		nd = nd.kids[lo-1]
	}
	lo, hi := 0, len(nd.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.cmpKey(&nd.items[m], k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	found := lo < len(nd.items) && t.cmpKey(&nd.items[lo], k) == 0
	return base + lo, found
}

func (t *ltree) minOf(nd *lnode) *litem {
	for nd.kids != nil {
		nd = nd.kids[0]
	}
	return &nd.items[0]
}

// insertAt inserts it at index i (0 <= i <= len).
func (t *ltree) insertAt(i int, it litem) {
	if t.root == nil {
		l := &lnode{items: make([]litem, 0, 4)}
		t.root, t.first, t.last = l, l, l
	}
	if right := t.ins(t.root, i, it); right != nil {
		t.root = &lnode{n: t.root.n + right.n, kids: []*lnode{t.root, right}}
	}
}

func (t *ltree) ins(nd *lnode, i int, it litem) *lnode {
	nd.n++
	if nd.kids == nil {
		t.insertLItem(nd, i, it)
		if len(nd.items) <= lmax {
			return nil
		}
		// Pushes at an end leave the old leaf full rather than half empty.
		mid := len(nd.items) / 2
		switch {
		case nd.next == nil && i == len(nd.items)-1:
			mid = len(nd.items) - 1
		case nd.prev == nil && i == 0:
			mid = 1
		}
		right := &lnode{}
		right.items, right.inSlab = t.leafArray(len(nd.items) - mid)
		copy(right.items, nd.items[mid:])
		nd.items = nd.items[:mid]
		right.n, nd.n = len(right.items), mid
		right.prev, right.next = nd, nd.next
		if nd.next != nil {
			nd.next.prev = right
		} else {
			t.last = right
		}
		nd.next = right
		return right
	}
	k := 0
	for k < len(nd.kids)-1 && i > nd.kids[k].n {
		i -= nd.kids[k].n
		k++
	}
	r := t.ins(nd.kids[k], i, it)
	if r == nil {
		return nil
	}
	nd.kids = append(nd.kids, nil)
	copy(nd.kids[k+2:], nd.kids[k+1:])
	nd.kids[k+1] = r
	if len(nd.kids) <= lmax {
		return nil
	}
	mid := len(nd.kids) / 2
	right := &lnode{kids: append([]*lnode(nil), nd.kids[mid:]...)}
	clear(nd.kids[mid:])
	nd.kids = nd.kids[:mid]
	nd.n = 0
	for _, kd := range nd.kids {
		nd.n += kd.n
	}
	for _, kd := range right.kids {
		right.n += kd.n
	}
	return right
}

// insertLItem inserts it at i of leaf nd's items, growing the array when
// full (a slab's never is: it has the most a leaf holds).
func (t *ltree) insertLItem(nd *lnode, i int, it litem) {
	if s := nd.items; len(s) == cap(s) {
		var ns []litem
		slab := false
		if c := min(max(2*cap(s), 4), lmax+1); c == lmax+1 {
			ns, slab = t.leafArray(len(s))
		} else {
			ns = make([]litem, len(s), c)
		}
		copy(ns, s)
		t.setItems(nd, ns, slab)
	}
	s := nd.items[:len(nd.items)+1]
	copy(s[i+1:], s[i:])
	s[i] = it
	nd.items = s
}

// deleteAt removes and returns the item at index i.
func (t *ltree) deleteAt(i int) litem {
	old := t.del(t.root, i)
	for t.root.kids != nil && len(t.root.kids) == 1 {
		t.root = t.root.kids[0]
	}
	if t.root.n == 0 {
		t.freeLeaf(t.root)
		t.root, t.first, t.last = nil, nil, nil
	}
	return old
}

func (t *ltree) del(nd *lnode, i int) litem {
	nd.n--
	if nd.kids == nil {
		old := nd.items[i]
		copy(nd.items[i:], nd.items[i+1:])
		nd.items = nd.items[:len(nd.items)-1]
		return old
	}
	k := 0
	for i >= nd.kids[k].n {
		i -= nd.kids[k].n
		k++
	}
	old := t.del(nd.kids[k], i)
	if lsize(nd.kids[k]) < lmax/4 && len(nd.kids) > 1 {
		j := k
		if j == len(nd.kids)-1 {
			j--
		}
		if lsize(nd.kids[j])+lsize(nd.kids[j+1]) <= lmax {
			t.join(nd, j)
		}
	}
	return old
}

func lsize(nd *lnode) int {
	if nd.kids == nil {
		return len(nd.items)
	}
	return len(nd.kids)
}

// join moves nd's child j+1 into child j.
func (t *ltree) join(nd *lnode, j int) {
	l, r := nd.kids[j], nd.kids[j+1]
	if l.kids == nil {
		if cap(l.items) < len(l.items)+len(r.items) {
			ns, slab := t.leafArray(len(l.items))
			copy(ns, l.items)
			t.setItems(l, ns, slab)
		}
		l.items = append(l.items, r.items...)
		t.freeLeaf(r)
		l.next = r.next
		if r.next != nil {
			r.next.prev = l
		} else {
			t.last = l
		}
	} else {
		l.kids = append(l.kids, r.kids...)
	}
	l.n += r.n
	copy(nd.kids[j+1:], nd.kids[j+2:])
	nd.kids[len(nd.kids)-1] = nil
	nd.kids = nd.kids[:len(nd.kids)-1]
}

// walk calls fn with the items at indexes from, from+1, ... (from-1, ...
// when rev) until fn returns false or the list ends.
func (t *ltree) walk(from int, rev bool, fn func(it *litem) bool) {
	if from < 0 || from >= t.len() {
		return
	}
	nd, i := t.at(from)
	for nd != nil {
		if rev {
			for ; i >= 0; i-- {
				if !fn(&nd.items[i]) {
					return
				}
			}
			nd = nd.prev
			if nd != nil {
				i = len(nd.items) - 1
			}
			continue
		}
		for ; i < len(nd.items); i++ {
			if !fn(&nd.items[i]) {
				return
			}
		}
		nd, i = nd.next, 0
	}
}

// The element index of a collection (set.go) for a list: by order key.

func (t *ltree) lookup(k []byte) (elemLoc, bool) {
	i, ok := t.search(k)
	if !ok {
		return elemLoc{}, false
	}
	return t.item(i).loc(), true
}

// store points the element of key k at l, inserting it in key order if
// it is new.
func (t *ltree) store(k []byte, l elemLoc) {
	if len(k) < 8 {
		return // never written: order keys are at least 8 bytes
	}
	i, ok := t.search(k)
	if ok {
		it := t.item(i)
		it.off, it.vlen, it.file = l.off, l.vlen, l.file
		return
	}
	t.insertAt(i, t.newItem(k, l))
}

func (t *ltree) remove(k []byte) {
	if i, ok := t.search(k); ok {
		old := t.deleteAt(i)
		t.dropItem(&old)
	}
}

// build makes the (empty) tree hold items, in order: leaves as full as
// their share of items allows, then each level above them as full, bottom
// up, with no search or split.
func (t *ltree) build(items []litem) {
	if len(items) == 0 {
		return
	}
	level := make([]*lnode, 0, (len(items)+lmax-1)/lmax)
	var prev *lnode
	if len(items) >= slabMin && t.slab == nil {
		t.slab = &leafSlab{}
		runtime.SetFinalizer(t, (*ltree).release)
	}
	for _, part := range evenParts(len(items), lmax) {
		nd := &lnode{n: part[1] - part[0]}
		nd.items, nd.inSlab = t.leafArray(part[1] - part[0])
		copy(nd.items, items[part[0]:part[1]])
		nd.prev = prev
		if prev != nil {
			prev.next = nd
		} else {
			t.first = nd
		}
		prev = nd
		level = append(level, nd)
	}
	t.last = prev
	for len(level) > 1 {
		up := make([]*lnode, 0, (len(level)+lmax-1)/lmax)
		for _, part := range evenParts(len(level), lmax) {
			nd := &lnode{kids: append(make([]*lnode, 0, part[1]-part[0]+1), level[part[0]:part[1]]...)}
			for _, k := range nd.kids {
				nd.n += k.n
			}
			up = append(up, nd)
		}
		level = up
	}
	t.root = level[0]
}

// evenParts cuts [0, n) into the fewest runs of at most most items, of lengths
// differing by one at most.
func evenParts(n, most int) [][2]int {
	k := (n + most - 1) / most
	out := make([][2]int, 0, k)
	at := 0
	for i := 0; i < k; i++ {
		m := n / k
		if i < n%k {
			m++
		}
		out = append(out, [2]int{at, at + m})
		at += m
	}
	return out
}
