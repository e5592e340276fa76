package shardnode

import (
	"errors"
	"slices"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// Set commands. A set is stored one record per member write (see
// bitcask/set.go); the node reads and writes it through c.st. Replies
// list members in no particular order, as Redis's hashtable encoding
// does. SINTER, SUNION, SDIFF and SINTERCARD here see the keys of this
// node; the proxy computes them itself when the keys span shards.

// setStore is the set part of store. A key holding another type gives
// bitcask.ErrWrongType; an absent key or member is not an error.
type setStore interface {
	sadd(key, member []byte) (added bool, err error)
	srem(key, member []byte) (bool, error)
	sismember(key, member []byte) (bool, error)
	scard(key []byte) (int, error)
	// smembers returns the members, nil when the key is absent.
	smembers(key []byte) ([][]byte, error)
	// srandom returns n random members: distinct ones (at most all), or
	// n picks that may repeat.
	srandom(key []byte, n int, distinct bool) ([][]byte, error)
}

func (t *txStore) sadd(key, member []byte) (bool, error) {
	how := t.elemHow(key)
	added, err := t.tx.SetAdd(key, member)
	if added {
		t.touchAs(key, how, bitcask.TypeSet, member)
	}
	return added, err
}
func (t *txStore) srem(key, member []byte) (bool, error) {
	ok, err := t.tx.SetRemove(key, member)
	if ok {
		t.touchAs(key, migElem, bitcask.TypeSet, member)
	}
	return ok, err
}
func (t *txStore) sismember(key, member []byte) (bool, error) { return t.tx.SetIsMember(key, member) }
func (t *txStore) scard(key []byte) (int, error)              { return t.tx.SetCard(key) }
func (t *txStore) smembers(key []byte) ([][]byte, error)      { return t.tx.SetMembers(key) }
func (t *txStore) srandom(key []byte, n int, distinct bool) ([][]byte, error) {
	return t.tx.SetRandom(key, n, distinct)
}

// notFoundOK turns bitcask.ErrNotFound (an absent key) into no error.
func notFoundOK(err error) error {
	if errors.Is(err, bitcask.ErrNotFound) {
		return nil
	}
	return err
}

func (d *dbStore) sadd(key, member []byte) (bool, error) { return false, errReadOnlyStore }
func (d *dbStore) srem(key, member []byte) (bool, error) { return false, errReadOnlyStore }
func (d *dbStore) sismember(key, member []byte) (bool, error) {
	ok, err := d.db.SetIsMember(d.c.keyHash(key), key, member, d.c.now)
	return ok, notFoundOK(err)
}
func (d *dbStore) scard(key []byte) (int, error) {
	n, err := d.db.SetCard(d.c.keyHash(key), key, d.c.now)
	return n, notFoundOK(err)
}
func (d *dbStore) smembers(key []byte) ([][]byte, error) {
	ms, err := d.db.SetMembers(d.c.keyHash(key), key, d.c.now)
	return ms, notFoundOK(err)
}
func (d *dbStore) srandom(key []byte, n int, distinct bool) ([][]byte, error) {
	ms, err := d.db.SetRandom(d.c.keyHash(key), key, n, distinct, d.c.now)
	return ms, notFoundOK(err)
}

const (
	errNotPositive = "ERR value is out of range, must be positive"
	// maxRandPicks bounds SRANDMEMBER's picks with repeats: a reply that
	// large is refused by any client anyway (Redis would try to build it).
	maxRandPicks = 1 << 24
)

// setHeader starts a reply that is a set in RESP3, an array in RESP2.
func (c *client) setHeader(n int) { c.out = resp.AppendSet(c.out, c.sess.Proto, n) }

// members replies ms as a set.
func (c *client) members(ms [][]byte) {
	c.setHeader(len(ms))
	for _, m := range ms {
		c.bulk(m)
	}
}

func cmdSAdd(c *client, args [][]byte) {
	key := args[1]
	if !c.hashFits(key, args[2:]) {
		return
	}
	var n int64
	for _, m := range args[2:] {
		added, err := c.st.sadd(key, m)
		if err != nil {
			c.storeErr(err)
			return
		}
		n += b2i(added)
	}
	c.intReply(n)
}

func cmdSRem(c *client, args [][]byte) {
	var n int64
	for _, m := range args[2:] {
		ok, err := c.st.srem(args[1], m)
		if err != nil {
			c.storeErr(err)
			return
		}
		n += b2i(ok)
	}
	c.intReply(n)
}

func cmdSIsMember(c *client, args [][]byte) {
	ok, err := c.st.sismember(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(b2i(ok))
}

func cmdSMIsMember(c *client, args [][]byte) {
	if _, err := c.st.scard(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	c.array(len(args) - 2)
	for _, m := range args[2:] {
		ok, err := c.st.sismember(args[1], m)
		if err != nil {
			c.srv.storageError(err)
		}
		c.intReply(b2i(ok))
	}
}

func cmdSCard(c *client, args [][]byte) {
	n, err := c.st.scard(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

// setMembers reads the set at key, replying the error if there is one.
func (c *client) setMembers(key []byte) ([][]byte, bool) {
	ms, err := c.st.smembers(key)
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	return ms, true
}

func cmdSMembers(c *client, args [][]byte) {
	if ms, ok := c.setMembers(args[1]); ok {
		c.members(ms)
	}
}

// SRANDMEMBER key [count]: a positive count gives distinct members (all
// of them when count is at least the size), a negative one -count members
// that may repeat. The count is checked before the key, as Redis does.
func cmdSRandMember(c *client, args [][]byte) {
	if len(args) > 3 {
		c.errReply(errSyntax)
		return
	}
	if len(args) == 2 {
		ms, err := c.st.srandom(args[1], 1, true)
		if err != nil {
			c.storeErr(err)
			return
		}
		if len(ms) == 0 {
			c.null()
			return
		}
		c.bulk(ms[0])
		return
	}
	count, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if count == minInt64 {
		c.errReply("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
		return
	}
	n, distinct := count, true
	if n < 0 {
		n, distinct = min(-n, maxRandPicks), false
	}
	if _, err := c.st.scard(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	ms, err := c.st.srandom(args[1], int(min(n, 1<<31)), distinct)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.array(len(ms))
	for _, m := range ms {
		c.bulk(m)
	}
}

// SPOP key [count]: a popped member is removed with one record; popping
// the whole set deletes the key with one.
func cmdSPop(c *client, args [][]byte) {
	if len(args) > 3 {
		c.errReply(errSyntax)
		return
	}
	key := args[1]
	count := int64(1)
	if len(args) == 3 {
		var ok bool
		if count, ok = parseInt(args[2]); !ok || count < 0 {
			c.errReply(errNotPositive)
			return
		}
	}
	size, err := c.st.scard(key)
	if err != nil {
		c.storeErr(err)
		return
	}
	var popped [][]byte
	switch {
	case size == 0 || count == 0:
	case count >= int64(size):
		if popped, err = c.st.smembers(key); err == nil {
			_, err = c.st.del(key)
		}
	default:
		if popped, err = c.st.srandom(key, int(count), true); err == nil {
			for _, m := range popped {
				if _, err = c.st.srem(key, m); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		c.storeErr(err)
		return
	}
	if len(args) == 2 {
		if len(popped) == 0 {
			c.null()
		} else {
			c.bulk(popped[0])
		}
		return
	}
	c.members(popped)
}

// SMOVE source destination member. An absent source moves nothing before
// the types are checked, as in Redis.
func cmdSMove(c *client, args [][]byte) {
	src, dst, m := args[1], args[2], args[3]
	if n, err := c.st.scard(src); err != nil || n == 0 {
		if err != nil {
			c.storeErr(err)
		} else {
			c.intReply(0)
		}
		return
	}
	if _, err := c.st.scard(dst); err != nil {
		c.storeErr(err)
		return
	}
	if string(src) == string(dst) {
		ok, err := c.st.sismember(src, m)
		if err != nil {
			c.storeErr(err)
			return
		}
		c.intReply(b2i(ok))
		return
	}
	ok, err := c.st.srem(src, m)
	if err != nil || !ok {
		if err != nil {
			c.storeErr(err)
		} else {
			c.intReply(0)
		}
		return
	}
	if _, err := c.st.sadd(dst, m); err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(1)
}

// setOp is a set operation over keys.
type setOp int

const (
	opInter setOp = iota
	opUnion
	opDiff
)

// computeSetOp computes op over the sets at keys (absent keys are empty
// sets), checking every key's type first as Redis does; limit > 0 stops
// an intersection at that many members (SINTERCARD).
func (c *client) computeSetOp(op setOp, keys [][]byte, limit int) ([][]byte, error) {
	sizes := make([]int, len(keys))
	for i, k := range keys {
		n, err := c.st.scard(k)
		if err != nil {
			return nil, err
		}
		sizes[i] = n
	}
	switch op {
	case opInter:
		// Walk the smallest set, probing the others.
		small := 0
		for i, n := range sizes {
			if n < sizes[small] {
				small = i
			}
		}
		if sizes[small] == 0 {
			return nil, nil
		}
		ms, err := c.st.smembers(keys[small])
		if err != nil {
			return nil, err
		}
		out := ms[:0]
	next:
		for _, m := range ms {
			for i, k := range keys {
				if i == small {
					continue
				}
				ok, err := c.st.sismember(k, m)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue next
				}
			}
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return out, nil
	case opUnion:
		seen := make(map[string]bool)
		var out [][]byte
		for i, k := range keys {
			if sizes[i] == 0 {
				continue
			}
			ms, err := c.st.smembers(k)
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				if !seen[string(m)] {
					seen[string(m)] = true
					out = append(out, m)
				}
			}
		}
		return out, nil
	default:
		ms, err := c.st.smembers(keys[0])
		if err != nil {
			return nil, err
		}
		out := ms[:0]
	diff:
		for _, m := range ms {
			for i, k := range keys[1:] {
				if sizes[i+1] == 0 {
					continue
				}
				ok, err := c.st.sismember(k, m)
				if err != nil {
					return nil, err
				}
				if ok {
					continue diff
				}
			}
			out = append(out, m)
		}
		return out, nil
	}
}

func setOpOf(name []byte) setOp {
	switch {
	case len(name) > 0 && (name[1] == 'u' || name[1] == 'U'):
		return opUnion
	case len(name) > 0 && (name[1] == 'd' || name[1] == 'D'):
		return opDiff
	}
	return opInter
}

// SINTER, SUNION, SDIFF key [key ...].
func cmdSetOp(c *client, args [][]byte) {
	ms, err := c.computeSetOp(setOpOf(args[0]), args[1:], 0)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.members(ms)
}

// SINTERSTORE, SUNIONSTORE, SDIFFSTORE destination key [key ...]: the
// destination is replaced whatever it held, and deleted when the result is
// empty.
func cmdSetOpStore(c *client, args [][]byte) {
	dst := args[1]
	ms, err := c.computeSetOp(setOpOf(args[0]), args[2:], 0)
	if err != nil {
		c.storeErr(err)
		return
	}
	if len(ms) > 0 && !c.hashFits(dst, ms) {
		return
	}
	if _, err := c.st.del(dst); err != nil {
		c.storeErr(err)
		return
	}
	for _, m := range ms {
		if _, err := c.st.sadd(dst, m); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.intReply(int64(len(ms)))
}

func cmdSInterCard(c *client, args [][]byte) {
	keys, limit, msg := cmdtable.ParseSInterCard(args)
	if msg != "" {
		c.errReply(msg)
		return
	}
	ms, err := c.computeSetOp(opInter, keys, int(min(limit, 1<<31)))
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(len(ms)))
}

// SSCAN key cursor [MATCH pattern] [COUNT count]: an intset comes whole
// in one reply with cursor 0, as Redis sends it; a bigger set page by page
// (scanPage). Like Redis, the key is looked up before the options are
// read: an absent key replies an empty page.
func cmdSScan(c *client, args [][]byte) {
	cursor, ok := rangemap.ParseCursor(args[2])
	if !ok {
		c.errReply(errInvalidCursor)
		return
	}
	ms, ok := c.setMembers(args[1])
	if !ok {
		return
	}
	if ms == nil {
		c.scanCursorReply(0, 0)
		return
	}
	opts, ok := c.scanOptions(args[3:], false)
	if !ok {
		return
	}
	next := uint64(0)
	if setEncoding(ms) != "intset" {
		picked, nx := scanPage(len(ms), func(i int) uint64 { return elemHash(ms[i]) }, cursor, opts.count)
		page := make([][]byte, len(picked))
		for j, i := range picked {
			page[j] = ms[i]
		}
		ms, next = page, nx
	}
	if opts.pattern != nil {
		ms = slices.DeleteFunc(ms, func(m []byte) bool { return !glob.Match(opts.pattern, m, false) })
	}
	c.scanCursorReply(next, len(ms))
	for _, m := range ms {
		c.bulk(m)
	}
}

// setEncoding is the encoding Redis 7.0 would report for a set of these
// members: intset up to set-max-intset-entries (512) members that are all
// integers, else hashtable (7.0 has no listpack sets). Redis never
// converts a set back to an intset; this reports the set as it is now.
func setEncoding(ms [][]byte) string {
	if len(ms) > 512 {
		return "hashtable"
	}
	for _, m := range ms {
		if _, ok := parseInt(m); !ok {
			return "hashtable"
		}
	}
	return "intset"
}
