package shardnode

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/rangemap"
)

// Hash commands. A hash is stored one record per field write (see
// bitcask/collection.go); the node reads and writes it through c.st.
// Replies list fields in no particular order, as Redis's hashtable
// encoding does (Redis's small hashes keep insertion order; clients may
// not rely on either).

const (
	errHashNotInt   = "ERR hash value is not an integer"
	errHashNotFloat = "ERR hash value is not a float"
)

// hashFits is the size limit's check for adding fields and values.
func (c *client) hashFits(key []byte, fv [][]byte) bool {
	if !c.limited() {
		return true
	}
	n := int64(len(key))
	for _, b := range fv {
		n += int64(len(b))
	}
	return c.fits(0, n)
}

// HSET key field value [field value ...]; HMSET replies OK instead of
// the number of new fields.
func cmdHSet(c *client, args [][]byte) {
	if len(args)%2 != 0 {
		c.arityErr(string(lowerASCII(args[0])))
		return
	}
	key := args[1]
	if !c.hashFits(key, args[2:]) {
		return
	}
	var created int64
	for i := 2; i < len(args); i += 2 {
		n, err := c.st.hset(key, args[i], args[i+1])
		if err != nil {
			c.storeErr(err)
			return
		}
		if n {
			created++
		}
	}
	if eqFold(args[0], "hmset") {
		c.ok()
		return
	}
	c.intReply(created)
}

func cmdHSetNX(c *client, args [][]byte) {
	key, field := args[1], args[2]
	_, ok, err := c.st.hget(key, field)
	if err != nil {
		c.storeErr(err)
		return
	}
	if ok {
		c.intReply(0)
		return
	}
	if !c.hashFits(key, args[2:]) {
		return
	}
	if _, err := c.st.hset(key, field, args[3]); err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(1)
}

func cmdHGet(c *client, args [][]byte) {
	v, ok, err := c.st.hget(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	if ok {
		c.bulk(v)
	} else {
		c.null()
	}
}

func cmdHMGet(c *client, args [][]byte) {
	// The type is checked before the array starts.
	if _, err := c.st.hlen(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	c.array(len(args) - 2)
	for _, f := range args[2:] {
		v, ok, err := c.st.hget(args[1], f)
		if err != nil {
			c.srv.storageError(err)
			ok = false
		}
		if ok {
			c.bulk(v)
		} else {
			c.null()
		}
	}
}

func cmdHDel(c *client, args [][]byte) {
	var n int64
	for _, f := range args[2:] {
		ok, err := c.st.hdel(args[1], f)
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

func cmdHExists(c *client, args [][]byte) {
	_, ok, err := c.st.hget(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(b2i(ok))
}

func cmdHLen(c *client, args [][]byte) {
	n, err := c.st.hlen(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(n))
}

func cmdHStrlen(c *client, args [][]byte) {
	v, _, err := c.st.hget(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(int64(len(v)))
}

// hashFields reads the hash at key, replying the error if there is one.
func (c *client) hashFields(key []byte, values bool) ([]bitcask.HashField, bool) {
	fs, err := c.st.hgetall(key, values)
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	return fs, true
}

func cmdHKeys(c *client, args [][]byte) {
	fs, ok := c.hashFields(args[1], false)
	if !ok {
		return
	}
	c.array(len(fs))
	for _, f := range fs {
		c.bulk(f.Field)
	}
}

func cmdHVals(c *client, args [][]byte) {
	fs, ok := c.hashFields(args[1], true)
	if !ok {
		return
	}
	c.array(len(fs))
	for _, f := range fs {
		c.bulk(f.Value)
	}
}

// HGETALL: a flat array in RESP2, a map in RESP3.
func cmdHGetAll(c *client, args [][]byte) {
	fs, ok := c.hashFields(args[1], true)
	if !ok {
		return
	}
	c.mapHeader(len(fs))
	for _, f := range fs {
		c.bulk(f.Field)
		c.bulk(f.Value)
	}
}

func cmdHIncrBy(c *client, args [][]byte) {
	key, field := args[1], args[2]
	by, ok := parseInt(args[3])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	old, exists, err := c.st.hget(key, field)
	if err != nil {
		c.storeErr(err)
		return
	}
	var cur int64
	if exists {
		if cur, ok = parseInt(old); !ok {
			c.errReply(errHashNotInt)
			return
		}
	}
	if by > 0 && cur > maxInt64-by || by < 0 && cur < minInt64-by {
		c.errReply(errOverflow)
		return
	}
	cur += by
	nv := strconv.AppendInt(nil, cur, 10)
	if !c.hashFits(key, [][]byte{field, nv}) {
		return
	}
	if _, err := c.st.hset(key, field, nv); err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(cur)
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// HINCRBYFLOAT computes as INCRBYFLOAT does (x87 long double precision,
// "%.17Lf" minus trailing zeros).
func cmdHIncrByFloat(c *client, args [][]byte) {
	key, field := args[1], args[2]
	by, ok := parseLongDouble(args[3])
	if !ok {
		c.errReply(errNotFloat)
		return
	}
	if by.IsInf() {
		c.errReply("ERR value is NaN or Infinity")
		return
	}
	old, exists, err := c.st.hget(key, field)
	if err != nil {
		c.storeErr(err)
		return
	}
	cur := new(big.Float).SetPrec(longDoublePrec)
	if exists {
		if cur, ok = parseLongDouble(old); !ok {
			c.errReply(errHashNotFloat)
			return
		}
	}
	if cur.IsInf() {
		c.errReply(errNaNInf)
		return
	}
	sum := new(big.Float).SetPrec(longDoublePrec).Add(cur, by)
	if sum.MantExp(nil) > longDoubleMaxExp {
		c.errReply(errNaNInf)
		return
	}
	nv := formatLongDouble(sum)
	if !c.hashFits(key, [][]byte{field, nv}) {
		return
	}
	if _, err := c.st.hset(key, field, nv); err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(nv)
}

// HRANDFIELD key [count [WITHVALUES]]: a positive count gives distinct
// fields (all of them when count is at least the size), a negative one
// -count fields that may repeat.
func cmdHRandField(c *client, args [][]byte) {
	if len(args) == 2 {
		fs, ok := c.hashFields(args[1], false)
		if !ok {
			return
		}
		if len(fs) == 0 {
			c.null()
			return
		}
		c.bulk(fs[rand.IntN(len(fs))].Field)
		return
	}
	count, withValues, ok := c.randArgs(args, "withvalues")
	if !ok {
		return
	}
	fs, ok := c.hashFields(args[1], withValues)
	if !ok {
		return
	}
	pick := randPick(fs, count)
	if !withValues {
		c.array(len(pick))
		for _, f := range pick {
			c.bulk(f.Field)
		}
		return
	}
	if c.sess.Proto == 3 {
		c.array(len(pick))
		for _, f := range pick {
			c.array(2)
			c.bulk(f.Field)
			c.bulk(f.Value)
		}
		return
	}
	c.array(2 * len(pick))
	for _, f := range pick {
		c.bulk(f.Field)
		c.bulk(f.Value)
	}
}

// HSCAN key cursor [MATCH pattern] [COUNT count]: a hash Redis keeps as
// a listpack comes whole in one reply with cursor 0, as Redis sends it;
// a bigger one page by page (scanPage), its values read for the page's
// fields only.
func cmdHScan(c *client, args [][]byte) {
	cursor, ok := rangemap.ParseCursor(args[2])
	if !ok {
		c.errReply(errInvalidCursor)
		return
	}
	opts, ok := c.scanOptions(args[3:], false)
	if !ok {
		return
	}
	pattern := opts.pattern
	fs, ok := c.hashFields(args[1], false)
	if !ok {
		return
	}
	next := uint64(0)
	if hashEncoding(fs) == "listpack" {
		if fs, ok = c.hashFields(args[1], true); !ok {
			return
		}
	} else {
		picked, nx := scanPage(len(fs), func(i int) uint64 { return elemHash(fs[i].Field) }, cursor, opts.count)
		page := make([]bitcask.HashField, 0, len(picked))
		for _, i := range picked {
			if pattern != nil && !glob.Match(pattern, fs[i].Field, false) {
				continue
			}
			v, had, err := c.st.hget(args[1], fs[i].Field)
			if err != nil {
				c.storeErr(err)
				return
			}
			if had { // else deleted since the field list was read
				page = append(page, bitcask.HashField{Field: fs[i].Field, Value: v})
			}
		}
		fs, next, pattern = page, nx, nil
	}
	if pattern != nil {
		fs = slices.DeleteFunc(fs, func(f bitcask.HashField) bool { return !glob.Match(pattern, f.Field, false) })
	}
	c.scanCursorReply(next, 2*len(fs))
	for _, f := range fs {
		c.bulk(f.Field)
		c.bulk(f.Value)
	}
}

// hashEncoding is the encoding Redis would report for a hash of these
// fields: listpack up to hash-max-listpack-entries (128) fields with
// fields and values up to hash-max-listpack-value (64) bytes. Redis
// never converts a hash back to a listpack; this reports the encoding of
// the hash as it is now.
func hashEncoding(fs []bitcask.HashField) string {
	if len(fs) > 128 {
		return "hashtable"
	}
	for _, f := range fs {
		if len(f.Field) > 64 || f.Len > 64 {
			return "hashtable"
		}
	}
	return "listpack"
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// randArgs reads the count [WITH...] of HRANDFIELD and ZRANDMEMBER
// (args[2:]), replying Redis's error.
func (c *client) randArgs(args [][]byte, with string) (count int64, withValues, ok bool) {
	count, ok = parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return 0, false, false
	}
	if len(args) == 4 {
		if !eqFold(args[3], with) {
			c.errReply(errSyntax)
			return 0, false, false
		}
		withValues = true
	} else if len(args) > 4 {
		c.errReply(errSyntax)
		return 0, false, false
	}
	if count < 0 && withValues && -count > maxInt64/2 {
		c.errReply("ERR value is out of range")
		return 0, false, false
	}
	return count, withValues, true
}

// randPick picks as HRANDFIELD and ZRANDMEMBER do: a positive count gives
// distinct items (all when count is at least their number), a negative
// one -count items that may repeat.
func randPick[T any](items []T, count int64) []T {
	switch {
	case len(items) == 0 || count == 0:
		return nil
	case count > 0:
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		return items[:min(count, int64(len(items)))]
	}
	n := min(-count, 1<<24) // a reply that large is refused by any client anyway
	pick := make([]T, n)
	for i := range pick {
		pick[i] = items[rand.IntN(len(items))]
	}
	return pick
}
