package bitcask

import (
	"cmp"
	"strings"
)

// zindex is a sorted set's members ordered by (score, member): a B+tree
// whose nodes count the items below them, so that the rank of an item and
// the item at a rank are found in O(log n), and whose leaves are linked
// for walking a range in order. Items live in the leaves only; an inner
// node holds, between two children, a separator no greater than every
// item of the right child and greater than every item of the left one
// (deletes may leave a separator that is no longer an item, which keeps
// both properties). A leaf holds up to zmax items in one array: about 24
// bytes an item (score, and the member string the key directory's element
// map shares), where a skiplist spends a node and its levels per member.
type zindex struct {
	root        *znode
	first, last *znode // the leaves at both ends
}

type zitem struct {
	score  float64
	member string
}

// znode is a leaf (kids nil) or an inner node.
type znode struct {
	n          int      // items in the subtree
	items      []zitem  // a leaf's items, in order
	kids       []*znode // an inner node's children, in order
	keys       []zitem  // keys[i] separates kids[i] and kids[i+1]
	prev, next *znode   // a leaf's neighbours
}

// zmax is the most items of a leaf and children of an inner node.
const zmax = 64

func zcmp(a, b *zitem) int {
	if c := cmp.Compare(a.score, b.score); c != 0 {
		return c
	}
	return strings.Compare(a.member, b.member)
}

func (z *zindex) len() int {
	if z.root == nil {
		return 0
	}
	return z.root.n
}

// insert adds it, which must not be there.
func (z *zindex) insert(it zitem) {
	if z.root == nil {
		l := &znode{items: make([]zitem, 0, 4)}
		z.root, z.first, z.last = l, l, l
	}
	if sep, right := z.ins(z.root, it); right != nil {
		z.root = &znode{n: z.root.n + right.n, kids: []*znode{z.root, right}, keys: []zitem{sep}}
	}
}

// ins inserts it under nd; a split returns the new right sibling and the
// separator before it.
func (z *zindex) ins(nd *znode, it zitem) (zitem, *znode) {
	nd.n++
	if nd.kids == nil {
		i := leafSearch(nd.items, &it)
		nd.items = insertItem(nd.items, i, it)
		if len(nd.items) <= zmax {
			return zitem{}, nil
		}
		// Filling in order (ascending or descending scores, the common
		// case) leaves the old leaf full rather than half empty.
		mid := len(nd.items) / 2
		switch {
		case nd.next == nil && i == len(nd.items)-1:
			mid = len(nd.items) - 1
		case nd.prev == nil && i == 0:
			mid = 1
		}
		right := &znode{items: make([]zitem, len(nd.items)-mid, zmax+1)}
		copy(right.items, nd.items[mid:])
		clear(nd.items[mid:])
		nd.items = nd.items[:mid]
		right.n, nd.n = len(right.items), mid
		right.prev, right.next = nd, nd.next
		if nd.next != nil {
			nd.next.prev = right
		} else {
			z.last = right
		}
		nd.next = right
		return right.items[0], right
	}
	i := innerSearch(nd.keys, &it)
	sep, r := z.ins(nd.kids[i], it)
	if r == nil {
		return zitem{}, nil
	}
	nd.keys = insertItem(nd.keys, i, sep)
	nd.kids = insertKid(nd.kids, i+1, r)
	if len(nd.kids) <= zmax {
		return zitem{}, nil
	}
	mid := len(nd.kids) / 2
	right := &znode{kids: append([]*znode(nil), nd.kids[mid:]...), keys: append([]zitem(nil), nd.keys[mid:]...)}
	up := nd.keys[mid-1]
	clear(nd.kids[mid:])
	clear(nd.keys[mid-1:])
	nd.kids, nd.keys = nd.kids[:mid], nd.keys[:mid-1]
	nd.n = 0
	for _, k := range nd.kids {
		nd.n += k.n
	}
	for _, k := range right.kids {
		right.n += k.n
	}
	return up, right
}

// leafSearch returns the position of the first item not less than it.
func leafSearch(items []zitem, it *zitem) int {
	lo, hi := 0, len(items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if zcmp(&items[m], it) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// innerSearch returns the child of an inner node that holds it: the number
// of separators not greater than it.
func innerSearch(keys []zitem, it *zitem) int {
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if zcmp(&keys[m], it) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func insertItem(s []zitem, i int, it zitem) []zitem {
	if len(s) == cap(s) {
		ns := make([]zitem, len(s), min(max(2*cap(s), 4), zmax+1))
		copy(ns, s)
		s = ns
	}
	s = s[:len(s)+1]
	copy(s[i+1:], s[i:])
	s[i] = it
	return s
}

func insertKid(s []*znode, i int, k *znode) []*znode {
	s = append(s, nil)
	copy(s[i+1:], s[i:])
	s[i] = k
	return s
}

// remove deletes it and reports whether it was there, returning the item
// it held (whose member string the caller may reuse).
func (z *zindex) remove(it zitem) (zitem, bool) {
	if z.root == nil {
		return zitem{}, false
	}
	old, ok := z.del(z.root, &it)
	if !ok {
		return zitem{}, false
	}
	for z.root.kids != nil && len(z.root.kids) == 1 {
		z.root = z.root.kids[0]
	}
	if z.root.n == 0 {
		z.root, z.first, z.last = nil, nil, nil
	}
	return old, true
}

func (z *zindex) del(nd *znode, it *zitem) (zitem, bool) {
	if nd.kids == nil {
		i := leafSearch(nd.items, it)
		if i == len(nd.items) || zcmp(&nd.items[i], it) != 0 {
			return zitem{}, false
		}
		old := nd.items[i]
		copy(nd.items[i:], nd.items[i+1:])
		nd.items[len(nd.items)-1] = zitem{}
		nd.items = nd.items[:len(nd.items)-1]
		nd.n--
		return old, true
	}
	i := innerSearch(nd.keys, it)
	old, ok := z.del(nd.kids[i], it)
	if !ok {
		return zitem{}, false
	}
	nd.n--
	if size(nd.kids[i]) < zmax/4 && len(nd.kids) > 1 {
		// Join a small child with a neighbour when both fit in one.
		j := i
		if j == len(nd.kids)-1 {
			j--
		}
		if size(nd.kids[j])+size(nd.kids[j+1]) <= zmax {
			z.join(nd, j)
		}
	}
	return old, true
}

func size(nd *znode) int {
	if nd.kids == nil {
		return len(nd.items)
	}
	return len(nd.kids)
}

// join moves nd's child j+1 into child j.
func (z *zindex) join(nd *znode, j int) {
	l, r := nd.kids[j], nd.kids[j+1]
	if l.kids == nil {
		if cap(l.items) < len(l.items)+len(r.items) {
			ns := make([]zitem, len(l.items), zmax+1)
			copy(ns, l.items)
			l.items = ns
		}
		l.items = append(l.items, r.items...)
		l.next = r.next
		if r.next != nil {
			r.next.prev = l
		} else {
			z.last = l
		}
	} else {
		l.keys = append(append(l.keys, nd.keys[j]), r.keys...)
		l.kids = append(l.kids, r.kids...)
	}
	l.n += r.n
	copy(nd.keys[j:], nd.keys[j+1:])
	nd.keys[len(nd.keys)-1] = zitem{}
	nd.keys = nd.keys[:len(nd.keys)-1]
	copy(nd.kids[j+1:], nd.kids[j+2:])
	nd.kids[len(nd.kids)-1] = nil
	nd.kids = nd.kids[:len(nd.kids)-1]
}

// rankWhere returns the number of items for which before is true; before
// must be true for a prefix of the order and false after it.
func (z *zindex) rankWhere(before func(*zitem) bool) int {
	nd := z.root
	if nd == nil {
		return 0
	}
	r := 0
	for nd.kids != nil {
		lo, hi := 0, len(nd.keys)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if before(&nd.keys[m]) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		for _, k := range nd.kids[:lo] {
			r += k.n
		}
		nd = nd.kids[lo]
	}
	lo, hi := 0, len(nd.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if before(&nd.items[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return r + lo
}

// rank returns the number of items less than it.
func (z *zindex) rank(it zitem) int {
	return z.rankWhere(func(x *zitem) bool { return zcmp(x, &it) < 0 })
}

// at returns the leaf and position of the item of rank r (0 <= r < len).
func (z *zindex) at(r int) (*znode, int) {
	nd := z.root
	for nd.kids != nil {
		for _, k := range nd.kids {
			if r < k.n {
				nd = k
				break
			}
			r -= k.n
		}
	}
	return nd, r
}

// walk calls fn for the items of ranks from, from+1, ... (from-1, ... when
// rev) until fn returns false or the set ends.
func (z *zindex) walk(from int, rev bool, fn func(*zitem) bool) {
	if from < 0 || from >= z.len() {
		return
	}
	nd, i := z.at(from)
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

// clone returns a copy of z (for a Tx's own view of a set it writes),
// node by node: O(n) copies, no comparison.
func (z *zindex) clone() *zindex {
	c := &zindex{}
	if z.root == nil {
		return c
	}
	var prev *znode
	var cp func(nd *znode) *znode
	cp = func(nd *znode) *znode {
		n := &znode{n: nd.n}
		if nd.kids == nil {
			n.items = append(make([]zitem, 0, cap(nd.items)), nd.items...)
			n.prev = prev
			if prev != nil {
				prev.next = n
			} else {
				c.first = n
			}
			prev = n
			return n
		}
		n.keys = append([]zitem(nil), nd.keys...)
		n.kids = make([]*znode, len(nd.kids))
		for i, k := range nd.kids {
			n.kids[i] = cp(k)
		}
		return n
	}
	c.root = cp(z.root)
	c.last = prev
	return c
}

// removeMember deletes member whatever its score, walking the set: for
// when its score cannot be read.
func (z *zindex) removeMember(member string) (zitem, bool) {
	var found *zitem
	z.walk(0, false, func(it *zitem) bool {
		if it.member == member {
			found = it
			return false
		}
		return true
	})
	if found == nil {
		return zitem{}, false
	}
	return z.remove(*found)
}

// build makes the (empty) index hold items, sorted and distinct: leaves
// and inner nodes as full as their share allows, bottom up, each
// separator the first item of the child on its right (as a split makes
// it).
func (z *zindex) build(items []zitem) {
	if len(items) == 0 {
		return
	}
	type sub struct {
		nd  *znode
		min zitem // the subtree's first item
	}
	level := make([]sub, 0, (len(items)+zmax-1)/zmax)
	var prev *znode
	for _, part := range evenParts(len(items), zmax) {
		nd := &znode{n: part[1] - part[0], items: make([]zitem, part[1]-part[0], zmax+1)}
		copy(nd.items, items[part[0]:part[1]])
		nd.prev = prev
		if prev != nil {
			prev.next = nd
		} else {
			z.first = nd
		}
		prev = nd
		level = append(level, sub{nd, nd.items[0]})
	}
	z.last = prev
	for len(level) > 1 {
		up := make([]sub, 0, (len(level)+zmax-1)/zmax)
		for _, part := range evenParts(len(level), zmax) {
			kids := level[part[0]:part[1]]
			nd := &znode{kids: make([]*znode, 0, len(kids)+1), keys: make([]zitem, 0, len(kids))}
			for i, k := range kids {
				nd.kids = append(nd.kids, k.nd)
				nd.n += k.nd.n
				if i > 0 {
					nd.keys = append(nd.keys, k.min)
				}
			}
			up = append(up, sub{nd, kids[0].min})
		}
		level = up
	}
	z.root = level[0].nd
}
