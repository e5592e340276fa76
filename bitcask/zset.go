package bitcask

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Sorted sets. A sorted set is a collection (collection.go) of key type
// keyTypeZSet: a root record and one element record per member write,
// the element put's value being the member's score as 8 bytes (the
// float64's bits, little endian). The key directory keeps, beside the
// element map (member -> its newest record), an ordered index of
// (score, member) (zindex.go) for ranks and ranges; the element map and
// the index share each member's string. A score is read from disk for a
// point lookup (ZSCORE) and kept in the index for ordering.

// ZMember is a member of a sorted set and its score.
type ZMember struct {
	Member []byte
	Score  float64
}

// ZBy says what a ZRange's bounds are.
type ZBy uint8

const (
	ZByRank  ZBy = iota // Start and Stop, Redis's indexes
	ZByScore            // Min and Max scores
	ZByLex              // Min and Max members (all scores equal, as Redis assumes)
)

// ZBound is one end of a score or lex range.
type ZBound struct {
	Score float64 // ZByScore (may be infinite)
	Lex   []byte  // ZByLex
	Inf   int8    // ZByLex: -1 for "-", +1 for "+", 0 for Lex
	Excl  bool    // the bound itself is out of the range
}

// ZRange selects members of a sorted set, as ZRANGE does.
type ZRange struct {
	By          ZBy
	Start, Stop int64  // ZByRank: inclusive, negative counts from the end; with Rev, from the highest
	Min, Max    ZBound // ZByScore, ZByLex: the low and the high end
	Rev         bool   // highest first
	// Offset and Count are LIMIT's (Count < 0: no limit).
	Offset, Count int64
}

func encodeScore(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// decodeScore reads a score from an element's logical value (readElem's
// form, which gives back the 8 bytes even when the record stored them as
// an integer).
func decodeScore(v []byte) (float64, error) {
	if len(v) != intValueSize {
		return 0, ErrCorrupt
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(v)), nil
}

// scoreBits returns the score's bits an element put record of a sorted
// set holds, given its value as stored (nil: not read).
func scoreBits(h *header, stored []byte) (uint64, bool) {
	if h.kind != kindElemPut || h.keyType != keyTypeZSet || len(stored) != intValueSize {
		return 0, false
	}
	if h.valType == valTypeInt {
		// The score's 8 bytes happened to read as a decimal integer.
		var buf [24]byte
		v := strconv.AppendInt(buf[:0], int64(binary.LittleEndian.Uint64(stored)), 10)
		if len(v) != intValueSize {
			return 0, false
		}
		return binary.LittleEndian.Uint64(v), true
	}
	return binary.LittleEndian.Uint64(stored), true
}

func (db *DB) scoreAt(key, member []byte, l *elemLoc) (float64, error) {
	var buf [24]byte
	v, err := db.readElem(buf[:0], key, member, l)
	if err != nil {
		return 0, err
	}
	return decodeScore(v)
}

// zindexApply updates c's ordered index for an element put (l) or
// tombstone of member, before the element map takes it, and returns the
// member string the index holds for the map to share. Caller holds
// writeMu and the shard's lock.
func (db *DB) zindexApply(c *coll, key, member []byte, l *elemLoc) string {
	var mk string
	if old, ok := c.lookup(member); ok {
		var it zitem
		var found bool
		if sc, err := db.scoreAt(key, member, &old); err == nil {
			it, found = c.z.remove(zitem{sc, string(member)})
		}
		if !found {
			it, found = c.z.removeMember(string(member))
		}
		if found {
			mk = it.member
		}
	}
	if l == nil {
		return ""
	}
	sc, err := db.scoreAt(key, member, l)
	if err != nil {
		db.log.Error("reading the score just written failed", "error", err)
	}
	if mk == "" {
		mk = string(member)
	}
	c.z.insert(zitem{sc, mk})
	return mk
}

// zindexBuild gives a sorted set read at Open its ordered index: each
// member's score as replay found it (from the record or its hint) or
// else from its record, sorted, built bottom up. c's members are rc's
// records, in order (zmembers.build).
func (db *DB) zindexBuild(c *coll, key []byte, rc *replayColl) {
	items := make([]zitem, 0, c.count())
	for i := range rc.recs {
		r := &rc.recs[i]
		m := c.zm.member(uint32(i))
		sc := math.Float64frombits(r.score)
		if !r.hasScore {
			l := r.loc()
			var err error
			if sc, err = db.scoreAt(key, []byte(m), &l); err != nil {
				db.log.Error("reading a sorted set member's score at open failed", "error", err)
			}
		}
		items = append(items, zitem{sc, m})
	}
	slices.SortFunc(items, func(a, b zitem) int { return zcmp(&a, &b) })
	c.z = &zindex{}
	c.z.build(items)
}

// span returns the ranks [lo, hi) of the members q selects, before its
// LIMIT.
func (z *zindex) span(q *ZRange) (lo, hi int) { return zspan(z, q) }

// zspan is span over any view of a set.
func zspan(z zview, q *ZRange) (lo, hi int) {
	n := z.len()
	switch q.By {
	case ZByRank:
		start, stop := q.Start, q.Stop
		if start < 0 {
			start += int64(n)
		}
		if stop < 0 {
			stop += int64(n)
		}
		start = max(start, 0)
		if start > stop || start >= int64(n) {
			return 0, 0
		}
		stop = min(stop, int64(n)-1)
		if q.Rev {
			return n - 1 - int(stop), n - int(start)
		}
		return int(start), int(stop) + 1
	case ZByScore:
		lo = z.rankWhere(func(x *zitem) bool { return x.score < q.Min.Score || q.Min.Excl && x.score == q.Min.Score })
		hi = z.rankWhere(func(x *zitem) bool { return x.score < q.Max.Score || !q.Max.Excl && x.score == q.Max.Score })
	default:
		if n <= zlinearLex {
			return lexSpanLinear(z, q)
		}
		lo = lexRank(z, &q.Min, true)
		hi = lexRank(z, &q.Max, false)
	}
	return lo, max(lo, hi)
}

// zlinearLex is the size up to which a lex range is found by walking the
// set, as Redis walks a small (listpack) set: where members are not in
// lex order (scores differ) the result is then Redis's.
const zlinearLex = 128

func lexGteMin(m string, b *ZBound) bool {
	switch b.Inf {
	case -1:
		return true
	case 1:
		return false
	}
	c := strings.Compare(m, string(b.Lex))
	return c > 0 || !b.Excl && c == 0
}

func lexLteMax(m string, b *ZBound) bool {
	switch b.Inf {
	case -1:
		return false
	case 1:
		return true
	}
	c := strings.Compare(m, string(b.Lex))
	return c < 0 || !b.Excl && c == 0
}

// lexSpanLinear is span for a lex range by walking: from the first
// member not below min forward while not above max (from the last member
// not above max backward, for Rev).
func lexSpanLinear(z zview, q *ZRange) (lo, hi int) {
	var ms []string
	z.walkUp(0, func(it *zitem) bool { ms = append(ms, it.member); return true })
	if len(ms) == 0 || !lexGteMin(ms[len(ms)-1], &q.Min) || !lexLteMax(ms[0], &q.Max) {
		return 0, 0
	}
	if q.Rev {
		hi = len(ms)
		for hi > 0 && !lexLteMax(ms[hi-1], &q.Max) {
			hi--
		}
		lo = hi
		for lo > 0 && lexGteMin(ms[lo-1], &q.Min) {
			lo--
		}
		return lo, hi
	}
	for lo < len(ms) && !lexGteMin(ms[lo], &q.Min) {
		lo++
	}
	hi = lo
	for hi < len(ms) && lexLteMax(ms[hi], &q.Max) {
		hi++
	}
	return lo, hi
}

// lexRank is the rank where a lex bound starts (low) or ends the range.
func lexRank(z zview, b *ZBound, low bool) int {
	switch b.Inf {
	case -1:
		return 0
	case 1:
		return z.len()
	}
	excl := b.Excl == low // low exclusive or high inclusive: members equal to the bound come before
	return z.rankWhere(func(x *zitem) bool {
		c := bytes.Compare([]byte(x.member), b.Lex)
		return c < 0 || excl && c == 0
	})
}

// collect returns the members q selects.
func (z *zindex) collect(q *ZRange) []ZMember { return zcollect(z, q) }

// zcollect is collect over any view of a set.
func zcollect(z zview, q *ZRange) []ZMember {
	lo, hi := zspan(z, q)
	if q.By != ZByRank {
		off := q.Offset
		if off >= int64(hi-lo) {
			return nil
		}
		if q.Rev {
			hi -= int(off)
		} else {
			lo += int(off)
		}
		if q.Count >= 0 && q.Count < int64(hi-lo) {
			if q.Rev {
				lo = hi - int(q.Count)
			} else {
				hi = lo + int(q.Count)
			}
		}
	}
	if lo >= hi {
		return nil
	}
	// Walked up from lo and reversed for Rev: a view walks one way.
	out := make([]ZMember, 0, hi-lo)
	z.walkUp(lo, func(it *zitem) bool {
		out = append(out, ZMember{Member: []byte(it.member), Score: it.score})
		return len(out) < hi-lo
	})
	if q.Rev {
		slices.Reverse(out)
	}
	return out
}

var emptyZindex = &zindex{}

// zsetView calls fn with the ordered index of the sorted set at key under
// its shard's read lock; ErrNotFound when absent.
func (db *DB) zsetView(h uint64, key []byte, now int64, fn func(c *coll) error) error {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, TypeZSet, now)
	if err != nil {
		return err
	}
	return fn(c)
}

// ZSetCard returns the number of members of the sorted set at key.
func (db *DB) ZSetCard(h uint64, key []byte, now int64) (n int, err error) {
	err = db.zsetView(h, key, now, func(c *coll) error { n = c.count(); return nil })
	return n, err
}

// ZSetScore returns member's score in the sorted set at key; ok is false
// when the key or the member is absent.
func (db *DB) ZSetScore(h uint64, key, member []byte, now int64) (score float64, ok bool, err error) {
	err = db.zsetView(h, key, now, func(c *coll) error {
		l, had := c.lookup(member)
		if !had {
			return nil
		}
		score, err = db.scoreAt(key, member, &l)
		ok = err == nil
		return err
	})
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return score, ok, err
}

// ZSetRank returns member's rank (lowest score first) and score.
func (db *DB) ZSetRank(h uint64, key, member []byte, now int64) (rank int, score float64, ok bool, err error) {
	err = db.zsetView(h, key, now, func(c *coll) error {
		l, had := c.lookup(member)
		if !had {
			return nil
		}
		if score, err = db.scoreAt(key, member, &l); err != nil {
			return err
		}
		rank, ok = c.z.rank(zitem{score, string(member)}), true
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return rank, score, ok, err
}

// ZSetRange returns the members q selects from the sorted set at key.
func (db *DB) ZSetRange(h uint64, key []byte, q *ZRange, now int64) (out []ZMember, err error) {
	err = db.zsetView(h, key, now, func(c *coll) error { out = c.z.collect(q); return nil })
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return out, err
}

// ZSetCount returns the number of members in q's range (its LIMIT aside).
func (db *DB) ZSetCount(h uint64, key []byte, q *ZRange, now int64) (n int, err error) {
	err = db.zsetView(h, key, now, func(c *coll) error {
		lo, hi := c.z.span(q)
		n = hi - lo
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return n, err
}

// txZView calls fn with the sorted set at key as the Tx sees it: the key
// directory's index while the Tx has not written the set; once it has,
// an overlay of the key directory's index with the Tx's writes (made on
// first need from the members the Tx wrote, then kept up to date by its
// later writes), so that a Tx that pops or adds a few members of a big
// set pays for those, not for a copy of the set. A Tx that wrote many
// members gets its own copy instead (zoverlay.full); so does a set the Tx
// made or rewrote (no key directory's index under it).
func (db *DB) txZView(st *txState, tc *txColl, h uint64, key []byte, fn func(z zview)) error {
	if tc.z != nil {
		fn(tc.z)
		return nil
	}
	if tc.zo != nil {
		fn(tc.zo)
		return nil
	}
	if tc.base && len(tc.elems) == 0 {
		s := db.kd.shardFor(h)
		s.mu.RLock()
		defer s.mu.RUnlock()
		if c := s.colls[string(key)]; c != nil && c.z != nil {
			fn(c.z)
		} else {
			fn(emptyZindex)
		}
		return nil
	}
	var o *zoverlay
	if tc.base {
		// The key directory's index does not change under the Tx: only a
		// writer holding writeMu changes it, and the Tx's writer holds it.
		s := db.kd.shardFor(h)
		s.mu.RLock()
		c := s.colls[string(key)]
		if c != nil && c.z != nil {
			o = newZoverlay(c.z)
		} else {
			o = newZoverlay(emptyZindex)
		}
		for m := range tc.elems {
			if c == nil {
				break
			}
			if l, ok := c.lookup([]byte(m)); ok {
				sc, err := db.scoreAt(key, []byte(m), &l)
				if err != nil {
					s.mu.RUnlock()
					return err
				}
				o.remove(zitem{sc, m})
			}
		}
		s.mu.RUnlock()
	} else {
		o = newZoverlay(emptyZindex)
	}
	for m := range tc.elems {
		v, ok, err := db.txElem(st, tc, h, key, []byte(m))
		if err != nil {
			return err
		}
		if ok {
			sc, err := decodeScore(v)
			if err != nil {
				return err
			}
			o.insert(zitem{sc, m})
		}
	}
	tc.setZView(o)
	if tc.z != nil {
		fn(tc.z)
	} else {
		fn(tc.zo)
	}
	return nil
}

// setZView keeps o as the Tx's view of its sorted set, or o's own copy
// once o has grown past what an overlay is cheap for.
func (tc *txColl) setZView(o *zoverlay) {
	if o.base.len() == 0 || o.changes() > zoverlayMax {
		tc.z, tc.zo = o.full(), nil
		return
	}
	tc.zo = o
}

// zviewRemove and zviewInsert apply a write of the Tx to its view of the
// set, when it has one.
func (tc *txColl) zviewRemove(it zitem) {
	switch {
	case tc.z != nil:
		tc.z.remove(it)
	case tc.zo != nil:
		tc.zo.remove(it)
	}
}

func (tc *txColl) zviewInsert(it zitem) {
	switch {
	case tc.z != nil:
		tc.z.insert(it)
	case tc.zo != nil:
		tc.zo.insert(it)
		if tc.zo.changes() > zoverlayMax {
			tc.setZView(tc.zo)
		}
	}
}

func (tx *Tx) zcoll(key []byte) (*txColl, uint64, error) {
	if tx.isDone() {
		return nil, 0, ErrTxDone
	}
	h := xxhash.Sum64(key)
	tc, err := tx.db.txCollOf(tx.st, h, key, TypeZSet)
	return tc, h, err
}

// ZSetCard returns the number of members of the sorted set at key (0
// when absent).
func (tx *Tx) ZSetCard(key []byte) (int, error) {
	tc, _, err := tx.zcoll(key)
	if tc == nil || err != nil {
		return 0, err
	}
	return tc.n, nil
}

// ZSetScore returns member's score as the Tx sees it.
func (tx *Tx) ZSetScore(key, member []byte) (float64, bool, error) {
	tc, h, err := tx.zcoll(key)
	if tc == nil || err != nil {
		return 0, false, err
	}
	v, ok, err := tx.db.txElem(tx.st, tc, h, key, member)
	if !ok || err != nil {
		return 0, false, err
	}
	sc, err := decodeScore(v)
	return sc, err == nil, err
}

// ZSetAdd sets member's score in the sorted set at key, making the set if
// key is absent (ErrWrongType if it holds another type), and reports
// whether the member is new. It writes one record (two for a new set).
func (tx *Tx) ZSetAdd(key, member []byte, score float64) (created bool, err error) {
	var b [8]byte
	old, had, tc, err := tx.elemSet(key, member, encodeScore(b[:0], score), TypeZSet)
	if err != nil {
		return false, err
	}
	if had {
		if sc, err := decodeScore(old); err == nil {
			tc.zviewRemove(zitem{sc, string(member)})
		}
	}
	tc.zviewInsert(zitem{score, string(member)})
	return !had, nil
}

// ZSetRemove removes member from the sorted set at key and reports
// whether it was there; removing the last member deletes the key.
func (tx *Tx) ZSetRemove(key, member []byte) (bool, error) {
	old, had, tc, err := tx.elemDelete(key, member, TypeZSet)
	if had && err == nil {
		if sc, err := decodeScore(old); err == nil {
			tc.zviewRemove(zitem{sc, string(member)})
		}
	}
	return had, err
}

// ZSetRank returns member's rank (lowest score first) and score as the
// Tx sees them.
func (tx *Tx) ZSetRank(key, member []byte) (rank int, score float64, ok bool, err error) {
	tc, h, err := tx.zcoll(key)
	if tc == nil || err != nil {
		return 0, 0, false, err
	}
	score, ok, err = tx.ZSetScore(key, member)
	if !ok || err != nil {
		return 0, 0, false, err
	}
	err = tx.db.txZView(tx.st, tc, h, key, func(z zview) { rank = zrank(z, zitem{score, string(member)}) })
	return rank, score, err == nil, err
}

// ZSetRange returns the members q selects as the Tx sees them.
func (tx *Tx) ZSetRange(key []byte, q *ZRange) (out []ZMember, err error) {
	tc, h, err := tx.zcoll(key)
	if tc == nil || err != nil {
		return nil, err
	}
	err = tx.db.txZView(tx.st, tc, h, key, func(z zview) { out = zcollect(z, q) })
	return out, err
}

// ZSetCount returns the number of members in q's range (its LIMIT aside)
// as the Tx sees them.
func (tx *Tx) ZSetCount(key []byte, q *ZRange) (n int, err error) {
	tc, h, err := tx.zcoll(key)
	if tc == nil || err != nil {
		return 0, err
	}
	err = tx.db.txZView(tx.st, tc, h, key, func(z zview) {
		lo, hi := zspan(z, q)
		n = hi - lo
	})
	return n, err
}
