package bitcask

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Lists. A list is a collection (collection.go) of key type keyTypeList:
// a root record and one element record per element write, the element
// being named by its order key, so that the list's order is the order
// keys' byte order. A push, a pop, an LSET or an LINSERT writes one
// record for the element it touches (a put at a new order key, a
// tombstone, a put at the same order key): nothing else of the list is
// rewritten, and deleting, overwriting or expiring the list is its
// root's one record, whose generation hides every older element (merge
// never copies one back).
//
// Order keys are at least 8 bytes. A push makes an 8-byte key: the end's
// first 8 bytes (big endian) minus or plus listStep, with the low bit set;
// the first element of a list gets listStart, the middle of the range, so
// that 2^43 pushes fit on either side. LINSERT makes the key halfway
// between its neighbours' (between): 8 bytes while the neighbours' first
// 8 bytes are far enough apart (20 halvings between two pushed
// elements), one byte longer about every 8 halvings after that. No key
// ends with a zero byte unless it is 8 bytes long, so keys compare as
// fractions do and a key between two others always exists.
//
// In memory a list is an ltree (ltree.go): 24 bytes an element, by
// index in O(log n), the values on disk. Open rebuilds it from the
// element records (or hints) sorted by order key, a merge moves items
// by order key: both give the order the keys say.

const (
	listStart = 1<<63 | 1
	listStep  = 1 << 20
)

// ErrListKeys is returned when a push finds no order key left at the
// list's end (after 2^43 pushes on one side).
var ErrListKeys = errors.New("bitcask: list order keys exhausted at this end")

func ordKey(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// keyBefore is the order key of a new first element before first.
func keyBefore(first []byte) ([]byte, error) {
	p := binary.BigEndian.Uint64(first)
	if p <= listStep+1 {
		return nil, ErrListKeys
	}
	return ordKey((p - listStep) | 1), nil
}

// keyAfter is the order key of a new last element after last.
func keyAfter(last []byte) ([]byte, error) {
	p := binary.BigEndian.Uint64(last)
	if p >= math.MaxUint64-listStep-1 {
		return nil, ErrListKeys
	}
	return ordKey((p + listStep) | 1), nil
}

// between returns an order key strictly between a and b (a < b): their
// mean as base-256 fractions, without trailing zero bytes, padded to 8.
func between(a, b []byte) ([]byte, error) {
	n := max(len(a), len(b))
	sum := make([]int, n)
	carry := 0
	for i := n - 1; i >= 0; i-- {
		d := carry
		if i < len(a) {
			d += int(a[i])
		}
		if i < len(b) {
			d += int(b[i])
		}
		sum[i], carry = d&0xff, d>>8
	}
	out := make([]byte, n+1)
	rem := carry
	for i := 0; i < n; i++ {
		cur := rem<<8 | sum[i]
		out[i], rem = byte(cur>>1), cur&1
	}
	out[n] = byte(rem << 7)
	for len(out) > 8 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	if bytes.Compare(a, out) >= 0 || bytes.Compare(out, b) >= 0 {
		return nil, fmt.Errorf("%w: no list order key between %x and %x", ErrCorrupt, a, b)
	}
	return out, nil
}

// Reads outside a Tx.

func (db *DB) listView(h uint64, key []byte, now int64, fn func(t *ltree) error) error {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, TypeList, now)
	if err != nil {
		return err
	}
	return fn(c.l)
}

// ListLen returns the number of elements of the list at key; ErrNotFound
// when absent, ErrWrongType when key holds another type.
func (db *DB) ListLen(h uint64, key []byte, now int64) (n int, err error) {
	err = db.listView(h, key, now, func(t *ltree) error { n = t.len(); return nil })
	return n, err
}

// ListWalk calls fn with the elements of the list at key from index from
// (0 <= from < length) towards the end (the start when rev), until fn
// returns false. v is valid only during the call, and fn must not call
// the DB.
func (db *DB) ListWalk(h uint64, key []byte, from int, rev bool, now int64, fn func(i int, v []byte) bool) error {
	return db.listView(h, key, now, func(t *ltree) error {
		var kbuf, vbuf []byte
		var err error
		i := from
		t.walk(from, rev, func(it *litem) bool {
			kbuf = t.keyOf(kbuf[:0], it)
			l := it.loc()
			if vbuf, err = db.readElem(vbuf[:0], key, kbuf, &l); err != nil {
				return false
			}
			more := fn(i, vbuf)
			if rev {
				i--
			} else {
				i++
			}
			return more
		})
		return err
	})
}

// In a Tx: the list as the Tx sees it is the key directory's ltree (while
// the Tx has not made the list anew) merged with the Tx's element writes,
// in key order (txColl.lkeys). Ends are found walking from them, so a
// pipeline of pushes and pops costs what they touch; an index in the
// middle of a list the Tx wrote is reached by walking, as Redis walks its
// quicklist.

// lref is an element of a list as a Tx sees it.
type lref struct {
	key []byte // order key; valid during the walk's call
	op  int32  // the Tx's put holding the value, or -1: it, in the key directory
	it  litem
}

func (r *lref) vlen(st *txState) int64 {
	if r.op >= 0 {
		return int64(st.ops[r.op].vlen)
	}
	l := r.it.loc()
	return int64(l.valueLen())
}

// txListWalk calls fn with the elements of the list tc from index from
// towards the end (the start when rev), holding the shard's read lock:
// fn may read values (lrefValue) but not write. Once the Tx wrote the
// list, reaching from costs the elements before it in the walk's
// direction: callers walk from the nearer end.
func (db *DB) txListWalk(st *txState, tc *txColl, h uint64, key []byte, from int, rev bool, fn func(i int, r *lref) bool) error {
	if from < 0 || from >= tc.n {
		return nil
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var t *ltree
	if c := s.colls[string(key)]; tc.base && c != nil && c.l != nil {
		t = c.l
	}
	var r lref
	var kbuf []byte
	step := 1
	if rev {
		step = -1
	}
	var keys []string
	if tc.lk != nil {
		keys = tc.lk.keys()
	}
	if len(keys) == 0 {
		if t == nil {
			return nil
		}
		i := from
		t.walk(from, rev, func(it *litem) bool {
			kbuf = t.keyOf(kbuf[:0], it)
			r = lref{key: kbuf, op: -1, it: *it}
			more := fn(i, &r)
			i += step
			return more
		})
		return nil
	}
	// Merge the tree's items and the Tx's keys, in order: bpos is the
	// tree index of (nd, j), oi the index in keys.
	lk := tc.lk
	tlen := 0
	if t != nil {
		tlen = t.len()
	}
	bpos, oi, oend := 0, 0, len(keys)
	if rev {
		bpos, oi, oend = tlen-1, len(keys)-1, -1
	}
	skip := from // elements to pass before from
	i := 0
	if rev {
		skip = tc.n - 1 - from
		i = tc.n - 1
	}
	// A walk from an end resumes where the last one found the end's
	// element: what is before it the Tx deleted (pops), and walking past
	// it again made a batch of pops quadratic.
	var cache **lcache
	switch {
	case !rev && skip == 0:
		cache = &lk.front
	case rev && skip == 0:
		cache = &lk.back
	}
	if cache != nil && *cache != nil {
		lc := *cache
		bpos = lc.pos
		if rev {
			oi = sort.SearchStrings(keys, lc.bound+"\x00") - 1
		} else {
			oi = sort.SearchStrings(keys, lc.bound)
		}
	}
	var nd *lnode
	j := 0
	if bpos >= 0 && bpos < tlen {
		nd, j = t.at(bpos)
	}
	emit := func(k []byte, pos int) bool {
		if skip > 0 {
			skip--
			return true
		}
		if cache != nil {
			*cache = &lcache{pos: pos, bound: string(k)}
			cache = nil
		}
		more := fn(i, &r)
		i += step
		return more
	}
	for nd != nil || oi != oend {
		var bk []byte
		c := 1 // the Tx's key first
		if nd != nil {
			kbuf = t.keyOf(kbuf[:0], &nd.items[j])
			bk = kbuf
			c = -1
			if oi != oend {
				c = bytes.Compare(bk, []byte(keys[oi]))
				if rev {
					c = -c
				}
			}
		}
		at := bpos
		if c <= 0 && nd != nil {
			it := nd.items[j]
			bpos += step
			if rev {
				if j--; j < 0 {
					if nd = nd.prev; nd != nil {
						j = len(nd.items) - 1
					}
				}
			} else if j++; j == len(nd.items) {
				nd, j = nd.next, 0
			}
			if c < 0 {
				r = lref{key: bk, op: -1, it: it}
				if !emit(bk, at) {
					return nil
				}
				continue
			}
		}
		ok := keys[oi]
		oi += step
		if op := tc.elems[ok]; st.ops[op].kind == kindElemPut {
			r = lref{key: []byte(ok), op: op}
			if !emit(r.key, at) {
				return nil
			}
		}
	}
	return nil
}

// lkeys are the order keys a Tx wrote in a list (txColl.elems' keys),
// sorted, with room before the first so that pushes at either end add
// in O(1); and where the last walks from each end found its first element.
type lkeys struct {
	buf   []string
	off   int // keys are buf[off:]
	front *lcache
	back  *lcache
}

// lcache is where a walk from an end found the first element: every key
// before bound (after it, for the tail) is the Tx's delete or a tree item
// it deleted, and pos is the tree index to resume at.
type lcache struct {
	pos   int
	bound string
}

func (lk *lkeys) keys() []string { return lk.buf[lk.off:] }

// note adds k, written by a put or a delete. A put before an end's bound
// voids that end's cache.
func (lk *lkeys) note(k []byte, put bool) {
	if put {
		if lk.front != nil && string(k) < lk.front.bound {
			lk.front = nil
		}
		if lk.back != nil && string(k) > lk.back.bound {
			lk.back = nil
		}
	}
	keys := lk.keys()
	i := sort.SearchStrings(keys, string(k))
	if i < len(keys) && keys[i] == string(k) {
		return
	}
	if i == 0 && lk.off > 0 {
		lk.off--
		lk.buf[lk.off] = string(k)
		return
	}
	if i == 0 && len(keys) > 0 {
		room := max(len(keys), 8)
		nb := make([]string, room+len(keys), room+2*len(keys))
		copy(nb[room:], keys)
		lk.buf, lk.off = nb, room-1
		lk.buf[lk.off] = string(k)
		return
	}
	lk.buf = append(lk.buf, "")
	copy(lk.buf[lk.off+i+1:], lk.buf[lk.off+i:])
	lk.buf[lk.off+i] = string(k)
}

// lrefValue appends r's value to dst. Caller is in txListWalk's fn.
func (db *DB) lrefValue(dst []byte, st *txState, key []byte, r *lref) ([]byte, error) {
	if r.op >= 0 {
		op := &st.ops[r.op]
		rec := st.buf[op.recOff:]
		stored := rec[headerSize+op.klen : headerSize+op.klen+storedLen(op.vtype, op.vlen)]
		if op.vtype == valTypeInt {
			return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(stored)), 10), nil
		}
		return append(dst, stored...), nil
	}
	l := r.it.loc()
	return db.readElem(dst, key, r.key, &l)
}

// lentry is an element a Tx read to write: its key and value.
type lentry struct {
	key, value []byte
	vlen       int64
}

// txListCollect returns up to max elements from index from (towards the
// start when rev) for which keep says yes (keep nil: every one), with
// their values when values is set.
func (db *DB) txListCollect(st *txState, tc *txColl, h uint64, key []byte, from int, rev bool, max int, values bool, keep func(i int, v []byte) bool) ([]lentry, error) {
	var out []lentry
	var err error
	var vbuf []byte
	werr := db.txListWalk(st, tc, h, key, from, rev, func(i int, r *lref) bool {
		e := lentry{vlen: r.vlen(st)}
		if values || keep != nil {
			if vbuf, err = db.lrefValue(vbuf[:0], st, key, r); err != nil {
				return false
			}
			if keep != nil && !keep(i, vbuf) {
				return true
			}
			if values {
				e.value = bytes.Clone(vbuf)
			}
		}
		e.key = bytes.Clone(r.key)
		out = append(out, e)
		return max <= 0 || len(out) < max
	})
	if werr != nil {
		return nil, werr
	}
	return out, err
}

func (tx *Tx) listColl(key []byte) (*txColl, uint64, error) {
	if tx.isDone() {
		return nil, 0, ErrTxDone
	}
	h := xxhash.Sum64(key)
	tc, err := tx.db.txCollOf(tx.st, h, key, TypeList)
	return tc, h, err
}

// txListNote records that the Tx wrote order key k of tc (a put or a
// delete).
func (tc *txColl) txListNote(k []byte, put bool) {
	if tc.lk == nil {
		tc.lk = &lkeys{}
	}
	tc.lk.note(k, put)
}

func (db *DB) listFits(key []byte, k []byte, value []byte) error {
	if err := db.checkSizes(key, len(value)); err != nil {
		return err
	}
	if n := uvarintLen(uint64(len(key))) + len(key) + len(k); n > maxKeySizeLimit {
		return fmt.Errorf("%w: list key of %d bytes, format limit %d", ErrKeyTooLarge, n, maxKeySizeLimit)
	}
	return nil
}

// txListPut writes element k of the list tc with value; old is the
// length of the value it replaces, or -1 for a new element.
func (db *DB) txListPut(st *txState, tc *txColl, h uint64, key, k, value []byte, old int64) error {
	if err := db.listFits(key, k, value); err != nil {
		return err
	}
	if err := db.txElemRecord(st, tc, kindElemPut, h, key, k, value); err != nil {
		return err
	}
	tc.txListNote(k, true)
	if old < 0 {
		tc.n++
		st.elemDelta += int64(len(k)) + int64(len(value))
	} else {
		st.elemDelta += int64(len(value)) - old
	}
	return nil
}

// txListDel removes element e of the list tc; the last one deletes the
// list.
func (db *DB) txListDel(st *txState, tc *txColl, h uint64, key []byte, e *lentry) error {
	st.elemDelta -= int64(len(e.key)) + e.vlen
	if tc.n == 1 {
		_, err := db.txDelete(st, key)
		tc.n = 0
		return err
	}
	if err := db.txElemRecord(st, tc, kindElemDelete, h, key, e.key, nil); err != nil {
		return err
	}
	tc.txListNote(e.key, false)
	tc.n--
	return nil
}

// ListLen returns the number of elements of the list at key (0 when
// absent), ErrWrongType when key holds another type.
func (tx *Tx) ListLen(key []byte) (int, error) {
	tc, _, err := tx.listColl(key)
	if tc == nil || err != nil {
		return 0, err
	}
	return tc.n, nil
}

// ListWalk is DB.ListWalk as the Tx sees the list (nothing when absent).
func (tx *Tx) ListWalk(key []byte, from int, rev bool, fn func(i int, v []byte) bool) error {
	tc, h, err := tx.listColl(key)
	if tc == nil || err != nil {
		return err
	}
	var vbuf []byte
	var verr error
	err = tx.db.txListWalk(tx.st, tc, h, key, from, rev, func(i int, r *lref) bool {
		if vbuf, verr = tx.db.lrefValue(vbuf[:0], tx.st, key, r); verr != nil {
			return false
		}
		return fn(i, vbuf)
	})
	if err == nil {
		err = verr
	}
	return err
}

// ListPush pushes vals at the head (left, each before the previous one,
// as LPUSH does) or the tail of the list at key, making it if absent
// unless existing is set (LPUSHX), and returns the list's length after
// (0 when existing finds no list). One record per value (and the root
// for a new list).
func (tx *Tx) ListPush(key []byte, vals [][]byte, left, existing bool) (int, error) {
	tc, h, err := tx.listColl(key)
	if err != nil {
		return 0, err
	}
	if tc == nil && existing {
		return 0, nil
	}
	db, st := tx.db, tx.st
	var probe [8]byte
	for _, v := range vals {
		if err := db.listFits(key, probe[:], v); err != nil {
			return 0, err
		}
	}
	if tc == nil {
		if tc, err = db.txNewColl(st, h, key, TypeList); err != nil {
			return 0, err
		}
	}
	var end []byte
	if tc.n > 0 {
		// The end, walked from that end: a walk passes what is before
		// its start.
		from := tc.n - 1
		if left {
			from = 0
		}
		es, err := db.txListCollect(st, tc, h, key, from, !left, 1, false, nil)
		if err != nil {
			return 0, err
		}
		if len(es) == 1 {
			end = es[0].key
		}
	}
	for _, v := range vals {
		var k []byte
		switch {
		case end == nil:
			k = ordKey(listStart)
		case left:
			k, err = keyBefore(end)
		default:
			k, err = keyAfter(end)
		}
		if err != nil {
			return 0, err
		}
		if err := db.txListPut(st, tc, h, key, k, v, -1); err != nil {
			return 0, err
		}
		end = k
	}
	return tc.n, nil
}

// ListPop removes and returns up to count elements from the head (left)
// or the tail of the list at key; nil when absent. Popping the last
// element deletes the list.
func (tx *Tx) ListPop(key []byte, left bool, count int) ([][]byte, error) {
	tc, h, err := tx.listColl(key)
	if tc == nil || err != nil || count <= 0 {
		return nil, err
	}
	db, st := tx.db, tx.st
	from := tc.n - 1
	if left {
		from = 0
	}
	es, err := db.txListCollect(st, tc, h, key, from, !left, count, true, nil)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(es))
	for i := range es {
		if err := db.txListDel(st, tc, h, key, &es[i]); err != nil {
			return nil, err
		}
		out = append(out, es[i].value)
	}
	return out, nil
}

// ListSet sets the element at index i (0 <= i < length) of the list at
// key to value: ErrNotFound when the list is absent, ErrListIndex when i
// is out of range.
func (tx *Tx) ListSet(key []byte, i int, value []byte) error {
	tc, h, err := tx.listColl(key)
	if err != nil {
		return err
	}
	if tc == nil {
		return ErrNotFound
	}
	if i < 0 || i >= tc.n {
		return ErrListIndex
	}
	db, st := tx.db, tx.st
	es, err := db.txListCollect(st, tc, h, key, i, i >= tc.n/2, 1, false, nil)
	if err != nil {
		return err
	}
	if len(es) != 1 {
		return ErrListIndex
	}
	return db.txListPut(st, tc, h, key, es[0].key, value, es[0].vlen)
}

// ErrListIndex is ListSet's index out of range.
var ErrListIndex = errors.New("bitcask: list index out of range")

// ListInsert inserts value before (or after) the first element equal to
// pivot of the list at key, and returns the length after: 0 when the list
// is absent, -1 when no element is pivot.
func (tx *Tx) ListInsert(key []byte, before bool, pivot, value []byte) (int, error) {
	tc, h, err := tx.listColl(key)
	if tc == nil || err != nil {
		return 0, err
	}
	db, st := tx.db, tx.st
	var probe [8]byte
	if err := db.listFits(key, probe[:], value); err != nil {
		return 0, err
	}
	// The pivot and its neighbour on the side of the new element.
	var prev, at, next []byte
	found := false
	var vbuf []byte
	var verr error
	err = db.txListWalk(st, tc, h, key, 0, false, func(i int, r *lref) bool {
		if found {
			next = bytes.Clone(r.key)
			return false
		}
		if vbuf, verr = db.lrefValue(vbuf[:0], st, key, r); verr != nil {
			return false
		}
		if bytes.Equal(vbuf, pivot) {
			found, at = true, bytes.Clone(r.key)
			return !before
		}
		prev = append(prev[:0], r.key...)
		return true
	})
	if err == nil {
		err = verr
	}
	if err != nil {
		return 0, err
	}
	if !found {
		return -1, nil
	}
	var k []byte
	switch {
	case before && len(prev) == 0:
		k, err = keyBefore(at)
	case before:
		k, err = between(prev, at)
	case next == nil:
		k, err = keyAfter(at)
	default:
		k, err = between(at, next)
	}
	if err != nil {
		return 0, err
	}
	if err := db.txListPut(st, tc, h, key, k, value, -1); err != nil {
		return 0, err
	}
	return tc.n, nil
}

// ListRemove removes the first count elements equal to value (the last
// -count when count < 0, all of them when 0) and returns how many.
func (tx *Tx) ListRemove(key []byte, count int, value []byte) (int, error) {
	tc, h, err := tx.listColl(key)
	if tc == nil || err != nil {
		return 0, err
	}
	db, st := tx.db, tx.st
	from, rev := 0, false
	if count < 0 {
		from, rev, count = tc.n-1, true, -count
	}
	es, err := db.txListCollect(st, tc, h, key, from, rev, count, false, func(_ int, v []byte) bool {
		return bytes.Equal(v, value)
	})
	if err != nil {
		return 0, err
	}
	for i := range es {
		if err := db.txListDel(st, tc, h, key, &es[i]); err != nil {
			return 0, err
		}
	}
	return len(es), nil
}

// ListTrim keeps the elements at indexes [lo, hi) of the list at key and
// removes the others (all of them, deleting the list, when lo >= hi).
func (tx *Tx) ListTrim(key []byte, lo, hi int) error {
	tc, h, err := tx.listColl(key)
	if tc == nil || err != nil {
		return err
	}
	db, st := tx.db, tx.st
	lo, hi = max(lo, 0), min(hi, tc.n)
	if lo >= hi {
		_, err := db.txDelete(st, key)
		return err
	}
	var es []lentry
	if lo > 0 {
		if es, err = db.txListCollect(st, tc, h, key, 0, false, lo, false, nil); err != nil {
			return err
		}
	}
	if hi < tc.n {
		tail, err := db.txListCollect(st, tc, h, key, tc.n-1, true, tc.n-hi, false, nil)
		if err != nil {
			return err
		}
		es = append(es, tail...)
	}
	for i := range es {
		if err := db.txListDel(st, tc, h, key, &es[i]); err != nil {
			return err
		}
	}
	return nil
}

// buildList gives a list read at Open its tree: the records rc holds
// after live, sorted by order key (in file order already when the list
// was only pushed at one end: checked first), the newest of each key
// kept if it is a put, built into full leaves bottom up.
func buildList(c *coll, rc *replayColl) {
	recs := slices.DeleteFunc(rc.recs, func(r elemRec) bool { return r.flen < 8 }) // order keys are at least 8 bytes
	cmpRec := func(a, b *elemRec) int { return bytes.Compare(rc.field(a), rc.field(b)) }
	asc, desc := true, true
	for i := 1; i < len(recs) && (asc || desc); i++ {
		c := cmpRec(&recs[i-1], &recs[i])
		asc = asc && c < 0
		desc = desc && c > 0
	}
	switch {
	case asc:
	case desc:
		slices.Reverse(recs)
	default:
		// Stable: of equal keys, the later in file order wins a tie.
		slices.SortStableFunc(recs, func(a, b elemRec) int { return cmpRec(&a, &b) })
	}
	t := c.l
	items := make([]litem, 0, len(recs))
	for i := 0; i < len(recs); {
		w := i // the newest of the run of equal keys from i
		j := i + 1
		for ; j < len(recs) && cmpRec(&recs[i], &recs[j]) == 0; j++ {
			if recs[j].seq >= recs[w].seq {
				w = j
			}
		}
		if !recs[w].dead {
			l := recs[w].loc()
			l.seq = 0
			items = append(items, t.newItem(rc.field(&recs[w]), l))
		}
		i = j
	}
	t.build(items)
}
