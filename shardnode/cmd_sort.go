package shardnode

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/bitcask"
)

// SORT and SORT_RO, as Redis 7.0's sortCommandGeneric: the elements of a
// list, set or sorted set, ordered by their value as a double (or as bytes
// with ALPHA), or by the keys a BY pattern names, with LIMIT, GET patterns
// and (SORT only) STORE into a list. The keys BY and GET name must be on
// this node's shard: which ones they are depends on the elements, so the
// proxy cannot route by them, and one outside the range is refused with
// CROSSSHARD (nothing stored), as Redis Cluster refuses the patterns.

type sortOpts struct {
	desc, alpha, dontsort bool
	by                    []byte // nil: the elements themselves
	gets                  [][]byte
	store                 []byte
	start, count          int64
}

func cmdSort(c *client, args [][]byte)   { c.sort(args, false) }
func cmdSortRO(c *client, args [][]byte) { c.sort(args, true) }

// parseSort reads the options after the key, replying Redis's error.
func (c *client) parseSort(args [][]byte, readonly bool) (o sortOpts, ok bool) {
	o.count = -1
	for j := 2; j < len(args); j++ {
		left := len(args) - j - 1
		switch {
		case eqFold(args[j], "asc"):
			o.desc = false
		case eqFold(args[j], "desc"):
			o.desc = true
		case eqFold(args[j], "alpha"):
			o.alpha = true
		case eqFold(args[j], "limit") && left >= 2:
			s, ok1 := parseInt(args[j+1])
			n, ok2 := parseInt(args[j+2])
			if !ok1 || !ok2 {
				c.errReply(errNotInteger)
				return o, false
			}
			o.start, o.count = s, n
			j += 2
		case !readonly && eqFold(args[j], "store") && left >= 1:
			o.store = args[j+1]
			j++
		case eqFold(args[j], "by") && left >= 1:
			o.by = args[j+1]
			// No '*': nothing to sort by (BY nosort), the elements in
			// their own order.
			o.dontsort = bytes.IndexByte(o.by, '*') < 0
			j++
		case eqFold(args[j], "get") && left >= 1:
			o.gets = append(o.gets, args[j+1])
			j++
		default:
			c.errReply(errSyntax)
			return o, false
		}
	}
	return o, true
}

// sortElem is an element being sorted and what it sorts by.
type sortElem struct {
	v     []byte
	score float64
	cmp   []byte // ALPHA with BY: the value BY names, nil when none
	hasBy bool
}

func (c *client) sort(args [][]byte, readonly bool) {
	o, ok := c.parseSort(args, readonly)
	if !ok {
		return
	}
	key := args[1]
	m, exists := c.st.meta(key)
	if exists && m.Type != bitcask.TypeList && m.Type != bitcask.TypeSet && m.Type != bitcask.TypeZSet {
		c.errReply(errWrongType)
		return
	}
	typ := m.Type
	if !exists {
		typ = bitcask.TypeList
	}
	if o.dontsort && typ == bitcask.TypeSet && o.store != nil {
		// A set has no order of its own: STORE sorts it, as Redis does
		// for the sake of replication.
		o.dontsort, o.alpha, o.by = false, true, nil
	}
	// The elements.
	var n int
	var err error
	switch typ {
	case bitcask.TypeList:
		n, err = c.st.llen(key)
	case bitcask.TypeSet:
		n, err = c.st.scard(key)
	default:
		n, err = c.st.zcard(key)
	}
	if err != nil {
		c.storeErr(err)
		return
	}
	start := max(o.start, 0)
	end := int64(n) - 1
	if o.count >= 0 {
		end = start + o.count - 1
	}
	if start >= int64(n) {
		start, end = int64(n)-1, int64(n)-2
	}
	end = min(end, int64(n)-1)
	var elems []sortElem
	if o.dontsort && (typ == bitcask.TypeList || typ == bitcask.TypeZSet) {
		// The range of the list or set in its own order, from the end
		// when DESC; start and end then index what was read.
		if end >= start {
			vs, ok := c.sortRange(key, typ, int(start), int(end-start+1), o.desc, n)
			if !ok {
				return
			}
			for _, v := range vs {
				elems = append(elems, sortElem{v: v})
			}
		}
		end -= start
		start = 0
	} else {
		vs, ok := c.sortRange(key, typ, 0, n, false, n)
		if !ok {
			return
		}
		for _, v := range vs {
			elems = append(elems, sortElem{v: v})
		}
	}
	if !o.dontsort {
		badScore := false
		for i := range elems {
			e := &elems[i]
			by := e.v
			if o.by != nil {
				v, found, ok := c.sortLookup(o.by, e.v)
				if !ok {
					return
				}
				if !found {
					continue
				}
				by = v
			}
			if o.alpha {
				if o.by != nil {
					e.cmp, e.hasBy = by, true
				}
				continue
			}
			sc, ok := parseSortScore(by)
			if !ok {
				badScore = true
			}
			e.score = sc
		}
		if badScore {
			c.errReply("ERR One or more scores can't be converted into double")
			return
		}
		slices.SortStableFunc(elems, func(a, b sortElem) int { return sortCompare(&a, &b, &o) })
	}
	// The output: the elements, or what GET patterns name for each.
	var out [][]byte
	var isNil []bool
	for j := start; j <= end && j >= 0; j++ {
		e := &elems[j]
		if len(o.gets) == 0 {
			out, isNil = append(out, e.v), append(isNil, false)
			continue
		}
		for _, g := range o.gets {
			v, found, ok := c.sortLookup(g, e.v)
			if !ok {
				return
			}
			out, isNil = append(out, v), append(isNil, !found)
		}
	}
	if o.store == nil {
		c.array(len(out))
		for i, v := range out {
			if isNil[i] {
				c.null()
			} else {
				c.bulk(v)
			}
		}
		return
	}
	if len(out) > 0 && !c.listFits(o.store, out) {
		return
	}
	if _, err := c.st.del(o.store); err != nil {
		c.storeErr(err)
		return
	}
	if len(out) > 0 {
		for i := range out {
			if out[i] == nil {
				out[i] = []byte{}
			}
		}
		if _, err := c.st.lpush(o.store, out, false, false); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.intReply(int64(len(out)))
}

// sortRange reads count elements of key from index from (from the end
// when rev): a list's or sorted set's in their order, a set's in its.
func (c *client) sortRange(key []byte, typ bitcask.Type, from, count int, rev bool, n int) ([][]byte, bool) {
	if count <= 0 || n == 0 {
		return nil, true
	}
	switch typ {
	case bitcask.TypeList:
		var out [][]byte
		at := from
		if rev {
			at = n - 1 - from
		}
		err := c.st.lwalk(key, at, rev, func(_ int, v []byte) bool {
			out = append(out, bytes.Clone(v))
			return len(out) < count
		})
		if err != nil {
			c.storeErr(err)
			return nil, false
		}
		return out, true
	case bitcask.TypeSet:
		ms, err := c.st.smembers(key)
		if err != nil {
			c.storeErr(err)
			return nil, false
		}
		return ms, true
	}
	ms, err := c.st.zrange(key, &bitcask.ZRange{Start: int64(from), Stop: int64(from + count - 1), Rev: rev, Count: -1})
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	out := make([][]byte, len(ms))
	for i := range ms {
		out[i] = ms[i].Member
	}
	return out, true
}

// sortLookup is Redis's lookupKeyByPattern: "#" is the element itself;
// otherwise the first '*' of pattern is replaced by the element, and the
// key named is read as a string, or, with "->field" after the '*', as that
// field of a hash. found is false for a pattern without '*', an absent
// key or field, or a key of another type. A key outside this shard is
// refused with CROSSSHARD (ok false, replied).
func (c *client) sortLookup(pattern, elem []byte) (v []byte, found, ok bool) {
	if string(pattern) == "#" {
		return elem, true, true
	}
	star := bytes.IndexByte(pattern, '*')
	if star < 0 {
		return nil, false, true
	}
	var field []byte
	rest := pattern[star+1:]
	if f := bytes.Index(rest, []byte("->")); f >= 0 && f+2 < len(rest) {
		field = rest[f+2:]
		rest = rest[:f]
	}
	key := make([]byte, 0, star+len(elem)+len(rest))
	key = append(append(append(key, pattern[:star]...), elem...), rest...)
	if a := c.srv.assign.Load(); a != nil && !c.owned(a, key) {
		c.errReply("CROSSSHARD key '" + string(key) + "' named by a SORT pattern is not on shard " + a.Name +
			"; SORT reads other keys only within its key's shard")
		return nil, false, false
	}
	m, exists := c.st.meta(key)
	if !exists {
		return nil, false, true
	}
	if field != nil {
		if m.Type != bitcask.TypeHash {
			return nil, false, true
		}
		v, found, err := c.st.hget(key, field)
		if err != nil {
			c.storeErr(err)
			return nil, false, false
		}
		return v, found, true
	}
	if m.Type != bitcask.TypeString {
		return nil, false, true
	}
	v, _, found, failed := c.get(key)
	return v, found, !failed
}

// parseSortScore reads a value as strtod does for SORT: leading spaces,
// then all of it a number (an empty value is 0); ok is false for
// anything else, NaN, or a number out of range.
func parseSortScore(b []byte) (float64, bool) {
	s := strings.TrimLeft(string(b), " \t\n\v\f\r")
	if s == "" {
		return 0, len(b) == 0 // strtod converts nothing: only "" ends there
	}
	t := strings.TrimLeft(s, "+-")
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") && !strings.ContainsAny(t, "pP") {
		s += "p0"
	}
	if strings.ContainsRune(s, '_') {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return f, false
	}
	return f, true
}

// sortCompare is Redis's sortCompare: by score, ties by the elements'
// bytes; with ALPHA by the bytes of BY's values (none first) or of the
// elements.
func sortCompare(a, b *sortElem, o *sortOpts) int {
	var c int
	switch {
	case !o.alpha:
		switch {
		case a.score > b.score:
			c = 1
		case a.score < b.score:
			c = -1
		default:
			c = bytes.Compare(a.v, b.v)
		}
	case o.by != nil:
		switch {
		case !a.hasBy && !b.hasBy:
			c = 0
		case !a.hasBy:
			c = -1
		case !b.hasBy:
			c = 1
		default:
			c = bytes.Compare(a.cmp, b.cmp)
		}
	default:
		c = bytes.Compare(a.v, b.v)
	}
	if o.desc {
		return -c
	}
	return c
}
