package shardnode

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

func nowMillis() int64 { return time.Now().UnixMilli() }

// Expiry option kinds, as in Redis's SET/GETEX parsing.
const (
	expNone = iota
	expEX
	expPX
	expEXAT
	expPXAT
)

// expireOption names the expiry option a SET or GETEX argument is, or expNone.
func expireOption(a []byte) int {
	switch {
	case eqFold(a, "ex"):
		return expEX
	case eqFold(a, "px"):
		return expPX
	case eqFold(a, "exat"):
		return expEXAT
	case eqFold(a, "pxat"):
		return expPXAT
	}
	return expNone
}

// expireAt turns an EX/PX/EXAT/PXAT argument into Unix milliseconds with
// Redis's checks: not an integer, not positive, or overflowing is refused.
func (c *client) expireAt(arg []byte, kind int, cmd string) (int64, bool) {
	n, ok := parseInt(arg)
	if !ok {
		c.errReply(errNotInteger)
		return 0, false
	}
	seconds := kind == expEX || kind == expEXAT
	if n <= 0 || seconds && n > math.MaxInt64/1000 {
		c.invalidExpire(cmd)
		return 0, false
	}
	if seconds {
		n *= 1000
	}
	if kind == expEX || kind == expPX {
		if n > math.MaxInt64-c.now {
			c.invalidExpire(cmd)
			return 0, false
		}
		n += c.now
	}
	return n, true
}

func (c *client) invalidExpire(cmd string) {
	c.errReply("ERR invalid expire time in '" + cmd + "' command")
}

// fits reports whether replacing oldSize bytes of live data (key plus old
// value, 0 for a new key) by newSize keeps the shard within its size
// limit; if not it replies Redis's OOM error. Shrinking always fits.
func (c *client) fits(oldSize, newSize int64) bool {
	limit := c.srv.sizeLimit.Load()
	if limit <= 0 || newSize <= oldSize {
		return true
	}
	if c.st.liveBytes()+newSize-oldSize > limit {
		c.errReply(errOOM)
		return false
	}
	return true
}

// limited reports whether a size limit is set, so handlers read the old
// value's size only when it matters.
func (c *client) limited() bool { return c.srv.sizeLimit.Load() > 0 }

// live is the size a key and value count for in the size limit.
func live(key, value []byte) int64 { return int64(len(key) + len(value)) }

// get reads a key, replying the storage error if there is one.
func (c *client) get(key []byte) (value []byte, meta bitcask.Meta, ok, failed bool) {
	v, m, ok, err := c.st.get(key)
	if err != nil {
		c.storeErr(err)
		return nil, m, false, true
	}
	c.noteBig(len(v))
	return v, m, ok, false
}

// put writes a key, deleting it instead when its expiry has passed already
// (Redis sets and at once expires such a key, which modifies it for WATCH
// even when it did not exist).
func (c *client) put(key, value []byte, expireAt int64) bool {
	return c.putTagged(key, value, expireAt, encAuto)
}

// putTagged is put with the value's encoding tag (encoding.go).
func (c *client) putTagged(key, value []byte, expireAt int64, tag uint8) bool {
	var err error
	if expireAt != 0 && expireAt <= c.now {
		_, err = c.st.del(key)
		if err == nil {
			c.txs.touch(key) // the del succeeded: a transaction's store
		}
	} else {
		err = c.st.putTagged(key, value, expireAt, tag)
	}
	if err != nil {
		c.storeErr(err)
		return false
	}
	return true
}

func (c *client) hit(ok bool) {
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

func cmdGet(c *client, args [][]byte) {
	ok, err := c.bulkValue(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.hit(ok)
	if !ok {
		c.null()
	}
}

// keepScratch keeps a read buffer for the next command unless it grew
// large.
func (c *client) keepScratch(b []byte) {
	if cap(b) <= 64<<10 {
		c.scratch = b[:0]
	}
}

// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms | KEEPTTL]
func cmdSet(c *client, args [][]byte) {
	key, val := args[1], args[2]
	var nx, xx, get, keepTTL bool
	kind := expNone
	var expArg []byte
	for i := 3; i < len(args); i++ {
		a := args[i]
		hasNext := i+1 < len(args)
		opt := expireOption(a)
		switch {
		case eqFold(a, "nx") && !xx:
			nx = true
		case eqFold(a, "xx") && !nx:
			xx = true
		case eqFold(a, "get"):
			get = true
		case eqFold(a, "keepttl") && kind == expNone:
			keepTTL = true
		case opt != expNone && !keepTTL && (kind == expNone || kind == opt) && hasNext:
			kind, expArg = opt, args[i+1]
			i++
		default:
			c.errReply(errSyntax)
			return
		}
	}
	var at int64
	if kind != expNone {
		var ok bool
		if at, ok = c.expireAt(expArg, kind, "set"); !ok {
			return
		}
	}
	var old []byte
	var meta bitcask.Meta
	exists := false
	oldSize := int64(-1)
	switch {
	case get:
		var failed bool
		if old, meta, exists, failed = c.get(key); failed {
			return
		}
		oldSize = 0
		if exists {
			oldSize = live(key, old)
		}
	case nx || xx || keepTTL || c.limited():
		// The size limit needs the old value's length, not the value.
		meta, exists = c.st.meta(key)
		oldSize = 0
		if exists {
			oldSize = int64(len(key)) + meta.Len
		}
	}
	if nx && exists || xx && !exists {
		if get {
			c.replyOld(old, exists)
		} else {
			c.null()
		}
		return
	}
	if oldSize >= 0 && !c.fits(oldSize, live(key, val)) {
		return
	}
	if keepTTL && exists {
		at = meta.ExpireAt
	}
	if !c.put(key, val, at) {
		return
	}
	if get {
		c.replyOld(old, exists)
		return
	}
	c.ok()
}

func (c *client) replyOld(old []byte, exists bool) {
	if exists {
		c.bulk(old)
	} else {
		c.null()
	}
}

// setIfAbsent is SETNX's and MSETNX's check-and-set of one key.
func cmdSetNX(c *client, args [][]byte) {
	key, val := args[1], args[2]
	if _, exists := c.st.meta(key); exists {
		c.intReply(0)
		return
	}
	if !c.fits(0, live(key, val)) || !c.put(key, val, 0) {
		return
	}
	c.intReply(1)
}

func cmdSetEX(c *client, args [][]byte)  { setWithTTL(c, args, expEX, "setex") }
func cmdPSetEX(c *client, args [][]byte) { setWithTTL(c, args, expPX, "psetex") }

func setWithTTL(c *client, args [][]byte, kind int, name string) {
	key, val := args[1], args[3]
	at, ok := c.expireAt(args[2], kind, name)
	if !ok {
		return
	}
	oldSize := int64(0)
	if c.limited() {
		if m, exists := c.st.meta(key); exists {
			oldSize = int64(len(key)) + m.Len
		}
		if !c.fits(oldSize, live(key, val)) {
			return
		}
	}
	if c.put(key, val, at) {
		c.ok()
	}
}

func cmdGetDel(c *client, args [][]byte) {
	v, _, ok, failed := c.get(args[1])
	if failed {
		return
	}
	if !ok {
		c.null()
		return
	}
	if _, err := c.st.del(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(v)
}

// GETEX key [EX s | PX ms | EXAT ts | PXAT ms | PERSIST]
func cmdGetEx(c *client, args [][]byte) {
	key := args[1]
	kind := expNone
	persist := false
	var expArg []byte
	for i := 2; i < len(args); i++ {
		a := args[i]
		hasNext := i+1 < len(args)
		opt := expireOption(a)
		switch {
		case eqFold(a, "persist") && kind == expNone:
			persist = true
		case opt != expNone && !persist && (kind == expNone || kind == opt) && hasNext:
			kind, expArg = opt, args[i+1]
			i++
		default:
			c.errReply(errSyntax)
			return
		}
	}
	var at int64
	if kind != expNone {
		var ok bool
		if at, ok = c.expireAt(expArg, kind, "getex"); !ok {
			return
		}
	}
	v, meta, ok, failed := c.get(key)
	if failed {
		return
	}
	c.hit(ok)
	if !ok {
		c.null()
		return
	}
	var err error
	switch {
	case kind != expNone && at <= c.now:
		_, err = c.st.del(key)
	case kind != expNone:
		_, err = c.st.setExpireAt(key, at)
	case persist && meta.ExpireAt != 0:
		_, err = c.st.setExpireAt(key, 0)
	}
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(v)
}

func cmdGetSet(c *client, args [][]byte) {
	key, val := args[1], args[2]
	old, _, exists, failed := c.get(key)
	if failed {
		return
	}
	oldSize := int64(0)
	if exists {
		oldSize = live(key, old)
	}
	if !c.fits(oldSize, live(key, val)) || !c.put(key, val, 0) {
		return
	}
	c.replyOld(old, exists)
}

func cmdMGet(c *client, args [][]byte) {
	c.array(len(args) - 1)
	buf := c.scratch[:0]
	for _, key := range args[1:] {
		v, ok, err := c.st.getAppend(buf[:0], key)
		if err != nil {
			// A failed read inside an array: Redis has no such case; a
			// null keeps the array well formed and the error is logged.
			c.srv.storageError(err)
			ok = false
		}
		c.hit(ok)
		if ok {
			c.bulk(v)
		} else {
			c.null()
		}
		buf = v
	}
	c.keepScratch(buf)
}

// growth is the live-data growth of writing the key/value pairs in kv. The
// old sizes come from the key directory (Meta.Len), not from reading the
// values.
func (c *client) growth(kv [][]byte) (oldSize, newSize int64) {
	for i := 0; i+1 < len(kv); i += 2 {
		newSize += live(kv[i], kv[i+1])
		if m, ok := c.st.meta(kv[i]); ok {
			oldSize += int64(len(kv[i])) + m.Len
		}
	}
	return oldSize, newSize
}

func cmdMSet(c *client, args [][]byte) {
	if len(args)%2 == 0 {
		c.arityErr("mset")
		return
	}
	if c.limited() {
		if oldSize, newSize := c.growth(args[1:]); !c.fits(oldSize, newSize) {
			return
		}
	}
	for i := 1; i < len(args); i += 2 {
		if err := c.st.put(args[i], args[i+1], 0); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.ok()
}

func cmdMSetNX(c *client, args [][]byte) {
	if len(args)%2 == 0 {
		c.arityErr("msetnx")
		return
	}
	for i := 1; i < len(args); i += 2 {
		if _, exists := c.st.meta(args[i]); exists {
			c.intReply(0)
			return
		}
	}
	var newSize int64
	for i := 1; i < len(args); i += 2 {
		newSize += live(args[i], args[i+1])
	}
	if !c.fits(0, newSize) {
		return
	}
	for i := 1; i < len(args); i += 2 {
		if err := c.st.put(args[i], args[i+1], 0); err != nil {
			c.storeErr(err)
			return
		}
	}
	c.intReply(1)
}

func cmdAppend(c *client, args [][]byte) {
	key, suffix := args[1], args[2]
	oldLen, exists, ok := c.stringLen(key)
	if !ok {
		return
	}
	if oldLen+int64(len(suffix)) > resp.MaxBulkLen {
		c.errReply(errTooBig)
		return
	}
	c.spliceReply(key, exists, oldLen, oldLen, suffix, appendTag(exists))
}

// stringLen is the length of key's string value from the key directory,
// without reading the value; a key of another type gets WRONGTYPE (ok
// false).
func (c *client) stringLen(key []byte) (n int64, exists, ok bool) {
	m, exists := c.st.meta(key)
	if exists && m.Type != bitcask.TypeString {
		c.errReply(errWrongType)
		return 0, true, false
	}
	return m.Len, exists, true
}

// spliceReply writes part at off into key's value of oldLen bytes (SETRANGE,
// APPEND) and replies the new length (splice).
func (c *client) spliceReply(key []byte, exists bool, oldLen, off int64, part []byte, tag uint8) {
	if n, ok := c.splice(key, exists, oldLen, off, part, tag); ok {
		c.intReply(n)
	}
}

// splice writes part at off into key's value of oldLen bytes after the
// size limit check, tags it (encoding.go), and returns the new length; it
// replies the error itself. The engine splices the value where it lies
// (bitcask.Tx.Splice): a big one is neither read into memory nor copied,
// and its zeros are not written.
func (c *client) splice(key []byte, exists bool, oldLen, off int64, part []byte, tag uint8) (int64, bool) {
	n := max(oldLen, off+int64(len(part)))
	oldSize := int64(0)
	if exists {
		oldSize = int64(len(key)) + oldLen
	}
	if !c.fits(oldSize, int64(len(key))+n) {
		return 0, false
	}
	n, err := c.st.splice(key, off, part, tag)
	if err != nil {
		c.storeErr(err)
		return 0, false
	}
	return n, true
}

func cmdStrlen(c *client, args [][]byte) {
	// The key directory knows the length: no read of the value.
	m, _ := c.st.meta(args[1])
	if m.Type != bitcask.TypeString {
		c.errReply(errWrongType)
		return
	}
	c.intReply(m.Len)
}

func cmdGetRange(c *client, args [][]byte) {
	start, ok1 := parseInt(args[2])
	end, ok2 := parseInt(args[3])
	if !ok1 || !ok2 {
		c.errReply(errNotInteger)
		return
	}
	// The length from the key directory, and only the range read.
	n, _, ok := c.stringLen(args[1])
	if !ok {
		return
	}
	if start < 0 && end < 0 && start > end {
		c.bulk(nil)
		return
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	if start < 0 {
		start = 0
	}
	if end < 0 {
		end = 0
	}
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		c.bulk(nil)
		return
	}
	v, err := c.st.getRange(c.scratch[:0], args[1], start, end+1)
	if err != nil && !errors.Is(err, bitcask.ErrNotFound) {
		c.storeErr(err)
		return
	}
	c.bulk(v)
	c.keepScratch(v)
}

func cmdSetRange(c *client, args [][]byte) {
	key, part := args[1], args[3]
	off, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if off < 0 {
		c.errReply(errOffset)
		return
	}
	oldLen, exists, ok := c.stringLen(key)
	if !ok {
		return
	}
	if len(part) == 0 {
		c.intReply(oldLen)
		return
	}
	if off > resp.MaxBulkLen || off+int64(len(part)) > resp.MaxBulkLen {
		c.errReply(errTooBig)
		return
	}
	c.spliceReply(key, exists, oldLen, off, part, encRaw)
}

func cmdIncr(c *client, args [][]byte) { incrBy(c, args[1], 1) }
func cmdDecr(c *client, args [][]byte) { incrBy(c, args[1], -1) }

func cmdIncrBy(c *client, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	incrBy(c, args[1], n)
}

func cmdDecrBy(c *client, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if n == math.MinInt64 {
		c.errReply("ERR decrement would overflow")
		return
	}
	incrBy(c, args[1], -n)
}

func incrBy(c *client, key []byte, by int64) {
	old, meta, exists, failed := c.get(key)
	if failed {
		return
	}
	var cur int64
	if exists {
		var ok bool
		if cur, ok = parseInt(old); !ok {
			c.errReply(errNotInteger)
			return
		}
	}
	if by < 0 && cur < 0 && by < math.MinInt64-cur || by > 0 && cur > 0 && by > math.MaxInt64-cur {
		c.errReply(errOverflow)
		return
	}
	cur += by
	var buf [20]byte
	nv := strconv.AppendInt(buf[:0], cur, 10)
	oldSize := int64(0)
	if exists {
		oldSize = live(key, old)
	}
	if !c.fits(oldSize, live(key, nv)) {
		return
	}
	if !c.put(key, append([]byte(nil), nv...), meta.ExpireAt) {
		return
	}
	c.intReply(cur)
}

// INCRBYFLOAT computes in 64-bit-mantissa binary floating point, the x87
// long double Redis uses, and formats with "%.17Lf" minus trailing zeros,
// so 0.1 + 0.2 gives "0.3" as it does in Redis.
func cmdIncrByFloat(c *client, args [][]byte) {
	key := args[1]
	by, ok := parseLongDouble(args[2])
	if !ok {
		c.errReply(errNotFloat)
		return
	}
	old, meta, exists, failed := c.get(key)
	if failed {
		return
	}
	cur := new(big.Float).SetPrec(longDoublePrec)
	if exists {
		if cur, ok = parseLongDouble(old); !ok {
			c.errReply(errNotFloat)
			return
		}
	}
	if cur.IsInf() || by.IsInf() {
		c.errReply(errNaNInf)
		return
	}
	sum := new(big.Float).SetPrec(longDoublePrec).Add(cur, by)
	if sum.MantExp(nil) > longDoubleMaxExp {
		c.errReply(errNaNInf)
		return
	}
	nv := formatLongDouble(sum)
	oldSize := int64(0)
	if exists {
		oldSize = live(key, old)
	}
	if !c.fits(oldSize, live(key, nv)) {
		return
	}
	if !c.putTagged(key, nv, meta.ExpireAt, encNotInt) {
		return
	}
	c.bulk(nv)
}

// The x87 extended format: a 64-bit mantissa and exponents up to 16384.
const (
	longDoublePrec   = 64
	longDoubleMaxExp = 16384
)

// parseLongDouble parses a number the way Redis's string2ld does with
// strtold: no leading space, the whole string, no NaN, not out of range.
// Infinity parses; adding to it is refused later.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= 5*1024 || isSpace(b[0]) {
		return nil, false
	}
	s := string(b)
	f := new(big.Float).SetPrec(longDoublePrec)
	// Go's base-0 syntax is wider than strtold's: no '_', 0b or 0o.
	if u := strings.ToLower(strings.TrimLeft(s, "+-")); strings.IndexByte(s, '_') >= 0 ||
		strings.HasPrefix(u, "0b") || strings.HasPrefix(u, "0o") {
		return nil, false
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity":
		return f.SetInf(s[0] == '-'), true
	case "nan":
		return nil, false
	}
	if _, _, err := f.Parse(s, 0); err != nil {
		return nil, false
	}
	if e := f.MantExp(nil); e > longDoubleMaxExp || f.Sign() != 0 && e < -16445 {
		return nil, false // strtold's ERANGE: overflow, or underflow to zero
	}
	return f, true
}

func formatLongDouble(f *big.Float) []byte {
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return []byte(s)
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f'
}

// parseInt parses a signed 64-bit decimal exactly as Redis's string2ll: no
// sign but '-', no leading zeros, no spaces, no overflow. It is the engine's
// rule for storing a value as an integer.
func parseInt(b []byte) (int64, bool) { return bitcask.ParseInt(b) }

// eqFold compares an argument with a lower-case ASCII word, ignoring case.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}
