package shardnode

import (
	"math"
	"strconv"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/rangemap"
)

func cmdDel(c *client, args [][]byte) {
	var n int64
	for _, key := range args[1:] {
		ok, err := c.st.del(key)
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

// EXISTS and TOUCH: how many of the keys exist, a key named twice counted
// twice.
func cmdExists(c *client, args [][]byte) {
	var n int64
	for _, key := range args[1:] {
		if _, ok := c.st.meta(key); ok {
			n++
		}
	}
	c.intReply(n)
}

func cmdType(c *client, args [][]byte) {
	if m, ok := c.st.meta(args[1]); ok {
		c.simple(typeName(m.Type))
	} else {
		c.simple("none")
	}
}

func cmdExpire(c *client, args [][]byte) {
	switch {
	case eqFold(args[0], "expire"):
		expireGeneric(c, args, c.now, true)
	case eqFold(args[0], "pexpire"):
		expireGeneric(c, args, c.now, false)
	case eqFold(args[0], "expireat"):
		expireGeneric(c, args, 0, true)
	default:
		expireGeneric(c, args, 0, false)
	}
}

// EXPIRE-family flags.
const (
	expireNX = 1 << iota
	expireXX
	expireGT
	expireLT
)

// expireGeneric is Redis's expireGenericCommand: options, then the time,
// then the key.
func expireGeneric(c *client, args [][]byte, base int64, seconds bool) {
	key := args[1]
	flags := 0
	for _, a := range args[3:] {
		switch {
		case eqFold(a, "nx"):
			flags |= expireNX
		case eqFold(a, "xx"):
			flags |= expireXX
		case eqFold(a, "gt"):
			flags |= expireGT
		case eqFold(a, "lt"):
			flags |= expireLT
		default:
			c.errReply("ERR Unsupported option " + string(a))
			return
		}
	}
	if flags&expireNX != 0 && flags&(expireXX|expireGT|expireLT) != 0 {
		c.errReply("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if flags&expireGT != 0 && flags&expireLT != 0 {
		c.errReply("ERR GT and LT options at the same time are not compatible")
		return
	}
	when, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if seconds {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			c.invalidExpire(string(lowerASCII(args[0])))
			return
		}
		when *= 1000
	}
	if when > math.MaxInt64-base {
		c.invalidExpire(string(lowerASCII(args[0])))
		return
	}
	when += base
	meta, exists := c.st.meta(key)
	if !exists {
		c.intReply(0)
		return
	}
	cur := meta.ExpireAt // 0: no expiry, Redis's -1
	switch {
	case flags&expireNX != 0 && cur != 0,
		flags&expireXX != 0 && cur == 0,
		flags&expireGT != 0 && (cur == 0 || when <= cur),
		flags&expireLT != 0 && cur != 0 && when >= cur:
		c.intReply(0)
		return
	}
	var err error
	if when <= c.now {
		_, err = c.st.del(key)
	} else {
		_, err = c.st.setExpireAt(key, when)
	}
	if err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(1)
}

// lowerASCII folds only ASCII letters, leaving any other byte as it is (as
// Redis echoes option names in its errors).
func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		out[i] = ch
	}
	return out
}

// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 without an
// expiry.
func cmdTTL(c *client, args [][]byte) {
	meta, ok := c.st.meta(args[1])
	switch {
	case !ok:
		c.intReply(-2)
		return
	case meta.ExpireAt == 0:
		c.intReply(-1)
		return
	}
	switch {
	case eqFold(args[0], "ttl"):
		c.intReply((max(meta.ExpireAt-c.now, 0) + 500) / 1000)
	case eqFold(args[0], "pttl"):
		c.intReply(max(meta.ExpireAt-c.now, 0))
	case eqFold(args[0], "expiretime"):
		// Rounded to the nearest second without the overflow that
		// (ms+500)/1000 has near the largest expiry.
		sec := meta.ExpireAt / 1000
		if meta.ExpireAt%1000 >= 500 {
			sec++
		}
		c.intReply(sec)
	default:
		c.intReply(meta.ExpireAt)
	}
}

func cmdPersist(c *client, args [][]byte) {
	meta, ok := c.st.meta(args[1])
	if !ok || meta.ExpireAt == 0 {
		c.intReply(0)
		return
	}
	if _, err := c.st.setExpireAt(args[1], 0); err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(1)
}

// typeName is TYPE's name for a key type.
func typeName(t bitcask.Type) string {
	switch t {
	case bitcask.TypeHash:
		return "hash"
	case bitcask.TypeSet:
		return "set"
	case bitcask.TypeZSet:
		return "zset"
	case bitcask.TypeList:
		return "list"
	}
	return "string"
}

// value is a key's value of any type, as RENAME and COPY move it.
type value struct {
	str    []byte
	fields []bitcask.HashField // a hash's, when typ is TypeHash
	mems   [][]byte            // a set's, when typ is TypeSet
	zset   []bitcask.ZMember   // a sorted set's, when typ is TypeZSet
	list   [][]byte            // a list's elements in order, when typ is TypeList
	typ    bitcask.Type
	meta   bitcask.Meta
}

// getValue reads key's value whatever its type, replying the storage
// error if there is one.
func (c *client) getValue(key []byte) (v value, ok, failed bool) {
	m, ok := c.st.meta(key)
	if !ok {
		return v, false, false
	}
	v.typ, v.meta = m.Type, m
	if m.Type == bitcask.TypeSet {
		ms, ok := c.setMembers(key)
		v.mems = ms
		return v, ms != nil, !ok
	}
	if m.Type == bitcask.TypeZSet {
		ms, err := c.st.zrange(key, &bitcask.ZRange{Start: 0, Stop: -1, Count: -1})
		if err != nil {
			c.storeErr(err)
			return v, false, true
		}
		v.zset = ms
		return v, ms != nil, false
	}
	if m.Type == bitcask.TypeList {
		err := c.st.lwalk(key, 0, false, func(_ int, e []byte) bool {
			v.list = append(v.list, append([]byte{}, e...))
			return true
		})
		if err != nil {
			c.storeErr(err)
			return v, false, true
		}
		return v, v.list != nil, false
	}
	if m.Type == bitcask.TypeHash {
		fs, err := c.st.hgetall(key, true)
		if err != nil {
			c.storeErr(err)
			return v, false, true
		}
		v.fields = fs
		return v, fs != nil, false
	}
	v.str, v.meta, ok, failed = c.get(key)
	return v, ok, failed
}

// size is what the value counts for in the size limit under key.
func (v *value) size(key []byte) int64 {
	n := int64(len(key)) + int64(len(v.str))
	for _, f := range v.fields {
		n += int64(len(f.Field)) + int64(len(f.Value))
	}
	for _, m := range v.mems {
		n += int64(len(m))
	}
	for _, m := range v.zset {
		n += int64(len(m.Member)) + 8
	}
	for _, e := range v.list {
		n += 8 + int64(len(e)) // its order key and value
	}
	return n
}

// putValue writes v under key (replacing what key held) with expiry at.
func (c *client) putValue(key []byte, v *value, at int64) bool {
	if v.typ == bitcask.TypeString {
		return c.putTagged(key, v.str, at, v.meta.Tag)
	}
	if _, err := c.st.del(key); err != nil {
		c.storeErr(err)
		return false
	}
	if at != 0 && at <= c.now {
		return true
	}
	for _, f := range v.fields {
		if _, err := c.st.hset(key, f.Field, f.Value); err != nil {
			c.storeErr(err)
			return false
		}
	}
	for _, m := range v.mems {
		if _, err := c.st.sadd(key, m); err != nil {
			c.storeErr(err)
			return false
		}
	}
	for _, m := range v.zset {
		if _, err := c.st.zadd(key, m.Member, m.Score); err != nil {
			c.storeErr(err)
			return false
		}
	}
	if len(v.list) > 0 {
		if _, err := c.st.lpush(key, v.list, false, false); err != nil {
			c.storeErr(err)
			return false
		}
	}
	if at != 0 {
		if _, err := c.st.setExpireAt(key, at); err != nil {
			c.storeErr(err)
			return false
		}
	}
	return true
}

// RENAME and RENAMENX: the value and its expiry move to the new name.
func cmdRename(c *client, args [][]byte) {
	nx := eqFold(args[0], "renamenx")
	src, dst := args[1], args[2]
	v, ok, failed := c.getValue(src)
	if failed {
		return
	}
	if !ok {
		c.errReply(errNoSuchKey)
		return
	}
	if string(src) == string(dst) {
		if nx {
			c.intReply(0)
		} else {
			c.ok()
		}
		return
	}
	if nx {
		if _, exists := c.st.meta(dst); exists {
			c.intReply(0)
			return
		}
	}
	if !c.putValue(dst, &v, v.meta.ExpireAt) {
		return
	}
	if _, err := c.st.del(src); err != nil {
		c.storeErr(err)
		return
	}
	if nx {
		c.intReply(1)
	} else {
		c.ok()
	}
}

// COPY source destination [DB destination-db] [REPLACE]
func cmdCopy(c *client, args [][]byte) {
	src, dst := args[1], args[2]
	replace := false
	db := c.sess.DB()
	for i := 3; i < len(args); i++ {
		switch {
		case eqFold(args[i], "replace"):
			replace = true
		case eqFold(args[i], "db") && i+1 < len(args):
			n, ok := parseInt(args[i+1])
			if !ok || n < math.MinInt32 || n > math.MaxInt32 {
				c.errReply(errNotInteger)
				return
			}
			if n < 0 || n >= bitcask.NumDBs {
				c.errReply(errDBRange)
				return
			}
			db = int(n)
			i++
		default:
			c.errReply(errSyntax)
			return
		}
	}
	if db == c.sess.DB() && string(src) == string(dst) {
		c.errReply(errSameObject)
		return
	}
	v, ok, failed := c.getValue(src)
	if failed {
		return
	}
	if !ok {
		c.intReply(0)
		return
	}
	copied, failed := int64(0), false
	c.inDB(db, func() {
		old, exists, bad := c.getValue(dst)
		switch {
		case bad:
			failed = true
		case exists && !replace:
		default:
			oldSize := int64(0)
			if exists {
				oldSize = old.size(dst)
			}
			v.meta.Tag = copyTag(v.str, v.meta.Tag)
			failed = !c.fits(oldSize, v.size(dst)) || !c.putValue(dst, &v, v.meta.ExpireAt)
			copied = 1
		}
	})
	if !failed {
		c.intReply(copied)
	}
}

// MOVE key db: the key, its value and its expiry move to database db of
// the same node (a key's shard is decided by its bytes only), in the
// command's one transaction: after a crash it is in exactly one of them.
func cmdMove(c *client, args [][]byte) {
	n, ok := parseInt(args[2])
	switch {
	case !ok:
		c.errReply(errNotInteger)
		return
	case n < math.MinInt32 || n > math.MaxInt32:
		c.errReply("ERR value is out of range, value must between -2147483648 and 2147483647")
		return
	}
	if n < 0 || n >= bitcask.NumDBs {
		c.errReply(errDBRange)
		return
	}
	if int(n) == c.sess.DB() {
		c.errReply(errSameObject)
		return
	}
	key := args[1]
	v, ok, failed := c.getValue(key)
	if failed {
		return
	}
	if !ok {
		c.intReply(0)
		return
	}
	exists, failed := false, false
	c.inDB(int(n), func() {
		if _, exists = c.st.meta(key); !exists {
			failed = !c.putValue(key, &v, v.meta.ExpireAt)
		}
	})
	if failed {
		return
	}
	if exists {
		c.intReply(0)
		return
	}
	if _, err := c.st.del(key); err != nil {
		c.storeErr(err)
		return
	}
	c.intReply(1)
}

// inDB runs fn with the command's store in database n: the same
// transaction, so what fn writes commits with the rest of the command.
// Only a write command (a txStore) may call it.
func (c *client) inDB(n int, fn func()) {
	tx := c.txs.tx
	c.txs.tx = tx.Select(n)
	defer func() { c.txs.tx = tx }()
	fn()
}

// owned reports whether key falls in this node's range; keys left behind
// by a forced reassignment are hidden from SCAN, KEYS and RANDOMKEY, and
// not counted by DBSIZE and INFO keyspace (keyCounts).
func (c *client) owned(a *Assignment, key []byte) bool {
	return c.migRecv || a.owns(key) // a move's stream sees the staged keys (migrate.go)
}

// scanOpts are the options of SCAN and the *SCAN commands.
type scanOpts struct {
	count   int64
	pattern []byte // nil: every name ("*" is read as nil)
	typ     []byte // SCAN's TYPE, nil for any
}

// scanOptions reads [MATCH pattern] [COUNT count] (and [TYPE type] when
// withType) with Redis's errors; false once the error is replied.
func (c *client) scanOptions(args [][]byte, withType bool) (scanOpts, bool) {
	o := scanOpts{count: 10}
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.errReply(errSyntax)
			return o, false
		}
		switch {
		case eqFold(args[i], "count"):
			n, ok := parseInt(args[i+1])
			if !ok {
				c.errReply(errNotInteger)
				return o, false
			}
			if n < 1 {
				c.errReply(errSyntax)
				return o, false
			}
			o.count = n
		case eqFold(args[i], "match"):
			o.pattern = args[i+1]
			if len(o.pattern) == 1 && o.pattern[0] == '*' {
				o.pattern = nil
			}
		case withType && eqFold(args[i], "type"):
			o.typ = args[i+1]
		default:
			c.errReply(errSyntax)
			return o, false
		}
	}
	return o, true
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. The cursor is the
// next key hash to visit (docs/INTERNALS.md).
func cmdScan(c *client, args [][]byte) {
	cursor, ok := rangemap.ParseCursor(args[1])
	if !ok {
		c.errReply(errInvalidCursor)
		return
	}
	opts, ok := c.scanOptions(args[2:], true)
	if !ok {
		return
	}
	count, pattern, typ := opts.count, opts.pattern, opts.typ
	if count > 1<<20 {
		count = 1 << 20
	}
	a := c.srv.assign.Load()
	var keys [][]byte
	db := c.db()
	next := db.Scan(cursor, int(count), func(key []byte) {
		if !c.owned(a, key) || pattern != nil && !glob.Match(pattern, key, false) {
			return
		}
		if typ != nil {
			// Redis compares the name without case; an unknown name
			// matches nothing.
			if m, ok := db.MetaOf(key); !ok || !eqFold(typ, typeName(m.Type)) {
				return
			}
		}
		keys = append(keys, append([]byte(nil), key...))
	})
	c.array(2)
	var buf [20]byte
	c.bulk(strconv.AppendUint(buf[:0], next, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdKeys(c *client, args [][]byte) {
	pattern := args[1]
	all := len(pattern) == 1 && pattern[0] == '*'
	a := c.srv.assign.Load()
	var keys [][]byte
	c.db().Range(func(key []byte, _ bitcask.Meta) bool {
		if c.owned(a, key) && (all || glob.Match(pattern, key, false)) {
			keys = append(keys, append([]byte(nil), key...))
		}
		return true
	})
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdRandomKey(c *client, args [][]byte) {
	a := c.srv.assign.Load()
	for tries := 0; tries < 100; tries++ {
		key, ok := c.db().RandomKey()
		if !ok {
			break
		}
		if c.owned(a, key) {
			c.bulk(key)
			return
		}
	}
	c.null()
}

func cmdDBSize(c *client, args [][]byte) {
	keys, _ := c.srv.keyCounts(c.db())
	c.intReply(int64(keys))
}

// FLUSHDB and FLUSHALL [ASYNC | SYNC]: one record either way (flush-db of
// the connection's database, flush-all of every one).
func cmdFlush(c *client, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "async") && !eqFold(args[1], "sync") {
		c.errReply(errSyntax)
		return
	}
	flush := c.st.flushAll
	if eqFold(args[0], "flushdb") {
		flush = c.st.flushDB
	}
	if err := flush(); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// helpReply is the array of status lines HELP subcommands reply.
func (c *client) helpReply(lines []string) {
	c.array(len(lines))
	for _, l := range lines {
		c.simple(l)
	}
}

// keyCounts returns the number of keys in the node's range and how many of
// them have an expiry, counted like bitcask's Len (expired keys not yet
// removed included, as Redis's DBSIZE counts them). Keys a forced
// reassignment left outside the range stay on disk but are not the node's.
func (s *Server) keyCounts(db *bitcask.DB) (keys, expiring int) {
	a := s.assign.Load()
	if a == nil || a.whole() {
		return db.Len(), db.ExpiringKeys()
	}
	if !a.HashTags {
		for _, r := range a.Ranges {
			k, e := db.CountHashRange(rangemap.HashBounds(r.Start, r.End))
			keys += k
			expiring += e
		}
		return keys, expiring
	}
	// Under hash tags a key's placement is not its key directory hash, so
	// the node's keys are not one hash range: count them one by one.
	db.Range(func(key []byte, m bitcask.Meta) bool {
		if a.owns(key) {
			keys++
			if m.ExpireAt != 0 {
				expiring++
			}
		}
		return true
	})
	return keys, expiring
}
