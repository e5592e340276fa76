package bitcask

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Tx is the write transaction of one Update. Its methods may be called only
// from the goroutine running the Update's fn, and only until fn returns.
type Tx struct {
	db *DB
	st *txState
	// gen is st.gen when the Tx was made; the Update's end moves st.gen
	// on, which ends the Tx and every Tx Select made from it. (A Tx stays
	// 24 bytes, the allocation an Update makes.)
	gen uint64
}

func (tx *Tx) isDone() bool { return tx.gen != tx.st.gen }

// Select returns the Tx in database n (0 <= n < NumDBs): the same
// transaction, its reads and writes in another database. Writes through
// any of them commit together, as one batch.
func (tx *Tx) Select(n int) *Tx {
	if n == int(tx.db.num) {
		return tx
	}
	st := tx.st
	if t := st.sel[n]; t != nil && t.gen == tx.gen {
		return t
	}
	t := &Tx{db: tx.db.views[n], st: st, gen: tx.gen}
	st.sel[n] = t
	return t
}

// txIndexAt is the number of operations past which a Tx looks its writes
// up in an index by hash instead of searching them linearly.
const txIndexAt = 16

// txOp is one record written by a Tx and the state of its key after it.
type txOp struct {
	hash     uint64
	seq      uint64
	expireAt int64  // the key's expiry after the op
	recOff   uint32 // offset of the op's record in txState.buf
	klen     uint32
	vlen     uint32 // logical value length after the op
	valOp    int32  // op whose put record holds the value, or -1: the key directory's value
	prev     int32  // the previous op (after the last flush-all) with the same hash, or -1; set when indexed
	// fileOff is the op's record's offset in what the Tx writes: recOff
	// plus the big values (txState.ext) of the ops before it, which are
	// written from their own memory after their header and key.
	fileOff uint32
	big     int32 // 1 + the index of the op's value in txState.ext; 0: the value follows the key in buf
	kind    byte
	vtype   byte
	typ     byte  // the key's type after the op (entry.typ); for an element, its collection's
	tag     byte  // the value's tag after the op (entry.tag)
	exists  bool  // the key exists after the op
	db      uint8 // the database of the op's key
}

// txState is the reusable state of the running Update, owned by the writer
// holding DB.writeMu.
type txState struct {
	buf []byte // the encoded records, written with one write at commit
	ops []txOp // one per record, in order
	// index maps a hash to the latest op with it, chained through
	// txOp.prev, for the ops from the last flush-all up to indexed. It is
	// built only when a lookup needs it (a Tx of plain puts never does),
	// and kept from one Update to the next, cleared, so that it does not
	// allocate once warm.
	index   map[uint64]int32
	indexed int32 // ops below this index are in index
	flush   int32 // index of the last flush-all op, or -1
	// dbFlush is, per database, the index of its last flush-db op, or -1.
	dbFlush [NumDBs]int32
	seq     uint64 // sequence number of the next record
	now     int64  // record timestamp (unix ms)
	// liveDelta is how much LiveBytes changes when the Tx commits. It is
	// computed only once the Tx asks for LiveBytes (a size limit is
	// checked), from then on as ops are added; before that no op pays
	// for looking up the size of what it replaces.
	liveDelta int64
	// dbDelta is liveDelta's part per database (a flush-db cancels its
	// database's).
	dbDelta   [NumDBs]int64
	trackLive bool
	// colls are the collections the Tx read or wrote, by key (see
	// txColl); an entry is stale once the key is written as a whole, and
	// the key's state (txLookup) says so first.
	colls map[txCollKey]*txColl
	// elemDelta is how much the Tx's element writes change LiveBytes.
	// Whole-collection deletes are not subtracted: the size limit is
	// checked before a write, as Redis's maxmemory is, and may only err
	// on the side of refusing.
	elemDelta int64
	ekey      []byte // scratch for an element record's key
	// ext are the values of the Tx's big puts (see bigValueSize), in op
	// order, referenced rather than copied into buf; extLen is their
	// total length.
	ext    []extValue
	extLen int64
	// after run when the Update returns: they release what big values
	// read from the data files kept open and mapped (Splice).
	after []func()
	// gen counts the Updates whose fn returned (Tx.isDone); sel are the
	// running Update's Txs of other databases (Tx.Select).
	gen uint64
	sel [NumDBs]*Tx
}

func (st *txState) reset(seq uint64, now int64) {
	if cap(st.buf) > 1<<20 {
		st.buf = nil // do not pin a huge batch's buffer
	}
	if cap(st.ops) > 4096 {
		st.ops = nil
	}
	st.buf, st.ops = st.buf[:0], st.ops[:0]
	if len(st.index) > 4096 {
		st.index = nil
	} else if len(st.index) > 0 {
		clear(st.index)
	}
	st.indexed = 0
	st.flush = -1
	for i := range st.dbFlush {
		st.dbFlush[i] = -1
	}
	st.dbDelta = [NumDBs]int64{}
	st.sel = [NumDBs]*Tx{}
	st.seq = seq
	st.now = now
	st.liveDelta = 0
	st.trackLive = false
	if len(st.colls) > 64 {
		st.colls = nil
	} else if len(st.colls) > 0 {
		clear(st.colls)
	}
	st.elemDelta = 0
	clear(st.ext) // drop the references to the callers' big values
	st.ext, st.extLen = st.ext[:0], 0
}

// size is the number of bytes the Tx will write.
func (st *txState) size() int64 { return int64(len(st.buf)) + st.extLen }

func (st *txState) opKey(op *txOp) []byte {
	k := op.recOff + headerSize
	return st.buf[k : k+op.klen]
}

// keyState is a key's state as the Tx sees it.
type keyState struct {
	typ      byte // entry.typ
	present  bool // in the key directory or written by the Tx (expired or not)
	expireAt int64
	seq      uint64
	vlen     uint32
	vtype    byte
	tag      byte  // entry.tag
	valOp    int32 // as txOp.valOp
}

func (ks *keyState) visible(now int64) bool {
	return ks.present && (ks.expireAt == 0 || ks.expireAt > now)
}

func (ks *keyState) liveLen(klen int) int64 {
	if !ks.present {
		return 0
	}
	return int64(klen) + int64(ks.vlen)
}

// txCollKey names a collection the Tx touched.
type txCollKey struct {
	db  uint8
	key string
}

// flushedAt is the index of the last op that flushed database d (a
// flush-all or its flush-db), or -1.
func (st *txState) flushedAt(d uint8) int32 { return max(st.flush, st.dbFlush[d]) }

// addLive adds n to the Tx's LiveBytes change, in database d.
func (st *txState) addLive(d uint8, n int64) {
	st.liveDelta += n
	st.dbDelta[d] += n
}

// txLatest returns the index of the Tx's latest op on key in database d
// since the last flush of d, or -1.
func (st *txState) txLatest(d uint8, h uint64, key []byte) int32 {
	lim := st.flushedAt(d)
	if int32(len(st.ops))-st.flush-1 <= txIndexAt {
		for j := int32(len(st.ops)) - 1; j > lim; j-- {
			op := &st.ops[j]
			if op.hash == h && op.db == d && !isElem(op.kind) && bytes.Equal(st.opKey(op), key) {
				return j
			}
		}
		return -1
	}
	if st.index == nil {
		st.index = make(map[uint64]int32, 4*txIndexAt)
	}
	if st.indexed <= st.flush {
		st.indexed = st.flush + 1
	}
	for ; st.indexed < int32(len(st.ops)); st.indexed++ {
		op := &st.ops[st.indexed]
		op.prev = -1
		if isElem(op.kind) {
			continue // named by an element key, never a key's state
		}
		if j, ok := st.index[op.hash]; ok {
			op.prev = j
		}
		st.index[op.hash] = st.indexed
	}
	j, ok := st.index[h]
	for ok && j > lim {
		op := &st.ops[j]
		if op.db == d && bytes.Equal(st.opKey(op), key) {
			return j
		}
		j = op.prev
	}
	return -1
}

// txLookup returns key's state: the Tx's latest write of it, else the key
// directory's entry (unless the Tx flushed everything).
func (db *DB) txLookup(st *txState, h uint64, key []byte) keyState {
	if i := st.txLatest(db.num, h, key); i >= 0 {
		op := &st.ops[i]
		return keyState{present: op.exists, expireAt: op.expireAt, seq: op.seq, vlen: op.vlen, vtype: op.vtype, valOp: op.valOp, typ: op.typ, tag: op.tag}
	}
	if st.flushedAt(db.num) >= 0 {
		return keyState{}
	}
	return db.kdState(h, key)
}

// kdState is key's state in the key directory.
func (db *DB) kdState(h uint64, key []byte) keyState {
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.get(h, key)
	if e == nil {
		return keyState{}
	}
	return keyState{present: true, expireAt: e.expireAt, seq: e.seq, vlen: e.valueLen(), vtype: e.vtype(), valOp: -1, typ: e.typ, tag: e.tag}
}

// recFlags is the flags byte of the Tx's next record in db's database.
func (db *DB) recFlags(st *txState) byte { return st.firstFlag() | dbFlags(db.num) }

// addOp appends the record for op (already encoded at op.recOff), a
// record of db's database, to the op list.
func (db *DB) addOp(st *txState, op txOp) {
	op.prev = -1
	op.fileOff = op.recOff + uint32(st.extLen)
	if op.big > 0 {
		st.extLen += st.ext[op.big-1].len()
	}
	op.db = db.num
	st.ops = append(st.ops, op)
	switch op.kind {
	case kindFlushAll:
		st.flush = int32(len(st.ops) - 1)
		if len(st.index) > 0 {
			clear(st.index)
		}
		if len(st.colls) > 0 {
			clear(st.colls)
		}
		st.elemDelta = 0
	case kindFlushDB:
		st.dbFlush[db.num] = int32(len(st.ops) - 1)
		for k := range st.colls {
			if k.db == db.num {
				delete(st.colls, k)
			}
		}
	}
}

// startLiveTracking computes liveDelta for the ops written so far, replaying
// them in order, and has later ops keep it up to date.
func (db *DB) startLiveTracking(st *txState) {
	if st.trackLive {
		return
	}
	st.trackLive = true
	type after struct {
		present bool
		vlen    uint32
	}
	type dbKey struct {
		db  uint8
		key string
	}
	state := make(map[dbKey]after)
	var flushed [NumDBs]bool
	var delta [NumDBs]int64
	for j := range st.ops {
		op := &st.ops[j]
		switch op.kind {
		case kindFlushAll:
			for d, v := range db.views {
				delta[d] = -v.liveBytes.Load()
				flushed[d] = true
			}
			clear(state)
			continue
		case kindFlushDB:
			delta[op.db] = -db.views[op.db].liveBytes.Load()
			flushed[op.db] = true
			for k := range state {
				if k.db == op.db {
					delete(state, k)
				}
			}
			continue
		}
		if isElem(op.kind) {
			continue // in elemDelta
		}
		key := st.opKey(op)
		var before keyState
		if a, ok := state[dbKey{op.db, string(key)}]; ok {
			before = keyState{present: a.present, vlen: a.vlen}
		} else if !flushed[op.db] {
			before = db.views[op.db].kdState(op.hash, key)
		}
		now := keyState{present: op.exists, vlen: op.vlen}
		delta[op.db] += now.liveLen(len(key)) - before.liveLen(len(key))
		state[dbKey{op.db, string(key)}] = after{op.exists, op.vlen}
	}
	st.dbDelta = delta
	st.liveDelta = 0
	for _, d := range delta {
		st.liveDelta += d
	}
}

func (st *txState) firstFlag() byte {
	if len(st.ops) == 0 {
		return flagBatchFirst
	}
	return 0
}

func (db *DB) checkSizes(key []byte, vlen int) error {
	if len(key) > db.opts.MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), db.opts.MaxKeySize)
	}
	if int64(vlen) > db.opts.MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, vlen, db.opts.MaxValueSize)
	}
	return nil
}

func (db *DB) txPut(st *txState, key, value []byte, expireAt int64, tag byte) error {
	if err := db.checkSizes(key, len(value)); err != nil {
		return err
	}
	if expireAt < 0 {
		return fmt.Errorf("bitcask: negative expiry %d", expireAt)
	}
	if len(value) >= bigValueSize {
		var x extValue
		x.add(piece{b: value})
		return db.txPutBig(st, key, x, expireAt, tag)
	}
	h := xxhash.Sum64(key)
	var prev keyState
	if st.trackLive {
		prev = db.txLookup(st, h, key)
	}
	off := len(st.buf)
	if st.size()+headerSize+int64(len(key))+int64(len(value)) > math.MaxUint32 {
		return ErrTxTooLarge
	}
	st.buf = appendRecord(st.buf, kindPut, db.recFlags(st), st.seq, st.now, expireAt, key, value)
	db.addOp(st, txOp{
		hash: h, seq: st.seq, expireAt: expireAt, recOff: uint32(off), klen: uint32(len(key)),
		vlen: uint32(len(value)), valOp: int32(len(st.ops)), kind: kindPut,
		vtype: st.buf[off+offValType], tag: tag, exists: true,
	})
	st.seq++
	if st.trackLive {
		st.addLive(db.num, int64(len(key)+len(value))-prev.liveLen(len(key)))
	}
	return nil
}

// txRecord appends a record without a value (tombstone, expire, flush-all).
func (db *DB) txRecord(st *txState, kind byte, h uint64, key []byte, expireAt int64, prev keyState, exists bool) error {
	off := len(st.buf)
	if st.size()+headerSize+int64(len(key)) > math.MaxUint32 {
		return ErrTxTooLarge
	}
	st.buf = appendRecord(st.buf, kind, db.recFlags(st), st.seq, st.now, expireAt, key, nil)
	op := txOp{hash: h, seq: st.seq, recOff: uint32(off), klen: uint32(len(key)), kind: kind, exists: exists, valOp: -1}
	if exists {
		op.expireAt, op.vlen, op.vtype, op.valOp, op.typ, op.tag = expireAt, prev.vlen, prev.vtype, prev.valOp, prev.typ, prev.tag
	}
	db.addOp(st, op)
	st.seq++
	return nil
}

func (db *DB) txDelete(st *txState, key []byte) (bool, error) {
	if len(key) > db.opts.MaxKeySize {
		return false, nil // such a key cannot exist
	}
	h := xxhash.Sum64(key)
	prev := db.txLookup(st, h, key)
	if !prev.visible(db.nowMs()) {
		return false, nil
	}
	if err := db.txRecord(st, kindDelete, h, key, 0, prev, false); err != nil {
		return false, err
	}
	st.addLive(db.num, -prev.liveLen(len(key)))
	return true, nil
}

func (db *DB) txSetExpireAt(st *txState, key []byte, expireAt int64) (bool, error) {
	if len(key) > db.opts.MaxKeySize {
		return false, nil
	}
	if expireAt < 0 {
		return false, fmt.Errorf("bitcask: negative expiry %d", expireAt)
	}
	h := xxhash.Sum64(key)
	now := db.nowMs()
	prev := db.txLookup(st, h, key)
	if !prev.visible(now) {
		return false, nil
	}
	if expireAt != 0 && expireAt <= now {
		// An expiry in the past deletes the key, as in Redis.
		if err := db.txRecord(st, kindDelete, h, key, 0, prev, false); err != nil {
			return false, err
		}
		st.addLive(db.num, -prev.liveLen(len(key)))
		return true, nil
	}
	return true, db.txRecord(st, kindExpire, h, key, expireAt, prev, true)
}

// txFlushAll writes a flush-all: a record of database 0 that empties
// every database.
func (db *DB) txFlushAll(st *txState) error {
	if err := db.views[0].txRecord(st, kindFlushAll, 0, nil, 0, keyState{}, false); err != nil {
		return err
	}
	st.liveDelta = 0
	for d, v := range db.views {
		st.dbDelta[d] = -v.liveBytes.Load()
		st.liveDelta += st.dbDelta[d]
	}
	return nil
}

// txFlushDB writes a flush-db of db's database.
func (db *DB) txFlushDB(st *txState) error {
	if err := db.txRecord(st, kindFlushDB, 0, nil, 0, keyState{}, false); err != nil {
		return err
	}
	st.addLive(db.num, -db.liveBytes.Load()-st.dbDelta[db.num])
	return nil
}

// txGet returns key's value as the Tx sees it.
func (db *DB) txGet(st *txState, h uint64, key []byte) ([]byte, Meta, error) {
	ks := db.txLookup(st, h, key)
	if !ks.visible(db.nowMs()) {
		return nil, Meta{}, ErrNotFound
	}
	if ks.typ != 0 {
		return nil, Meta{}, ErrWrongType
	}
	meta := Meta{ExpireAt: ks.expireAt, Seq: ks.seq, Len: int64(ks.vlen), Tag: ks.tag}
	if ks.valOp < 0 {
		// The key directory holds the value; nobody else writes while the
		// writer lock is held, so its entry still has it.
		v, err := db.readCurrent(h, key)
		if err != nil {
			return nil, Meta{}, err
		}
		return v, meta, nil
	}
	op := &st.ops[ks.valOp]
	if op.big > 0 {
		return st.ext[op.big-1].appendTo(nil), meta, nil
	}
	rec := st.buf[op.recOff:]
	stored := rec[headerSize+op.klen : headerSize+op.klen+storedLen(op.vtype, op.vlen)]
	if op.vtype == valTypeInt {
		return strconv.AppendInt(nil, int64(binary.LittleEndian.Uint64(stored)), 10), meta, nil
	}
	return append([]byte{}, stored...), meta, nil
}

func storedLen(vtype byte, vlen uint32) uint32 {
	if vtype == valTypeInt {
		return intValueSize
	}
	return vlen
}

// Get returns key's value, seeing the Tx's own writes.
func (tx *Tx) Get(key []byte) ([]byte, Meta, error) {
	return tx.GetHashed(xxhash.Sum64(key), key)
}

// GetHashed is Get for a key whose Hash the caller has.
func (tx *Tx) GetHashed(h uint64, key []byte) ([]byte, Meta, error) {
	if tx.isDone() {
		return nil, Meta{}, ErrTxDone
	}
	return tx.db.txGet(tx.st, h, key)
}

// Meta returns key's meta, seeing the Tx's own writes, without reading the value.
func (tx *Tx) Meta(key []byte) (Meta, bool) {
	return tx.MetaHashed(xxhash.Sum64(key), key)
}

// MetaHashed is Meta for a key whose Hash the caller has. A wrong h finds
// nothing the Tx did not write.
func (tx *Tx) MetaHashed(h uint64, key []byte) (Meta, bool) {
	if tx.isDone() {
		return Meta{}, false
	}
	ks := tx.db.txLookup(tx.st, h, key)
	if !ks.visible(tx.db.nowMs()) {
		return Meta{}, false
	}
	return Meta{ExpireAt: ks.expireAt, Seq: ks.seq, Len: int64(ks.vlen), Type: Type(ks.typ), Tag: ks.tag}, true
}

// Put writes key with value; expireAt is an absolute unix ms, 0 for none.
// A value of bigValueSize (1 MiB) or more is not copied: it must not change
// until the Update returns.
func (tx *Tx) Put(key, value []byte, expireAt int64) error {
	if tx.isDone() {
		return ErrTxDone
	}
	return tx.db.txPut(tx.st, key, value, expireAt, 0)
}

// PutTagged is Put with a tag the key directory keeps with the value, in
// memory only, for the caller to read back in Meta.Tag (shardnode keeps
// what Redis's OBJECT ENCODING would say there): expiry changes and
// merges keep it, the next Put replaces it, Open starts every key at 0.
func (tx *Tx) PutTagged(key, value []byte, expireAt int64, tag uint8) error {
	if tx.isDone() {
		return ErrTxDone
	}
	return tx.db.txPut(tx.st, key, value, expireAt, tag)
}

// Delete deletes key and reports whether it existed (and was not expired).
func (tx *Tx) Delete(key []byte) (existed bool, err error) {
	if tx.isDone() {
		return false, ErrTxDone
	}
	return tx.db.txDelete(tx.st, key)
}

// SetExpireAt sets key's expiry (absolute unix ms; 0 removes it) without
// rewriting its value, and reports whether the key existed. An expiry
// that has already passed deletes the key.
func (tx *Tx) SetExpireAt(key []byte, expireAt int64) (existed bool, err error) {
	if tx.isDone() {
		return false, ErrTxDone
	}
	return tx.db.txSetExpireAt(tx.st, key, expireAt)
}

// FlushAll deletes every key of every database, including the ones the
// Tx wrote before.
func (tx *Tx) FlushAll() error {
	if tx.isDone() {
		return ErrTxDone
	}
	return tx.db.txFlushAll(tx.st)
}

// FlushDB deletes every key of the Tx's database, including the ones the
// Tx wrote before, with one record.
func (tx *Tx) FlushDB() error {
	if tx.isDone() {
		return ErrTxDone
	}
	return tx.db.txFlushDB(tx.st)
}

// LiveBytes is DB.LiveBytes (every database's) as it will be if the Tx
// commits.
func (tx *Tx) LiveBytes() int64 {
	tx.db.startLiveTracking(tx.st)
	return tx.db.totalLive() + tx.st.liveDelta + tx.st.elemDelta
}

// Update runs fn with the write lock held: writers are serialized, readers
// are not blocked. The records fn writes are applied together, or, if fn
// returns an error, not at all; after a crash they are all present or all
// absent (see the package comment on batches). Under SyncAlways, Update
// returns after an fsync that covers them, waiting for it after the write
// lock is released so that concurrent writers share fsyncs.
//
// fn writes through tx only: calling the DB's own writing methods (Put,
// Delete, FlushAll, Update, Merge, Close) from fn deadlocks. Every read
// method (Get, GetAppend, Exists, MetaOf, Scan, Range, RandomKey, Len,
// LiveBytes, NamespaceStats, Stats, SyncPolicy) may be called; they do not see
// fn's pending writes, tx's methods do.
func (db *DB) Update(fn func(tx *Tx) error) error {
	seq, err := db.UpdateNoWait(fn)
	if err != nil {
		return err
	}
	return db.WaitDurable(seq)
}

// UpdateNoWait is Update without the wait for the fsync: under SyncAlways
// it returns a sequence number that the caller must pass to WaitDurable
// before it acknowledges the writes (0, which WaitDurable returns at once
// for, when there is nothing to wait for). A caller that commits in a
// pipeline, like the shard node's group commit, lets the next batch be
// written while this one's fsync is in flight, and the fsync then covers
// both.
func (db *DB) UpdateNoWait(fn func(tx *Tx) error) (uint64, error) {
	tx := &Tx{db: db}
	return db.updateNoWait(func(st *txState) error {
		tx.st, tx.gen = st, st.gen
		defer func() { st.gen++ }()
		return fn(tx)
	})
}

// WaitDurable returns once the record with sequence number seq (from
// UpdateNoWait) and everything before it is on stable storage, fsyncing
// if no fsync that covers it is in flight; concurrent callers share
// fsyncs. It returns the error of a failed fsync.
func (db *DB) WaitDurable(seq uint64) error {
	if seq == 0 {
		return nil
	}
	return db.waitDurable(seq)
}

// updateSimple is Update for callers inside the package that need no Tx.
func (db *DB) updateSimple(fn func(st *txState) error) error {
	seq, err := db.updateNoWait(fn)
	if err != nil {
		return err
	}
	return db.WaitDurable(seq)
}

// updateNoWait runs fn with the write lock held and commits what it wrote.
// It returns the sequence number of the last record when the caller must
// wait for an fsync (SyncAlways), else 0.
func (db *DB) updateNoWait(fn func(st *txState) error) (uint64, error) {
	db.writeMu.Lock()
	locked := true
	defer func() {
		if locked { // fn panicked: nothing was written; let other writers on
			db.writeMu.Unlock()
		}
	}()
	if db.closed.Load() {
		return 0, ErrClosed
	}
	if err := db.brokenErr(); err != nil {
		return 0, err
	}
	st := &db.txs
	st.reset(db.nextSeq, db.nowMs())
	err := fn(st)
	if err == nil {
		err = db.commit(st)
	}
	clear(st.ext) // a big value is the caller's again: keep no reference
	for _, fn := range st.after {
		fn()
	}
	clear(st.after)
	st.after = st.after[:0]
	last := st.seq - 1
	wrote := err == nil && len(st.ops) > 0
	locked = false
	db.writeMu.Unlock()
	if wrote && db.SyncPolicy() == SyncAlways {
		return last, err
	}
	return 0, err
}

// commit writes the Tx's records with one write and applies them to the
// key directory. Caller holds writeMu.
func (db *DB) commit(st *txState) error {
	if len(st.ops) == 0 {
		return nil
	}
	last := &st.ops[len(st.ops)-1]
	rec := st.buf[last.recOff:]
	if last.big > 0 {
		st.ext[last.big-1].setFlags(rec, rec[offFlags]|flagBatchLast)
	} else {
		setFlags(rec, rec[offFlags]|flagBatchLast)
	}

	var f *dataFile
	var base int64
	var err error
	if len(st.ext) == 0 {
		f, base, err = db.write(st.buf)
	} else {
		f, base, err = db.writeExt(st)
	}
	if err != nil {
		return err
	}
	db.nextSeq = st.seq
	for i := range st.ops {
		op := &st.ops[i]
		key := st.opKey(op)
		db := db.views[op.db]
		switch op.kind {
		case kindPut:
			db.applyPut(op.hash, key, entry{
				hash: op.hash, seq: op.seq, expireAt: op.expireAt, off: uint32(base) + op.fileOff,
				vlen: packVlen(op.vlen, op.vtype), file: f.handle, tag: op.tag,
			}, f)
		case kindDelete:
			db.applyDelete(op.hash, key)
		case kindExpire:
			db.applyExpire(op.hash, key, op.seq, op.expireAt)
		case kindFlushAll:
			for _, v := range db.views {
				v.applyFlushDB()
			}
		case kindFlushDB:
			db.applyFlushDB()
		case kindColl:
			db.applyColl(op.hash, key, entry{
				hash: op.hash, seq: op.seq, off: uint32(base) + op.fileOff, file: f.handle, typ: op.typ,
			}, f)
		case kindElemPut, kindElemDelete:
			ck, field, _ := splitElemKey(key)
			var l *elemLoc
			if op.kind == kindElemPut {
				l = &elemLoc{seq: op.seq, off: uint32(base) + op.fileOff, vlen: packVlen(op.vlen, op.vtype), file: f.handle}
			}
			db.applyElem(op.hash, ck, field, op.seq, l)
		}
	}
	db.written.Store(st.seq - 1)
	return nil
}

// write appends buf to the active file with one pwrite, rotating first when
// buf would take the file past MaxFileSize. It returns the file and the
// offset buf starts at. Caller holds writeMu.
func (db *DB) write(buf []byte) (*dataFile, int64, error) {
	return db.writeWith(int64(len(buf)), func(f *dataFile, off int64) error {
		_, err := f.f.WriteAt(buf, off)
		return err
	})
}

// writeWith is write for n bytes that put writes at off in f.
func (db *DB) writeWith(n int64, put func(f *dataFile, off int64) error) (*dataFile, int64, error) {
	f := db.active
	off := f.size.Load()
	if off > 0 && off+n > db.opts.MaxFileSize {
		if err := db.rotate(); err != nil {
			return nil, 0, err
		}
		f = db.active
		off = 0
	}
	if off+n > math.MaxUint32 {
		return nil, 0, ErrTxTooLarge
	}
	if err := put(f, off); err != nil {
		// Cut whatever part of the batch reached the file so the next
		// batch does not follow garbage; if that fails the file and
		// memory disagree and only a reopen can recover.
		f.alloc = off
		if terr := f.f.Truncate(off); terr != nil {
			db.setBroken(err)
			db.log.Error("write failed and the file could not be truncated back; refusing writes", "file", f.path, "error", err, "truncate_error", terr)
		} else {
			db.log.Error("write failed", "file", f.path, "error", err)
		}
		return nil, 0, fmt.Errorf("bitcask: write %s: %w", f.path, err)
	}
	f.size.Store(off + n)
	f.alloc = max(f.alloc, off+n)
	if err := db.preallocate(f, off+n); err != nil {
		// Only the zeros failed; the records are written. Cut what part
		// of the zeros got there and go on without them.
		db.log.Warn("preallocating data file space failed", "file", f.path, "error", err)
		if terr := f.trimPrealloc(); terr != nil {
			db.setBroken(terr)
		}
	}
	return f, off, nil
}

// maxRotateSync is how much unsynced data rotate fsyncs itself.
const maxRotateSync = 8 << 20

// rotate makes the active file immutable and starts a new one. Caller holds
// writeMu.
func (db *DB) rotate() error {
	old := db.active
	if err := old.trimPrealloc(); err != nil {
		db.setBroken(err)
		return fmt.Errorf("bitcask: truncate %s: %w", old.path, err)
	}
	// With little of the old file unsynced, it is fsynced here, as is the
	// directory once the new file exists: cheap, and the hint writer then
	// finds it synced. With much unsynced (a big value was just written)
	// both are left to the syncer's next round, which fsyncs the rotated
	// files before the active one, then the directory (under always, the
	// next writer's wait; under everysec, within the second): fsyncing
	// here, with the write lock held, stalled every writer for as long as
	// a 500 MB value took to reach the disk.
	deferSync := db.SyncPolicy() == SyncNo || old.size.Load()-old.synced.Load() > maxRotateSync
	if deferSync {
		old.acquire()
		db.activeMu.Lock()
		db.unsynced = append(db.unsynced, old)
		db.activeMu.Unlock()
	} else {
		if err := old.f.Sync(); err != nil {
			db.setBroken(err)
			return fmt.Errorf("bitcask: fsync %s: %w", old.path, err)
		}
		db.fsyncs.Add(1)
	}
	db.filesMu.Lock()
	id := (db.files[len(db.files)-1].id>>idSubBits + 1) << idSubBits
	db.filesMu.Unlock()
	nf, err := openDataFile(db.dir, id, true)
	if err != nil {
		return fmt.Errorf("bitcask: create data file: %w", err)
	}
	// The directory's fsync makes the new file's name durable; on ext4 it
	// commits the journal, which waits for the old file's data too.
	if deferSync {
		db.activeMu.Lock()
		db.dirDirty = true
		db.activeMu.Unlock()
	} else if err := syncDir(db.dir); err != nil {
		nf.release()
		os.Remove(nf.path)
		return fmt.Errorf("bitcask: fsync directory: %w", err)
	}
	db.filesMu.Lock()
	err = db.addFileLocked(nf)
	db.filesMu.Unlock()
	if err != nil {
		nf.release()
		os.Remove(nf.path)
		return err
	}
	db.activeMu.Lock()
	db.active = nf
	db.activeMu.Unlock()
	db.log.Debug("rotated data file", "old", old.path, "new", nf.path)
	db.queueHint(old)
	return nil
}

// applyPut points key at a new put record. Caller holds writeMu.
func (db *DB) applyPut(h uint64, key []byte, ne entry, f *dataFile) {
	s := db.kd.shardFor(h)
	var delta int64
	s.mu.Lock()
	ci, i, found := s.search(h, key)
	if found {
		e := &s.chunks[ci].e[i]
		if e.typ != 0 && ne.typ == 0 {
			db.dropColl(s, key) // a string over a collection
		}
		db.fileAt(e.file).live.Add(-e.recSize(len(key)))
		delta = ne.liveLen(len(key)) - e.liveLen(len(key))
		ne.key = e.key
		s.setExpireAt(e, ne.expireAt)
		*e = ne
	} else {
		s.insertAt(ci, i, ne, key)
		delta = ne.liveLen(len(key))
	}
	s.mu.Unlock()
	f.live.Add(ne.recSize(len(key)))
	db.liveBytes.Add(delta)
	if !found {
		db.keys.Add(1)
	}
	db.indexAdd(key, b2i(!found), delta)
}

// applyDelete removes key. Caller holds writeMu.
func (db *DB) applyDelete(h uint64, key []byte) {
	s := db.kd.shardFor(h)
	s.mu.Lock()
	ci, i, found := s.search(h, key)
	if !found {
		s.mu.Unlock()
		return
	}
	e := &s.chunks[ci].e[i]
	if e.typ != 0 {
		db.dropColl(s, key)
	}
	size, live := e.recSize(len(key)), e.liveLen(len(key))
	db.fileAt(e.file).live.Add(-size)
	s.removeAt(ci, i)
	s.mu.Unlock()
	db.keys.Add(-1)
	db.liveBytes.Add(-live)
	db.indexAdd(key, -1, -live)
}

// applyExpire changes key's expiry. Caller holds writeMu.
func (db *DB) applyExpire(h uint64, key []byte, seq uint64, expireAt int64) {
	s := db.kd.shardFor(h)
	s.mu.Lock()
	if e := s.get(h, key); e != nil {
		s.setExpireAt(e, expireAt)
		e.seq = seq
	}
	s.mu.Unlock()
}

// applyFlushDB empties db's key directory. Caller holds writeMu.
func (db *DB) applyFlushDB() {
	if db.keys.Load() == 0 {
		return
	}
	tab := *db.ftab.Load()
	for i := range db.kd.shards {
		s := &db.kd.shards[i]
		s.mu.Lock()
		// The files' live bytes are every database's: take this one's
		// out entry by entry.
		s.ascend(0, func(e *entry) bool {
			tab[e.file].live.Add(-e.recSize(len(s.keyOf(e))))
			return true
		})
		for k, c := range s.colls {
			c.each(func(f string, l elemLoc) {
				tab[l.file].live.Add(-elemRecSize(len(k), len(f), &l))
			})
		}
		s.reset()
		s.mu.Unlock()
	}
	db.keys.Store(0)
	db.liveBytes.Store(0)
	db.idxMu.Lock()
	clear(db.idx)
	db.idxMu.Unlock()
}

// indexAdd adjusts the per-namespace stats. Caller holds writeMu.
func (db *DB) indexAdd(key []byte, keys, bytes int64) {
	if keys == 0 && bytes == 0 {
		return
	}
	db.idxMu.Lock()
	defer db.idxMu.Unlock()
	var name []byte
	if db.opts.Namespace != nil {
		name = db.opts.Namespace(key)
	}
	st := db.idx[string(name)]
	if st == nil {
		st = &NamespaceStat{}
		db.idx[string(name)] = st
	}
	st.Keys += keys
	st.Bytes += bytes
	if st.Keys <= 0 {
		delete(db.idx, string(name))
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Num is the number of the Tx's database.
func (tx *Tx) Num() int { return int(tx.db.num) }
