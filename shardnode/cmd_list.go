package shardnode

import (
	"slices"

	"github.com/shardkv/shardkv/resp"
)

// List commands. A list is stored one record per element write (see
// bitcask/list.go); the node reads and writes it through c.st. The pop
// and move logic is in plain functions (popList, moveList, mpopList)
// that a blocking pop calls when it is woken, in the transaction of the
// push that woke it or its own.

const (
	errIndexRange    = "ERR index out of range"
	errRankZero      = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
	errCountNegative = "ERR COUNT can't be negative"
	errMaxLenNeg     = "ERR MAXLEN can't be negative"
	errNumKeys       = "ERR numkeys should be greater than 0"
	errCountPositive = "ERR count should be greater than 0"
)

// listFits checks the size limit for vals pushed to key.
func (c *client) listFits(key []byte, vals [][]byte) bool {
	return c.hashFits(key, vals)
}

func cmdLPush(c *client, args [][]byte)  { c.push(args, true, false) }
func cmdRPush(c *client, args [][]byte)  { c.push(args, false, false) }
func cmdLPushX(c *client, args [][]byte) { c.push(args, true, true) }
func cmdRPushX(c *client, args [][]byte) { c.push(args, false, true) }

func (c *client) push(args [][]byte, left, existing bool) {
	if !c.listFits(args[1], args[2:]) {
		return
	}
	n, err := c.st.lpush(args[1], args[2:], left, existing)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// popList pops up to count elements of the list at key from the head
// (left) or the tail, replying the storage error if there is one (failed).
func (c *client) popList(key []byte, left bool, count int) (vals [][]byte, failed bool) {
	vals, err := c.st.lpop(key, left, count)
	if err != nil {
		c.storeErr(err)
		return nil, true
	}
	return vals, false
}

// parsePositive parses a count Redis reads with
// getPositiveLongFromObjectOrReply: msg for anything but an integer >= 0.
func parsePositive(b []byte) (int64, bool) {
	n, ok := parseInt(b)
	return n, ok && n >= 0
}

// LPOP/RPOP key [count].
func cmdLPop(c *client, args [][]byte) { c.pop(args, true) }
func cmdRPop(c *client, args [][]byte) { c.pop(args, false) }

func (c *client) pop(args [][]byte, left bool) {
	if len(args) > 3 {
		c.arityErr(string(lowerASCII(args[0])))
		return
	}
	count := int64(1)
	if len(args) == 3 {
		var ok bool
		if count, ok = parsePositive(args[2]); !ok {
			c.errReply(errNotPositive)
			return
		}
	}
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	if n == 0 {
		if len(args) == 3 {
			c.nullArray()
		} else {
			c.null()
		}
		return
	}
	if count == 0 {
		c.array(0)
		return
	}
	vals, failed := c.popList(args[1], left, int(min(count, int64(n))))
	if failed {
		return
	}
	if len(args) == 2 {
		c.bulk(vals[0])
		return
	}
	c.bulks(vals)
}

func (c *client) nullArray() { c.out = resp.AppendNullArray(c.out, c.sess.Proto) }

func (c *client) bulks(vs [][]byte) {
	c.array(len(vs))
	for _, v := range vs {
		c.bulk(v)
	}
}

func cmdLLen(c *client, args [][]byte) {
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// listRange resolves Redis's start and stop (inclusive, negative from the
// end) against n into [lo, hi).
func listRange(start, stop int64, n int) (lo, hi int) {
	ln := int64(n)
	if start < 0 {
		start += ln
	}
	if stop < 0 {
		stop += ln
	}
	start = max(start, 0)
	if start > stop || start >= ln {
		return 0, 0
	}
	stop = min(stop, ln-1)
	return int(start), int(stop) + 1
}

// LRANGE key start stop.
func cmdLRange(c *client, args [][]byte) {
	start, ok1 := parseInt(args[2])
	stop, ok2 := parseInt(args[3])
	if !ok1 || !ok2 {
		c.errReply(errNotInteger)
		return
	}
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	lo, hi := listRange(start, stop, n)
	if lo > n-hi {
		// Nearer the tail: walked from there (see lwalk), then replied
		// in order.
		vs := make([][]byte, 0, hi-lo)
		err = c.st.lwalk(args[1], hi-1, true, func(i int, v []byte) bool {
			vs = append(vs, append([]byte{}, v...))
			return i > lo
		})
		if err != nil {
			c.storeErr(err)
			return
		}
		slices.Reverse(vs)
		c.bulks(vs)
		return
	}
	c.array(hi - lo)
	if hi == lo {
		return
	}
	err = c.st.lwalk(args[1], lo, false, func(i int, v []byte) bool {
		c.bulk(v)
		return i+1 < hi
	})
	if err != nil {
		c.srv.storageError(err)
	}
}

// LINDEX key index: the key is looked up before the index is parsed.
func cmdLIndex(c *client, args [][]byte) {
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	if n == 0 {
		c.null()
		return
	}
	i, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		c.null()
		return
	}
	var out []byte
	if err := c.st.lwalk(args[1], int(i), i >= int64(n)/2, func(_ int, v []byte) bool {
		out = append([]byte{}, v...)
		return false
	}); err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(out)
}

// LSET key index element.
func cmdLSet(c *client, args [][]byte) {
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	if n == 0 {
		c.errReply(errNoSuchKey)
		return
	}
	i, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		c.errReply(errIndexRange)
		return
	}
	if !c.listFits(args[1], args[3:4]) {
		return
	}
	if err := c.st.lset(args[1], int(i), args[3]); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// LINSERT key BEFORE|AFTER pivot element.
func cmdLInsert(c *client, args [][]byte) {
	var before bool
	switch {
	case eqFold(args[2], "before"):
		before = true
	case eqFold(args[2], "after"):
	default:
		c.errReply(errSyntax)
		return
	}
	if !c.listFits(args[1], args[4:5]) {
		return
	}
	n, err := c.st.linsert(args[1], before, args[3], args[4])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// LREM key count element.
func cmdLRem(c *client, args [][]byte) {
	count, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if count < -1<<40 || count > 1<<40 {
		// More than any list holds: all of them, from that end.
		count = max(min(count, 1<<40), -1<<40)
	}
	n, err := c.st.lrem(args[1], int(count), args[3])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// LTRIM key start stop.
func cmdLTrim(c *client, args [][]byte) {
	start, ok1 := parseInt(args[2])
	stop, ok2 := parseInt(args[3])
	if !ok1 || !ok2 {
		c.errReply(errNotInteger)
		return
	}
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	if n > 0 {
		lo, hi := listRange(start, stop, n)
		if err := c.st.ltrim(args[1], lo, hi); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.ok()
}

// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
func cmdLPos(c *client, args [][]byte) {
	rank, count, maxlen := int64(1), int64(-1), int64(0)
	for j := 3; j < len(args); j++ {
		more := j+1 < len(args)
		switch {
		case eqFold(args[j], "rank") && more:
			j++
			r, ok := parseInt(args[j])
			if !ok {
				c.errReply(errNotInteger)
				return
			}
			if r == 0 || r == -1<<63 {
				c.errReply(errRankZero)
				return
			}
			rank = r
		case eqFold(args[j], "count") && more:
			j++
			n, ok := parsePositive(args[j])
			if !ok {
				c.errReply(errCountNegative)
				return
			}
			count = n
		case eqFold(args[j], "maxlen") && more:
			j++
			n, ok := parsePositive(args[j])
			if !ok {
				c.errReply(errMaxLenNeg)
				return
			}
			maxlen = n
		default:
			c.errReply(errSyntax)
			return
		}
	}
	rev := rank < 0
	if rev {
		rank = -rank
	}
	n, err := c.st.llen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	if n == 0 {
		if count != -1 {
			c.array(0)
		} else {
			c.null()
		}
		return
	}
	var found []int64
	matches, seen := int64(0), int64(0)
	from := 0
	if rev {
		from = n - 1
	}
	err = c.st.lwalk(args[1], from, rev, func(i int, v []byte) bool {
		if maxlen != 0 && seen >= maxlen {
			return false
		}
		seen++
		if string(v) != string(args[2]) {
			return true
		}
		matches++
		if matches < rank {
			return true
		}
		found = append(found, int64(i))
		return count != -1 && (count == 0 || matches-rank+1 < count)
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	if count == -1 {
		if len(found) == 0 {
			c.null()
		} else {
			c.intReply(found[0])
		}
		return
	}
	c.array(len(found))
	for _, i := range found {
		c.intReply(i)
	}
}

// parseWhere parses LEFT or RIGHT.
func parseWhere(b []byte) (left, ok bool) {
	switch {
	case eqFold(b, "left"):
		return true, true
	case eqFold(b, "right"):
		return false, true
	}
	return false, false
}

// moveList pops an element of src from the head (fromLeft) or tail and
// pushes it on dst's head (toLeft) or tail, as LMOVE does: ok is false
// when src is empty (nothing moved); a storage or type error is replied
// (failed). dst of another type moves nothing.
func (c *client) moveList(src, dst []byte, fromLeft, toLeft bool) (v []byte, ok, failed bool) {
	n, err := c.st.llen(src)
	if err != nil {
		c.storeErr(err)
		return nil, false, true
	}
	if n == 0 {
		return nil, false, false
	}
	if _, err := c.st.llen(dst); err != nil {
		c.storeErr(err)
		return nil, false, true
	}
	vals, failed := c.popList(src, fromLeft, 1)
	if failed || len(vals) == 0 {
		return nil, false, failed
	}
	if _, err := c.st.lpush(dst, vals, toLeft, false); err != nil {
		c.storeErr(err)
		return nil, false, true
	}
	return vals[0], true, false
}

// LMOVE source destination LEFT|RIGHT LEFT|RIGHT.
func cmdLMove(c *client, args [][]byte) {
	from, ok1 := parseWhere(args[3])
	to, ok2 := parseWhere(args[4])
	if !ok1 || !ok2 {
		c.errReply(errSyntax)
		return
	}
	c.move(args[1], args[2], from, to)
}

// RPOPLPUSH source destination.
func cmdRPopLPush(c *client, args [][]byte) { c.move(args[1], args[2], false, true) }

func (c *client) move(src, dst []byte, from, to bool) {
	v, ok, failed := c.moveList(src, dst, from, to)
	switch {
	case failed:
	case !ok:
		c.null()
	default:
		c.bulk(v)
	}
}

// mpopList pops up to count elements from the first non-empty list of
// keys, as LMPOP does: the key and its elements, ok false when every list
// is empty. A key of another type before a non-empty list is WRONGTYPE
// (failed, replied).
func (c *client) mpopList(keys [][]byte, left bool, count int) (key []byte, vals [][]byte, ok, failed bool) {
	for _, k := range keys {
		n, err := c.st.llen(k)
		if err != nil {
			c.storeErr(err)
			return nil, nil, false, true
		}
		if n == 0 {
			continue
		}
		vals, failed := c.popList(k, left, min(count, n))
		if failed {
			return nil, nil, false, true
		}
		return k, vals, true, false
	}
	return nil, nil, false, false
}

// parseMPop parses LMPOP's arguments after the command name (numkeys key
// ... LEFT|RIGHT [COUNT count]), replying Redis's error if they are bad.
func (c *client) parseMPop(args [][]byte) (keys [][]byte, left bool, count int, ok bool) {
	nk, good := parseInt(args[0])
	if !good || nk < 1 {
		c.errReply(errNumKeys)
		return nil, false, 0, false
	}
	if nk >= int64(len(args)) {
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	keys = args[1 : 1+nk]
	left, good = parseWhere(args[1+nk])
	if !good {
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	cnt := int64(-1)
	for j := int(nk) + 2; j < len(args); j++ {
		if cnt == -1 && eqFold(args[j], "count") && j+1 < len(args) {
			j++
			n, good := parseInt(args[j])
			if !good || n < 1 {
				c.errReply(errCountPositive)
				return nil, false, 0, false
			}
			cnt = n
			continue
		}
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	if cnt == -1 {
		cnt = 1
	}
	return keys, left, int(min(cnt, 1<<40)), true
}

// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count].
func cmdLMPop(c *client, args [][]byte) {
	keys, left, count, ok := c.parseMPop(args[1:])
	if !ok {
		return
	}
	key, vals, ok, failed := c.mpopList(keys, left, count)
	switch {
	case failed:
	case !ok:
		c.nullArray()
	default:
		c.mpopReply(key, vals)
	}
}

// mpopReply is LMPOP's reply: the key and its popped elements.
func (c *client) mpopReply(key []byte, vals [][]byte) {
	c.array(2)
	c.bulk(key)
	c.bulks(vals)
}
