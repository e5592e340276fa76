package shardnode

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/internal/zsetalg"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// Sorted-set commands. A sorted set is stored one record per member write
// (bitcask/zset.go), its members ordered by (score, member) in the key
// directory; the node reads and writes it through c.st. Replies follow
// Redis 7.0: scores as "%.17g" bulk strings in RESP2 and doubles in RESP3,
// WITHSCORES pairs nested in RESP3.

const (
	errZNaN       = "ERR resulting score is not a number (NaN)"
	errMinMax     = "ERR min or max is not a float"
	errLexRange   = "ERR min or max not valid string range item"
	errPositive   = "ERR value is out of range, must be positive"
	errZLimitRank = "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
	errZLexScores = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
)

var zsetHandlers = map[string]handlerFunc{
	"zadd": cmdZAdd, "zincrby": cmdZIncrBy, "zrem": cmdZRem, "zscore": cmdZScore, "zmscore": cmdZMScore,
	"zcard": cmdZCard, "zcount": cmdZCount, "zlexcount": cmdZLexCount,
	"zrange": cmdZRange, "zrangebyscore": cmdZRange, "zrevrangebyscore": cmdZRange,
	"zrangebylex": cmdZRange, "zrevrangebylex": cmdZRange, "zrevrange": cmdZRange,
	"zrangestore": cmdZRangeStore, "zrank": cmdZRank, "zrevrank": cmdZRank,
	"zpopmin": cmdZPop, "zpopmax": cmdZPop, "zmpop": cmdZMPop,
	"bzpopmin": cmdBZPop, "bzpopmax": cmdBZPop, "bzmpop": cmdBZMPop, "zrandmember": cmdZRandMember,
	"zremrangebyscore": cmdZRemRange, "zremrangebyrank": cmdZRemRange, "zremrangebylex": cmdZRemRange,
	"zunion": cmdZSetOp, "zinter": cmdZSetOp, "zdiff": cmdZSetOp,
	"zunionstore": cmdZSetOp, "zinterstore": cmdZSetOp, "zdiffstore": cmdZSetOp,
	"zintercard": cmdZSetOp, "zscan": cmdZScan,
}

func (c *client) score(f float64) { c.out = resp.AppendDouble(c.out, c.sess.Proto, f) }

// zreply replies members, with their scores as pairs (nested in RESP3)
// when withScores.
func (c *client) zreply(ms []bitcask.ZMember, withScores bool) {
	switch {
	case !withScores:
		c.array(len(ms))
		for _, m := range ms {
			c.bulk(m.Member)
		}
	case c.sess.Proto == 3:
		c.array(len(ms))
		for _, m := range ms {
			c.array(2)
			c.bulk(m.Member)
			c.score(m.Score)
		}
	default:
		c.array(2 * len(ms))
		for _, m := range ms {
			c.bulk(m.Member)
			c.score(m.Score)
		}
	}
}

// zaddFlags are ZADD's options.
type zaddFlags struct{ nx, xx, gt, lt, ch, incr bool }

// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
func cmdZAdd(c *client, args [][]byte) {
	var f zaddFlags
	i := 2
	for ; i < len(args); i++ {
		switch a := args[i]; {
		case eqFold(a, "nx"):
			f.nx = true
		case eqFold(a, "xx"):
			f.xx = true
		case eqFold(a, "gt"):
			f.gt = true
		case eqFold(a, "lt"):
			f.lt = true
		case eqFold(a, "ch"):
			f.ch = true
		case eqFold(a, "incr"):
			f.incr = true
		default:
			goto pairs
		}
	}
pairs:
	n := len(args) - i
	switch {
	case n == 0 || n%2 != 0:
		c.errReply(errSyntax)
		return
	case f.nx && f.xx:
		c.errReply("ERR XX and NX options at the same time are not compatible")
		return
	case f.gt && f.nx || f.lt && f.nx || f.gt && f.lt:
		c.errReply("ERR GT, LT, and/or NX options at the same time are not compatible")
		return
	case f.incr && n > 2:
		c.errReply("ERR INCR option supports a single increment-element pair")
		return
	}
	scores := make([]float64, 0, n/2)
	for j := i; j < len(args); j += 2 {
		s, ok := zsetalg.ParseFloat(args[j])
		if !ok {
			c.errReply(errNotFloat)
			return
		}
		scores = append(scores, s)
	}
	c.zadd(args[1], args[i:], scores, f)
}

// zadd runs ZADD's (and ZINCRBY's) updates and replies.
func (c *client) zadd(key []byte, pairs [][]byte, scores []float64, f zaddFlags) {
	card, err := c.st.zcard(key)
	if err != nil {
		c.storeErr(err)
		return
	}
	if card == 0 && f.xx {
		c.zaddReply(f, 0, 0, false, 0)
		return
	}
	if !c.zsetFits(key, pairs) {
		return
	}
	var added, updated int64
	processed := false
	var last float64
	for k, score := range scores {
		member := pairs[2*k+1]
		cur, exists, err := c.st.zscore(key, member)
		if err != nil {
			c.storeErr(err)
			return
		}
		if exists {
			if f.nx {
				continue
			}
			if f.incr {
				score += cur
				if math.IsNaN(score) {
					c.errReply(errZNaN)
					return
				}
			}
			if f.lt && score >= cur || f.gt && score <= cur {
				continue
			}
			processed, last = true, score
			if score != cur {
				if _, err := c.st.zadd(key, member, score); err != nil {
					c.storeErr(err)
					return
				}
				updated++
			}
			continue
		}
		if f.xx {
			continue
		}
		if _, err := c.st.zadd(key, member, score); err != nil {
			c.storeErr(err)
			return
		}
		added++
		processed, last = true, score
	}
	c.zaddReply(f, added, updated, processed, last)
}

func (c *client) zaddReply(f zaddFlags, added, updated int64, processed bool, last float64) {
	switch {
	case f.incr && processed:
		c.score(last)
	case f.incr:
		c.null()
	case f.ch:
		c.intReply(added + updated)
	default:
		c.intReply(added)
	}
}

// zsetFits is the size limit's check for adding members (a score is 8
// bytes on disk).
func (c *client) zsetFits(key []byte, pairs [][]byte) bool {
	if !c.limited() {
		return true
	}
	n := int64(len(key))
	for j := 1; j < len(pairs); j += 2 {
		n += int64(len(pairs[j])) + 8
	}
	return c.fits(0, n)
}

// ZINCRBY key increment member
func cmdZIncrBy(c *client, args [][]byte) {
	by, ok := zsetalg.ParseFloat(args[2])
	if !ok {
		c.errReply(errNotFloat)
		return
	}
	c.zadd(args[1], args[2:4], []float64{by}, zaddFlags{incr: true})
}

func cmdZRem(c *client, args [][]byte) {
	var n int64
	for _, m := range args[2:] {
		ok, err := c.st.zrem(args[1], m)
		if err != nil {
			c.storeErr(err)
			return
		}
		if ok {
			n++
		}
	}
	c.intReply(n)
}

func cmdZScore(c *client, args [][]byte) {
	s, ok, err := c.st.zscore(args[1], args[2])
	switch {
	case err != nil:
		c.storeErr(err)
	case ok:
		c.score(s)
	default:
		c.null()
	}
}

func cmdZMScore(c *client, args [][]byte) {
	if _, err := c.st.zcard(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	c.array(len(args) - 2)
	for _, m := range args[2:] {
		s, ok, err := c.st.zscore(args[1], m)
		if err != nil {
			c.srv.storageError(err)
			ok = false
		}
		if ok {
			c.score(s)
		} else {
			c.null()
		}
	}
}

func cmdZCard(c *client, args [][]byte) {
	n, err := c.st.zcard(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// parseScoreBound reads a ZRANGEBYSCORE bound: a float, "(" before it
// for an exclusive one.
func parseScoreBound(b []byte) (bitcask.ZBound, bool) {
	var z bitcask.ZBound
	if len(b) > 0 && b[0] == '(' {
		z.Excl, b = true, b[1:]
	}
	f, ok := zsetalg.ParseFloat(b)
	z.Score = f
	return z, ok
}

// parseLexBound reads a ZRANGEBYLEX bound: "-", "+", or "[" / "(" before
// a member.
func parseLexBound(b []byte) (bitcask.ZBound, bool) {
	switch {
	case len(b) == 1 && b[0] == '-':
		return bitcask.ZBound{Inf: -1}, true
	case len(b) == 1 && b[0] == '+':
		return bitcask.ZBound{Inf: 1}, true
	case len(b) > 0 && b[0] == '[':
		return bitcask.ZBound{Lex: b[1:]}, true
	case len(b) > 0 && b[0] == '(':
		return bitcask.ZBound{Lex: b[1:], Excl: true}, true
	}
	return bitcask.ZBound{}, false
}

// parseRangeBounds reads min and max of a score (or lex) range, replying
// Redis's error if one is not valid.
func (c *client) parseRangeBounds(q *bitcask.ZRange, min, max []byte) bool {
	var ok1, ok2 bool
	if q.By == bitcask.ZByLex {
		q.Min, ok1 = parseLexBound(min)
		q.Max, ok2 = parseLexBound(max)
		if !ok1 || !ok2 {
			c.errReply(errLexRange)
			return false
		}
		return true
	}
	q.Min, ok1 = parseScoreBound(min)
	q.Max, ok2 = parseScoreBound(max)
	if !ok1 || !ok2 {
		c.errReply(errMinMax)
		return false
	}
	return true
}

func cmdZCount(c *client, args [][]byte) {
	q := bitcask.ZRange{By: bitcask.ZByScore}
	if c.parseRangeBounds(&q, args[2], args[3]) {
		c.zcountReply(args[1], &q)
	}
}

func cmdZLexCount(c *client, args [][]byte) {
	q := bitcask.ZRange{By: bitcask.ZByLex}
	if c.parseRangeBounds(&q, args[2], args[3]) {
		c.zcountReply(args[1], &q)
	}
}

func (c *client) zcountReply(key []byte, q *bitcask.ZRange) {
	n, err := c.st.zcount(key, q)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// zrangeArgs parses the arguments of the ZRANGE family from args[start]
// (the range's first bound) on, as Redis's zrangeGenericCommand: by and
// rev are the command's own (ZRANGEBYSCORE, ZREVRANGE, ...), auto for
// ZRANGE and ZRANGESTORE, which read BYSCORE, BYLEX and REV.
func (c *client) zrangeArgs(args [][]byte, start int, by bitcask.ZBy, rev, auto, store bool) (q bitcask.ZRange, withScores, ok bool) {
	q.By, q.Rev, q.Count = by, rev, -1
	byGiven, revGiven, limit := !auto, !auto, false
	for j := start + 2; j < len(args); j++ {
		left := len(args) - j - 1
		switch a := args[j]; {
		case !store && eqFold(a, "withscores"):
			withScores = true
		case eqFold(a, "limit") && left >= 2:
			off, ok1 := parseInt(args[j+1])
			cnt, ok2 := parseInt(args[j+2])
			if !ok1 || !ok2 {
				c.errReply(errNotInteger)
				return q, false, false
			}
			q.Offset, q.Count, limit = off, cnt, true
			j += 2
		case !revGiven && eqFold(a, "rev"):
			q.Rev, revGiven = true, true
		case !byGiven && eqFold(a, "bylex"):
			q.By, byGiven = bitcask.ZByLex, true
		case !byGiven && eqFold(a, "byscore"):
			q.By, byGiven = bitcask.ZByScore, true
		default:
			c.errReply(errSyntax)
			return q, false, false
		}
	}
	if limit && q.By == bitcask.ZByRank {
		c.errReply(errZLimitRank)
		return q, false, false
	}
	if withScores && q.By == bitcask.ZByLex {
		c.errReply(errZLexScores)
		return q, false, false
	}
	lo, hi := args[start], args[start+1]
	if q.Rev && q.By != bitcask.ZByRank {
		lo, hi = hi, lo // given as max min
	}
	if q.By == bitcask.ZByRank {
		s, ok1 := parseInt(lo)
		e, ok2 := parseInt(hi)
		if !ok1 || !ok2 {
			c.errReply(errNotInteger)
			return q, false, false
		}
		q.Start, q.Stop = s, e
		return q, withScores, true
	}
	return q, withScores, c.parseRangeBounds(&q, lo, hi)
}

// zrangeOf returns what q selects at key; a negative LIMIT offset selects
// nothing, as in Redis.
func (c *client) zrangeOf(key []byte, q *bitcask.ZRange) ([]bitcask.ZMember, bool) {
	if q.By != bitcask.ZByRank && q.Offset < 0 {
		if _, err := c.st.zcard(key); err != nil {
			c.storeErr(err)
			return nil, false
		}
		return nil, true
	}
	ms, err := c.st.zrange(key, q)
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	return ms, true
}

func cmdZRange(c *client, args [][]byte) {
	by, rev, auto := bitcask.ZByRank, false, false
	switch name := args[0]; {
	case eqFold(name, "zrange"):
		auto = true
	case eqFold(name, "zrangebyscore"):
		by = bitcask.ZByScore
	case eqFold(name, "zrevrangebyscore"):
		by, rev = bitcask.ZByScore, true
	case eqFold(name, "zrangebylex"):
		by = bitcask.ZByLex
	case eqFold(name, "zrevrangebylex"):
		by, rev = bitcask.ZByLex, true
	case eqFold(name, "zrevrange"):
		rev = true
	}
	q, withScores, ok := c.zrangeArgs(args, 2, by, rev, auto, false)
	if !ok {
		return
	}
	ms, ok := c.zrangeOf(args[1], &q)
	if ok {
		c.zreply(ms, withScores)
	}
}

// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
func cmdZRangeStore(c *client, args [][]byte) {
	q, _, ok := c.zrangeArgs(args, 3, bitcask.ZByRank, false, true, true)
	if !ok {
		return
	}
	ms, ok := c.zrangeOf(args[2], &q)
	if ok && c.zstore(args[1], ms) {
		c.intReply(int64(len(ms)))
	}
}

// zstore replaces dst with a sorted set of ms (deletes it when ms is
// empty).
func (c *client) zstore(dst []byte, ms []bitcask.ZMember) bool {
	if c.limited() {
		n := int64(len(dst))
		for _, m := range ms {
			n += int64(len(m.Member)) + 8
		}
		if !c.fits(0, n) {
			return false
		}
	}
	if _, err := c.st.del(dst); err != nil {
		c.storeErr(err)
		return false
	}
	for _, m := range ms {
		if _, err := c.st.zadd(dst, m.Member, m.Score); err != nil {
			c.storeErr(err)
			return false
		}
	}
	return true
}

func cmdZRank(c *client, args [][]byte) {
	r, _, ok, err := c.st.zrank(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	if !ok {
		c.null()
		return
	}
	if eqFold(args[0], "zrevrank") {
		n, err := c.st.zcard(args[1])
		if err != nil {
			c.storeErr(err)
			return
		}
		r = n - 1 - r
	}
	c.intReply(int64(r))
}

// zpop removes and returns up to count members of key from the lowest
// (or highest, max) score.
func (c *client) zpop(key []byte, count int64, max bool) ([]bitcask.ZMember, bool) {
	if count <= 0 {
		if _, err := c.st.zcard(key); err != nil {
			c.storeErr(err)
			return nil, false
		}
		return nil, true
	}
	ms, err := c.st.zrange(key, &bitcask.ZRange{Start: 0, Stop: count - 1, Rev: max, Count: -1})
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	for _, m := range ms {
		if _, err := c.st.zrem(key, m.Member); err != nil {
			c.storeErr(err)
			return nil, false
		}
	}
	return ms, true
}

// ZPOPMIN key [count]: without count a flat [member, score]; with it,
// pairs nested in RESP3.
func cmdZPop(c *client, args [][]byte) {
	if len(args) > 3 {
		c.errReply(errSyntax)
		return
	}
	count := int64(1)
	if len(args) == 3 {
		n, ok := parseInt(args[2])
		if !ok || n < 0 {
			c.errReply(errPositive)
			return
		}
		count = n
	}
	ms, ok := c.zpop(args[1], count, eqFold(args[0], "zpopmax"))
	if !ok {
		return
	}
	if len(args) == 3 {
		c.zreply(ms, true)
		return
	}
	c.array(2 * len(ms))
	for _, m := range ms {
		c.bulk(m.Member)
		c.score(m.Score)
	}
}

// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: the first non-empty
// set's popped members, [key, [[member, score] ...]].
func cmdZMPop(c *client, args [][]byte) {
	keys, max, count, ok := c.parseZMPop(args[1:])
	if !ok {
		return
	}
	for _, key := range keys {
		card, err := c.st.zcard(key)
		if err != nil {
			c.storeErr(err)
			return
		}
		if card == 0 {
			continue
		}
		if ms, ok := c.zpop(key, count, max); ok {
			c.zmpopReply(key, ms)
		}
		return
	}
	c.out = resp.AppendNullArray(c.out, c.sess.Proto)
}

// parseZMPop parses ZMPOP's arguments after the command name (BZMPOP's
// after its timeout): numkeys key [key ...] MIN|MAX [COUNT count],
// replying Redis's error when they are bad.
func (c *client) parseZMPop(args [][]byte) (keys [][]byte, max bool, count int64, ok bool) {
	n, ok := parseInt(args[0])
	if !ok || n <= 0 {
		c.errReply("ERR numkeys should be greater than 0")
		return nil, false, 0, false
	}
	where := 1 + n
	if where >= int64(len(args)) {
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	switch w := args[where]; {
	case eqFold(w, "min"):
	case eqFold(w, "max"):
		max = true
	default:
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	count, countGiven := int64(1), false
	for j := where + 1; j < int64(len(args)); j++ {
		if !countGiven && eqFold(args[j], "count") && j+1 < int64(len(args)) {
			countGiven = true
			v, ok := parseInt(args[j+1])
			if !ok || v <= 0 {
				c.errReply("ERR count should be greater than 0")
				return nil, false, 0, false
			}
			count = v
			j++
			continue
		}
		c.errReply(errSyntax)
		return nil, false, 0, false
	}
	return args[1:where], max, count, true
}

// zmpopReply is ZMPOP's reply: the key and its popped members with their
// scores, in pairs.
func (c *client) zmpopReply(key []byte, ms []bitcask.ZMember) {
	c.array(2)
	c.bulk(key)
	c.array(len(ms))
	for _, m := range ms {
		c.array(2)
		c.bulk(m.Member)
		c.score(m.Score)
	}
}

// ZRANDMEMBER key [count [WITHSCORES]], as HRANDFIELD.
func cmdZRandMember(c *client, args [][]byte) {
	all := func() ([]bitcask.ZMember, bool) {
		ms, err := c.st.zrange(args[1], &bitcask.ZRange{Start: 0, Stop: -1, Count: -1})
		if err != nil {
			c.storeErr(err)
			return nil, false
		}
		return ms, true
	}
	if len(args) == 2 {
		ms, ok := all()
		if !ok {
			return
		}
		if len(ms) == 0 {
			c.null()
			return
		}
		c.bulk(ms[rand.IntN(len(ms))].Member)
		return
	}
	count, withScores, ok := c.randArgs(args, "withscores")
	if !ok {
		return
	}
	ms, ok := all()
	if !ok {
		return
	}
	pick := randPick(ms, count)
	c.zreply(pick, withScores)
}

// ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZREMRANGEBYLEX key min max
func cmdZRemRange(c *client, args [][]byte) {
	q := bitcask.ZRange{Count: -1}
	switch name := args[0]; {
	case eqFold(name, "zremrangebyrank"):
		s, ok1 := parseInt(args[2])
		e, ok2 := parseInt(args[3])
		if !ok1 || !ok2 {
			c.errReply(errNotInteger)
			return
		}
		q.Start, q.Stop = s, e
	case eqFold(name, "zremrangebyscore"):
		q.By = bitcask.ZByScore
	default:
		q.By = bitcask.ZByLex
	}
	if q.By != bitcask.ZByRank && !c.parseRangeBounds(&q, args[2], args[3]) {
		return
	}
	ms, err := c.st.zrange(args[1], &q)
	if err != nil {
		c.storeErr(err)
		return
	}
	for _, m := range ms {
		if _, err := c.st.zrem(args[1], m.Member); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.intReply(int64(len(ms)))
}

// zsetOpArgs parses ZUNION/ZINTER/ZDIFF[STORE] and ZINTERCARD: the keys
// and options, replying Redis's error (WRONGTYPE before an option's).
func (c *client) zsetOpArgs(args [][]byte) (keys [][]byte, dst []byte, o zsetalg.Options, sets [][]zsetalg.Member, ok bool) {
	name := string(lowerASCII(args[0]))
	op, kind, numIdx := zsetalg.Union, zsetalg.Plain, 1
	switch name {
	case "zinter", "zinterstore", "zintercard":
		op = zsetalg.Inter
	case "zdiff", "zdiffstore":
		op = zsetalg.Diff
	}
	switch name {
	case "zunionstore", "zinterstore", "zdiffstore":
		kind, numIdx, dst = zsetalg.Store, 2, args[1]
	case "zintercard":
		kind = zsetalg.Card
	}
	n, msg := zsetalg.NumKeys(args, numIdx)
	if msg != "" {
		c.errReply(msg)
		return nil, nil, o, nil, false
	}
	keys = args[numIdx+1 : numIdx+1+n]
	sets = make([][]zsetalg.Member, n)
	for i, k := range keys {
		if m, ok := c.st.meta(k); ok && m.Type == bitcask.TypeSet {
			// A plain set is an input too, every member scored 1, as in Redis.
			ms, ok := c.setMembers(k)
			if !ok {
				return nil, nil, o, nil, false
			}
			for _, m := range ms {
				sets[i] = append(sets[i], zsetalg.Member{Member: string(m), Score: 1})
			}
			continue
		}
		ms, err := c.st.zrange(k, &bitcask.ZRange{Start: 0, Stop: -1, Count: -1})
		if err != nil {
			c.storeErr(err)
			return nil, nil, o, nil, false
		}
		for _, m := range ms {
			sets[i] = append(sets[i], zsetalg.Member{Member: string(m.Member), Score: m.Score})
		}
	}
	o, msg = zsetalg.Parse(args[numIdx+1+n:], op, kind, n)
	if msg != "" {
		c.errReply(msg)
		return nil, nil, o, nil, false
	}
	return keys, dst, o, sets, true
}

func cmdZSetOp(c *client, args [][]byte) {
	_, dst, o, sets, ok := c.zsetOpArgs(args)
	if !ok {
		return
	}
	if eqFold(args[0], "zintercard") {
		c.intReply(zsetalg.InterCard(sets, o.Limit))
		return
	}
	res := zsetalg.Compute(sets, &o)
	ms := make([]bitcask.ZMember, len(res))
	for i, m := range res {
		ms[i] = bitcask.ZMember{Member: []byte(m.Member), Score: m.Score}
	}
	if dst != nil {
		if c.zstore(dst, ms) {
			c.intReply(int64(len(ms)))
		}
		return
	}
	c.zreply(ms, o.WithScores)
}

// ZSCAN key cursor [MATCH pattern] [COUNT count]: a sorted set Redis
// keeps as a listpack comes whole in one reply with cursor 0, as Redis
// sends it; a bigger one page by page (scanPage).
func cmdZScan(c *client, args [][]byte) {
	cursor, ok := rangemap.ParseCursor(args[2])
	if !ok {
		c.errReply(errInvalidCursor)
		return
	}
	opts, ok := c.scanOptions(args[3:], false)
	if !ok {
		return
	}
	ms, err := c.st.zrange(args[1], &bitcask.ZRange{Start: 0, Stop: -1, Count: -1})
	if err != nil {
		c.storeErr(err)
		return
	}
	next := uint64(0)
	if zsetEncoding(ms) != "listpack" {
		picked, nx := scanPage(len(ms), func(i int) uint64 { return elemHash(ms[i].Member) }, cursor, opts.count)
		page := make([]bitcask.ZMember, len(picked))
		for j, i := range picked {
			page[j] = ms[i]
		}
		ms, next = page, nx
	}
	if opts.pattern != nil {
		ms = slices.DeleteFunc(ms, func(m bitcask.ZMember) bool { return !glob.Match(opts.pattern, m.Member, false) })
	}
	c.scanCursorReply(next, 2*len(ms))
	var buf [32]byte
	for _, m := range ms {
		c.bulk(m.Member)
		c.bulk(resp.AppendDoubleText(buf[:0], m.Score))
	}
}

// zsetEncoding is the encoding Redis 7.0 reports for a sorted set of ms:
// listpack up to zset-max-listpack-entries (128) members of up to
// zset-max-listpack-value (64) bytes, else skiplist (for the set as it is
// now; Redis does not convert a grown set back).
func zsetEncoding(ms []bitcask.ZMember) string {
	if len(ms) > 128 {
		return "skiplist"
	}
	for _, m := range ms {
		if len(m.Member) > 64 {
			return "skiplist"
		}
	}
	return "listpack"
}
