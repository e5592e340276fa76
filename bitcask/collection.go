package bitcask

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Collections. A hash is a root record (kind collection) under its key
// and one record per field write (element put, element tombstone) under
// the element key (elemKey: the hash's key, length-prefixed, then the
// field). The root's sequence number is the collection's generation: an
// element record older than the live root's generation is not the
// collection's, whatever it says. So deleting, overwriting or expiring a
// whole collection is the one record that removes its root (a tombstone,
// a put, a flush-all, an expiry), and a collection made again under the
// same key gets a new root whose generation hides every element of the
// old one, on disk and after any merge.
//
// The key directory keeps the root as an entry with a typ (SCAN, DBSIZE,
// TYPE, expiry and the namespaces see one key), and the elements in
// memory beside it (shard.colls): field -> where its newest put record
// is. Values stay on disk.

// Type is a key's type as Meta reports it.
type Type uint8

// Key types.
const (
	TypeString Type = 0
	TypeHash   Type = keyTypeHash
	TypeSet    Type = keyTypeSet
	TypeZSet   Type = keyTypeZSet
	TypeList   Type = keyTypeList
)

// ErrWrongType is returned when a key holds another type than the
// operation works on.
var ErrWrongType = errors.New("bitcask: key holds the wrong type of value")

// coll is one collection's elements. Guarded by its shard's mu.
type coll struct {
	gen   uint64             // sequence number of the root record
	elems map[string]elemLoc // element -> its newest put record, for a type with no packed form of its own (none now: hashes and sorted sets use zm)
	set   *memberSet         // a set's members or a hash's fields instead (set.go)
	zm    *zmembers          // a sorted set's members instead (zmembers.go)
	z     *zindex            // a sorted set's members by (score, member) (zset.go)
	l     *ltree             // a list's elements in order (list.go)
	bytes int64              // sum of len(element)+len(value): the elements' part of LiveBytes
}

// elemLoc is where an element's value is.
type elemLoc struct {
	seq  uint64 // sequence number of the element's put record
	off  uint32 // offset of the record in its file
	vlen uint32 // logical value length, packed with vlenInt as entry.vlen
	file uint16 // handle of the data file
}

func (l *elemLoc) valueLen() uint32 { return l.vlen &^ vlenInt }

func (l *elemLoc) vtype() byte {
	if l.vlen&vlenInt != 0 {
		return valTypeInt
	}
	return valTypeBytes
}

// elemRecSize is the size on disk of an element's put record.
func elemRecSize(klen, flen int, l *elemLoc) int64 {
	n := int64(uvarintLen(uint64(klen)) + klen + flen)
	if l.vlen&vlenInt != 0 {
		return headerSize + n + intValueSize
	}
	return headerSize + n + int64(l.vlen)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// dropColl forgets key's collection and its counts. Caller holds writeMu
// and s.mu; the root entry goes separately.
func (db *DB) dropColl(s *shard, key []byte) {
	c := s.colls[string(key)]
	if c == nil {
		return
	}
	delete(s.colls, string(key))
	tab := *db.ftab.Load()
	c.each(func(f string, l elemLoc) {
		tab[l.file].live.Add(-elemRecSize(len(key), len(f), &l))
	})
	db.liveBytes.Add(-c.bytes)
	db.indexAdd(key, 0, -c.bytes)
}

// applyColl makes key a new, empty collection whose root is ne. Caller
// holds writeMu.
func (db *DB) applyColl(h uint64, key []byte, ne entry, f *dataFile) {
	s := db.kd.shardFor(h)
	s.mu.Lock()
	if e := s.get(h, key); e != nil && e.typ != 0 {
		db.dropColl(s, key)
	}
	if s.colls == nil {
		s.colls = make(map[string]*coll)
	}
	s.colls[string(key)] = newColl(ne.seq, Type(ne.typ), 0)
	s.mu.Unlock()
	db.applyPut(h, key, ne, f)
}

// applyElem applies an element put (l non-nil) or tombstone of key's
// collection, and gives the root the record's sequence number (WATCH sees
// every write). Caller holds writeMu.
func (db *DB) applyElem(h uint64, key, field []byte, seq uint64, l *elemLoc) {
	s := db.kd.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(h, key)
	c := s.colls[string(key)]
	if e == nil || e.typ == 0 || c == nil {
		return // a Tx writes elements only under a live root
	}
	e.seq = seq
	tab := *db.ftab.Load()
	var delta int64
	var mk string // a sorted set's member string, shared with its ordered index
	if c.z != nil {
		mk = db.zindexApply(c, key, field, l)
	}
	if old, ok := c.lookup(field); ok {
		tab[old.file].live.Add(-elemRecSize(len(key), len(field), &old))
		delta -= int64(len(field)) + int64(old.valueLen())
		if l == nil {
			c.remove(field)
		}
	}
	if l != nil {
		if mk != "" {
			c.storeString(mk, *l)
		} else {
			c.store(field, *l)
		}
		tab[l.file].live.Add(elemRecSize(len(key), len(field), l))
		delta += int64(len(field)) + int64(l.valueLen())
	}
	c.bytes += delta
	db.liveBytes.Add(delta)
	db.indexAdd(key, 0, delta)
}

// collOf returns key's collection if key is a live collection of type t
// at now (now < 0: whether or not it expired, for a Tx that decided
// that); ErrWrongType if it holds another type, ErrNotFound if absent.
// Caller holds s.mu.
func (db *DB) collOf(s *shard, h uint64, key []byte, t Type, now int64) (*coll, error) {
	e := s.get(h, key)
	if e == nil || now >= 0 && e.expired(now) {
		return nil, ErrNotFound
	}
	if Type(e.typ) != t {
		return nil, ErrWrongType
	}
	c := s.colls[string(key)]
	if c == nil {
		return nil, ErrNotFound
	}
	return c, nil
}

// readElem appends the value of key's element field whose put record is
// at l. Caller holds its shard's read lock, which keeps the file open.
func (db *DB) readElem(dst []byte, key, field []byte, l *elemLoc) ([]byte, error) {
	f := db.fileAt(l.file)
	size := elemRecSize(len(key), len(field), l)
	var buf []byte
	if mm := f.mapping(db.opts.MaxFileSize); int64(l.off)+size <= int64(len(mm)) {
		// Decoded in place: the mapping stays while the lock is held,
		// and the value is copied out below.
		buf = mm[l.off : int64(l.off)+size : int64(l.off)+size]
	} else {
		buf = make([]byte, size)
		if _, err := f.f.ReadAt(buf, int64(l.off)); err != nil {
			return dst, err
		}
	}
	h, k, v, err := decodeRecord(buf)
	if err != nil {
		return dst, err
	}
	ck, fk, _ := splitElemKey(k)
	if h.kind != kindElemPut || !bytes.Equal(ck, key) || !bytes.Equal(fk, field) {
		return dst, ErrCorrupt
	}
	if h.valType == valTypeInt {
		return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(v)), 10), nil
	}
	return append(dst, v...), nil
}

// HashGet appends the value of field of the hash at key to dst. It
// returns ErrNotFound when the key or the field is absent, ErrWrongType
// when key holds another type. now is as for GetAppendHashed.
func (db *DB) HashGet(dst []byte, h uint64, key, field []byte, now int64) ([]byte, error) {
	return db.elemGet(dst, h, key, field, TypeHash, now)
}

// elemGet is HashGet for a collection of type t.
func (db *DB) elemGet(dst []byte, h uint64, key, field []byte, t Type, now int64) ([]byte, error) {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, t, now)
	if err != nil {
		return dst, err
	}
	l, ok := c.lookup(field)
	if !ok {
		return dst, ErrNotFound
	}
	return db.readElem(dst, key, field, &l)
}

// HashField is a field of a hash and, when asked for, its value.
type HashField struct {
	Field, Value []byte
	Len          int64 // the value's length
}

// HashGetAll returns the fields of the hash at key (with their values
// when values is set), in no particular order; ErrNotFound when absent.
func (db *DB) HashGetAll(h uint64, key []byte, values bool, now int64) ([]HashField, error) {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, TypeHash, now)
	if err != nil {
		return nil, err
	}
	out := make([]HashField, 0, c.count())
	c.each(func(f string, l elemLoc) {
		if err != nil {
			return
		}
		hf := HashField{Field: []byte(f), Len: int64(l.valueLen())}
		if values {
			hf.Value, err = db.readElem(nil, key, hf.Field, &l)
		}
		out = append(out, hf)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HashLen returns the number of fields of the hash at key.
func (db *DB) HashLen(h uint64, key []byte, now int64) (int, error) {
	if now == 0 {
		now = db.nowMs()
	}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := db.collOf(s, h, key, TypeHash, now)
	if err != nil {
		return 0, err
	}
	return c.count(), nil
}

// txColl is a collection as a Tx sees it: the Tx's writes over the key
// directory's elements (base).
type txColl struct {
	base     bool             // the key directory's elements are the collection's, under the Tx's writes
	elems    map[string]int32 // element -> the Tx's op writing it last (put or tombstone)
	typ      Type             // the collection's
	n        int              // elements after the Tx's writes
	maxLen   int              // longest value after the Tx's writes, an upper bound (OBJECT ENCODING)
	addBytes int64            // bytes of the members (fields) a set's (hash's) Tx added: its size bound
	z        *zindex          // a sorted set's members as the Tx sees them, once it wrote and ranged it (zset.go)
	zo       *zoverlay        // or, instead of z, the key directory's index under the Tx's writes (zoverlay.go)
	sr       *setTxRand       // a set's members the Tx added and count it removed, once it drew from it (set.go)
	lk       *lkeys           // a list's order keys the Tx wrote (elems' keys), sorted (list.go)
}

// txCollOf returns key's collection as the Tx sees it, nil when key is
// absent (or expired), ErrWrongType when it holds another type.
func (db *DB) txCollOf(st *txState, h uint64, key []byte, t Type) (*txColl, error) {
	ks := db.txLookup(st, h, key)
	if !ks.visible(st.now) {
		return nil, nil
	}
	if Type(ks.typ) != t {
		return nil, ErrWrongType
	}
	if tc := st.colls[txCollKey{db.num, string(key)}]; tc != nil {
		return tc, nil
	}
	// Not written by the Tx since it was made: the key directory's.
	tc := &txColl{base: true, elems: make(map[string]int32), typ: t}
	s := db.kd.shardFor(h)
	s.mu.RLock()
	if c := s.colls[string(key)]; c != nil {
		tc.n = c.count()
	}
	s.mu.RUnlock()
	if st.colls == nil {
		st.colls = make(map[txCollKey]*txColl)
	}
	st.colls[txCollKey{db.num, string(key)}] = tc
	return tc, nil
}

// txElem returns the value of the element field of a collection as the
// Tx sees it.
func (db *DB) txElem(st *txState, tc *txColl, h uint64, key, field []byte) ([]byte, bool, error) {
	if j, ok := tc.elems[string(field)]; ok {
		op := &st.ops[j]
		if op.kind != kindElemPut {
			return nil, false, nil
		}
		rec := st.buf[op.recOff:]
		stored := rec[headerSize+op.klen : headerSize+op.klen+storedLen(op.vtype, op.vlen)]
		if op.vtype == valTypeInt {
			return strconv.AppendInt(nil, int64(binary.LittleEndian.Uint64(stored)), 10), true, nil
		}
		return append([]byte{}, stored...), true, nil
	}
	if !tc.base {
		return nil, false, nil
	}
	if tc.typ == TypeSet {
		// A member has no value: the key directory answers alone.
		ok, err := db.SetIsMember(h, key, field, -1)
		if errors.Is(err, ErrNotFound) {
			return nil, false, nil
		}
		return nil, ok, err
	}
	v, err := db.elemGet(nil, h, key, field, tc.typ, -1)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// txElemRecord appends an element record of key's collection.
func (db *DB) txElemRecord(st *txState, tc *txColl, kind byte, h uint64, key, field, value []byte) error {
	off := len(st.buf)
	klen := uvarintLen(uint64(len(key))) + len(key) + len(field)
	if st.size()+headerSize+int64(klen)+int64(len(value)) > math.MaxUint32 {
		return ErrTxTooLarge
	}
	st.ekey = elemKey(st.ekey[:0], key, field)
	st.buf = appendRecordOf(st.buf, kind, db.recFlags(st), byte(tc.typ), st.seq, st.now, 0, st.ekey, value)
	db.addOp(st, txOp{
		hash: h, seq: st.seq, recOff: uint32(off), klen: uint32(klen), vlen: uint32(len(value)),
		valOp: -1, kind: kind, vtype: st.buf[off+offValType], typ: byte(tc.typ), exists: kind == kindElemPut,
	})
	tc.elems[string(field)] = int32(len(st.ops) - 1)
	st.seq++
	return nil
}

// HashGet returns the value of field of the hash at key as the Tx sees
// it; ok is false when the key or the field is absent.
func (tx *Tx) HashGet(key, field []byte) (value []byte, ok bool, err error) {
	if tx.isDone() {
		return nil, false, ErrTxDone
	}
	h := xxhash.Sum64(key)
	tc, err := tx.db.txCollOf(tx.st, h, key, TypeHash)
	if tc == nil || err != nil {
		return nil, false, err
	}
	return tx.db.txElem(tx.st, tc, h, key, field)
}

// HashLen returns the number of fields of the hash at key (0 when absent).
func (tx *Tx) HashLen(key []byte) (int, error) {
	if tx.isDone() {
		return 0, ErrTxDone
	}
	tc, err := tx.db.txCollOf(tx.st, xxhash.Sum64(key), key, TypeHash)
	if tc == nil || err != nil {
		return 0, err
	}
	return tc.n, nil
}

// HashSet sets field of the hash at key to value, making the hash if key
// is absent (ErrWrongType if it holds another type), and reports whether
// the field is new. It writes one record (two for a new hash: its root
// first).
func (tx *Tx) HashSet(key, field, value []byte) (created bool, err error) {
	_, had, _, err := tx.elemSet(key, field, value, TypeHash)
	return !had && err == nil, err
}

// elemSet sets element field of the collection of type t at key to
// value, making the collection if key is absent, and returns the
// element's old value, whether it had one, and the collection.
func (tx *Tx) elemSet(key, field, value []byte, t Type) (old []byte, had bool, tc *txColl, err error) {
	if tx.isDone() {
		return nil, false, nil, ErrTxDone
	}
	db, st := tx.db, tx.st
	if err := db.checkSizes(key, len(value)); err != nil {
		return nil, false, nil, err
	}
	if err := db.checkSizes(field, 0); err != nil {
		return nil, false, nil, err
	}
	if n := uvarintLen(uint64(len(key))) + len(key) + len(field); n > maxKeySizeLimit {
		// The element record's key holds both: the format's limit, not
		// the caller's, is what a record must fit.
		return nil, false, nil, fmt.Errorf("%w: key and field of %d bytes, format limit %d", ErrKeyTooLarge, n, maxKeySizeLimit)
	}
	h := xxhash.Sum64(key)
	tc, err = db.txCollOf(st, h, key, t)
	if err != nil {
		return nil, false, nil, err
	}
	if tc == nil {
		if tc, err = db.txNewColl(st, h, key, t); err != nil {
			return nil, false, nil, err
		}
	}
	old, had, err = db.txElem(st, tc, h, key, field)
	if err != nil {
		return nil, false, nil, err
	}
	if !had && t == TypeHash {
		// The fields are packed as a set's members, with the same bound.
		if db.setBytes(h, key, tc)+int64(len(field)) > maxSetBytes {
			return nil, false, nil, fmt.Errorf("%w: a hash's fields past %d bytes", ErrValueTooLarge, int64(maxSetBytes))
		}
		tc.addBytes += int64(len(field))
	}
	if err := db.txElemRecord(st, tc, kindElemPut, h, key, field, value); err != nil {
		return nil, false, nil, err
	}
	tc.maxLen = max(tc.maxLen, len(value))
	if had {
		st.elemDelta += int64(len(value)) - int64(len(old))
	} else {
		tc.n++
		st.elemDelta += int64(len(field)) + int64(len(value))
	}
	return old, had, tc, nil
}

// txNewColl writes the root record of a new collection of type t at key,
// absent or expired before.
func (db *DB) txNewColl(st *txState, h uint64, key []byte, t Type) (*txColl, error) {
	off := len(st.buf)
	if st.size()+headerSize+int64(len(key)) > math.MaxUint32 {
		return nil, ErrTxTooLarge
	}
	if st.trackLive {
		prev := db.txLookup(st, h, key)
		st.addLive(db.num, int64(len(key))-prev.liveLen(len(key)))
	}
	st.buf = appendRecordOf(st.buf, kindColl, db.recFlags(st), byte(t), st.seq, st.now, 0, key, nil)
	db.addOp(st, txOp{hash: h, seq: st.seq, recOff: uint32(off), klen: uint32(len(key)), valOp: -1,
		kind: kindColl, typ: byte(t), exists: true})
	st.seq++
	tc := &txColl{elems: make(map[string]int32), typ: t}
	if st.colls == nil {
		st.colls = make(map[txCollKey]*txColl)
	}
	st.colls[txCollKey{db.num, string(key)}] = tc
	return tc, nil
}

// HashDelete deletes field of the hash at key and reports whether it was
// there. Deleting the last field deletes the key, with one tombstone.
func (tx *Tx) HashDelete(key, field []byte) (bool, error) {
	_, had, _, err := tx.elemDelete(key, field, TypeHash)
	return had, err
}

// elemDelete deletes element field of the collection of type t at key
// and returns its old value, whether it was there, and the collection.
func (tx *Tx) elemDelete(key, field []byte, t Type) (old []byte, had bool, tc *txColl, err error) {
	if tx.isDone() {
		return nil, false, nil, ErrTxDone
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	tc, err = db.txCollOf(st, h, key, t)
	if tc == nil || err != nil {
		return nil, false, nil, err
	}
	old, had, err = db.txElem(st, tc, h, key, field)
	if !had || err != nil {
		return nil, false, nil, err
	}
	st.elemDelta -= int64(len(field)) + int64(len(old))
	if tc.n == 1 {
		_, err := db.txDelete(st, key)
		return old, true, tc, err
	}
	if err := db.txElemRecord(st, tc, kindElemDelete, h, key, field, nil); err != nil {
		return nil, false, nil, err
	}
	tc.n--
	return old, true, tc, nil
}

// HashGetAll returns the fields of the hash at key as the Tx sees it
// (with their values when values is set), in no particular order.
func (tx *Tx) HashGetAll(key []byte, values bool) ([]HashField, error) {
	if tx.isDone() {
		return nil, ErrTxDone
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	tc, err := db.txCollOf(st, h, key, TypeHash)
	if tc == nil || err != nil {
		return nil, err
	}
	var out []HashField
	if tc.base {
		base, err := db.HashGetAll(h, key, values, -1)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		for _, f := range base {
			if _, mine := tc.elems[string(f.Field)]; !mine {
				out = append(out, f)
			}
		}
	}
	fields := make([]string, 0, len(tc.elems))
	for f := range tc.elems {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		v, ok, err := db.txElem(st, tc, h, key, []byte(f))
		if err != nil {
			return nil, err
		}
		if ok {
			hf := HashField{Field: []byte(f), Len: int64(len(v))}
			if values {
				hf.Value = v
			}
			out = append(out, hf)
		}
	}
	return out, nil
}

// HashMaxLen returns an upper bound of the longest value of the hash at
// key as the Tx sees it (OBJECT ENCODING's size classes).
func (tx *Tx) HashMaxLen(key []byte) (int, error) {
	fs, err := tx.HashGetAll(key, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range fs {
		n = max(n, int(f.Len))
	}
	return n, nil
}

// finishColls gives every live root read at Open its elements: the
// newest record of each element, if it is a put newer than the root.
// Element records of a key without a live root, or older than its
// root, belonged to a collection deleted, overwritten or expired since:
// they are dead, and a merge does not copy them.
func (db *DB) finishColls(rs *replayDB) {
	if rs == nil {
		return
	}
	tab := *db.ftab.Load()
	for k, rc := range rs.colls {
		key := []byte(k)
		h := xxhash.Sum64(key)
		s := db.kd.shardFor(h)
		e := s.get(h, key)
		if e == nil || e.typ == 0 {
			rc.release()
			continue
		}
		rc.live()
		c := newColl(rc.gen, Type(e.typ), len(rc.recs))
		switch {
		case c.l != nil:
			buildList(c, rc)
		case c.set != nil:
			c.set.build(rc)
		case c.zm != nil:
			c.zm.build(rc)
		default:
			for i := range rc.recs {
				r := &rc.recs[i]
				c.storeString(string(rc.field(r)), r.loc())
			}
		}
		if c.z != nil {
			db.zindexBuild(c, key, rc)
		}
		rc.release()
		c.each(func(f string, l elemLoc) {
			c.bytes += int64(len(f)) + int64(l.valueLen())
			tab[l.file].live.Add(elemRecSize(len(key), len(f), &l))
		})
		if s.colls == nil {
			s.colls = make(map[string]*coll)
		}
		s.colls[k] = c
		db.liveBytes.Add(c.bytes)
		db.indexAdd(key, 0, c.bytes)
	}
	rs.colls = nil
}
