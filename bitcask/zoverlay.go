package bitcask

// zview is an order of a sorted set's (score, member) items that ranks and
// ranges are read from: a zindex, or a Tx's zoverlay of one.
type zview interface {
	len() int
	// rankWhere is the number of items for which before is true (a
	// prefix of the order).
	rankWhere(before func(*zitem) bool) int
	// walkUp calls fn for the items of ranks from, from+1, ... until fn
	// returns false or the set ends.
	walkUp(from int, fn func(*zitem) bool)
}

func (z *zindex) walkUp(from int, fn func(*zitem) bool) { z.walk(from, false, fn) }

// zrank is the number of items of z less than it.
func zrank(z zview, it zitem) int {
	return z.rankWhere(func(x *zitem) bool { return zcmp(x, &it) < 0 })
}

// zoverlayMax is the most items a zoverlay holds (removed plus added)
// before the Tx takes its own copy of the set instead: an overlay's walk
// may step over the removed items of the range it reads, a copy's never.
const zoverlayMax = 4096

// zoverlay is a Tx's view of a sorted set it wrote: the key directory's
// index (base, which does not change while the Tx runs), minus the items
// the Tx removed from it (del, at their committed scores; a member whose
// score the Tx changed is removed and added), plus the items the Tx added
// (add). del is within base and add shares no item with what is left of
// it, so every count is base's, less del's, plus add's.
type zoverlay struct {
	base, del, add *zindex
	gone           map[zitem]struct{} // del's items, for a walk to skip them
}

func newZoverlay(base *zindex) *zoverlay {
	return &zoverlay{base: base, del: &zindex{}, add: &zindex{}, gone: make(map[zitem]struct{})}
}

func (o *zoverlay) changes() int { return o.del.len() + o.add.len() }

func (o *zoverlay) len() int { return o.base.len() - o.del.len() + o.add.len() }

// remove takes out it, which the view holds.
func (o *zoverlay) remove(it zitem) {
	if _, ok := o.add.remove(it); ok {
		return
	}
	o.del.insert(it)
	o.gone[it] = struct{}{}
}

// insert adds it, which the view does not hold.
func (o *zoverlay) insert(it zitem) {
	if _, ok := o.gone[it]; ok {
		delete(o.gone, it)
		o.del.remove(it)
		return
	}
	o.add.insert(it)
}

func (o *zoverlay) rankWhere(before func(*zitem) bool) int {
	return o.base.rankWhere(before) - o.del.rankWhere(before) + o.add.rankWhere(before)
}

// full returns the view as an index of its own: a copy of base with the
// Tx's changes applied.
func (o *zoverlay) full() *zindex {
	z := o.base.clone()
	o.del.walk(0, false, func(it *zitem) bool { z.remove(*it); return true })
	o.add.walk(0, false, func(it *zitem) bool { z.insert(*it); return true })
	return z
}

// before is the number of the view's items less than base's item of rank
// b (all of them for b == base.len()), and add's rank of that item.
func (o *zoverlay) before(b int) (n, a int) {
	if b >= o.base.len() {
		return o.len(), o.add.len()
	}
	nd, i := o.base.at(b)
	it := nd.items[i]
	a = zrank(o.add, it)
	return b - zrank(o.del, it) + a, a
}

func (o *zoverlay) walkUp(from int, fn func(*zitem) bool) {
	if from < 0 || from >= o.len() {
		return
	}
	// Start at the last base rank b with at most from items of the view
	// before it: before(b) is monotone, within [b - del, b + add], so b is
	// in [from - add, from + del]. Past b, fewer than the view's items
	// between base's b and b+1 (base's b itself and added ones) remain to
	// step over.
	lo, hi := max(0, from-o.add.len()), min(o.base.len(), from+o.del.len())
	for lo < hi {
		m := int(uint(lo+hi+1) >> 1)
		if n, _ := o.before(m); n <= from {
			lo = m
		} else {
			hi = m - 1
		}
	}
	b := lo
	pos, a := o.before(b)
	if pos > from { // b == 0, with added items before base's first
		pos, a = 0, 0
	}
	bc, ac := o.base.cursor(b), o.add.cursor(a)
	for {
		for bc.valid() {
			if _, gone := o.gone[*bc.item()]; !gone {
				break
			}
			bc.next()
		}
		var it *zitem
		switch {
		case bc.valid() && (!ac.valid() || zcmp(bc.item(), ac.item()) < 0):
			it = bc.item()
			bc.next()
		case ac.valid():
			it = ac.item()
			ac.next()
		default:
			return
		}
		if pos < from {
			pos++
			continue
		}
		if !fn(it) {
			return
		}
	}
}

// zcursor is a position in a zindex's leaves, for walking two indexes
// side by side.
type zcursor struct {
	nd *znode
	i  int
}

// cursor is the position of the item of rank r (invalid past the end).
func (z *zindex) cursor(r int) zcursor {
	if r < 0 || r >= z.len() {
		return zcursor{}
	}
	nd, i := z.at(r)
	return zcursor{nd, i}
}

func (c *zcursor) valid() bool  { return c.nd != nil }
func (c *zcursor) item() *zitem { return &c.nd.items[c.i] }
func (c *zcursor) next() {
	c.i++
	for c.nd != nil && c.i >= len(c.nd.items) {
		c.nd, c.i = c.nd.next, 0
	}
}
