package bitcask

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/go-hclog"
)

// Meta is what the key directory knows about a key without reading its value.
type Meta struct {
	ExpireAt int64  // absolute unix ms, 0 = none
	Seq      uint64 // sequence number of the newest record of the key; changes on every write of the key (WATCH)
	Len      int64  // length of the value, as the caller wrote it (STRLEN, size checks); 0 for a collection
	Type     Type   // TypeString, or the collection's type
	// Tag is the string value's tag from Tx.PutTagged: in memory only, 0
	// for a value written by Put and for every key after Open.
	Tag uint8
}

// NamespaceStat is the number of keys of one namespace (see
// Options.Namespace) and the sum of their key and value lengths.
type NamespaceStat struct {
	Keys  int64
	Bytes int64
}

// Stats are the counters INFO persistence reports.
type Stats struct {
	Keys      int64 // keys of every database (expired ones until they are removed)
	LiveBytes int64 // sum of len(key)+len(value) of those keys

	DataFiles int   // data files, including the active one
	DiskBytes int64 // bytes in data files
	DeadBytes int64 // bytes of records no key points at (reclaimable by a merge)

	Merges      int64 // merges completed since Open
	MergeErrors int64 // merges that failed or were abandoned (a failed merge removes its output)
	// MergeDamagedRecords counts live records that merges found damaged
	// (bit rot under a key a hint pointed at) and skipped, as recovery
	// does: each key got its older value, or none. Each is counted once:
	// the merge deletes the file that held it.
	MergeDamagedRecords int64
	ExpiredRemoved      int64 // expired keys removed (at Open, lazily and by the sweep)
	Fsyncs              int64 // fsyncs of data files
	SyncRounds          int64 // group-commit fsyncs (what appendfsync waits for), a part of Fsyncs
	SyncNanos           int64 // time spent in them

	RecoveryTruncated      int64 // records cut from the torn tail of the newest file at Open
	RecoveryTruncatedBytes int64 // bytes cut from it
	RecoverySkipped        int64 // bad records (and incomplete batches) skipped at Open
	RecoverySkippedBytes   int64 // bytes skipped
	HintFilesLoaded        int   // files loaded from a hint at Open
	DataFilesScanned       int   // files scanned record by record at Open

	LastSeq uint64 // sequence number of the newest record
}

// NumDBs is the number of databases a DB holds, Redis's default 16.
const NumDBs = 16

// DB is a Bitcask database: append-only data files of CRC-checked records
// and an in-memory key directory. All methods are safe for concurrent use.
//
// A DB holds NumDBs databases (Redis's SELECT) in the same files: every
// record carries its database's number (see the package comment) and each
// database has a key directory of its own, so equal keys of two databases
// never meet. Open returns database 0; Select returns the DB of another
// one, a view sharing the files, the writer lock and the sequence numbers,
// so one Update writes to several databases atomically (Tx.Select). Key
// lookups, Scan, Range, RandomKey, Len, ExpiringKeys, CountHashRange and
// NamespaceStats are the view's database's; LiveBytes, Stats, Merge, Sync,
// FlushAll and Close are the whole store's.
type DB struct {
	*engine
	num uint8 // the database's number, 0 to NumDBs-1

	kd keydir

	keys      atomic.Int64 // entries in kd
	liveBytes atomic.Int64 // their len(key)+len(value)
	// idx is the database's per-namespace key counts and bytes, guarded
	// by engine.idxMu.
	idx map[string]*NamespaceStat
}

// engine is what the databases of a DB share.
type engine struct {
	views [NumDBs]*DB

	dir  string
	opts Options
	log  hclog.Logger
	lock *os.File // flock'ed LOCK file

	// writeMu serializes writers (Update and everything built on it) and
	// guards the fields below it up to activeMu.
	writeMu sync.Mutex
	active  *dataFile             // file being appended to; also read under activeMu
	nextSeq uint64                // sequence number of the next record
	txs     txState               // reusable state of the running Update
	broken  atomic.Pointer[error] // set when the files no longer match memory; writes fail

	// idxMu guards every database's idx, the per-namespace key counts and
	// bytes; writers update it under writeMu too, but NamespaceStats must
	// not need writeMu (it is called from inside Update).
	idxMu sync.Mutex

	activeMu sync.Mutex // guards active for readers outside writeMu (the syncer), and unsynced
	// unsynced are rotated files not fsynced yet; the syncer's next round
	// fsyncs them before the active file (see rotate).
	unsynced []*dataFile
	// dirDirty: a rotation created a file since the directory was last
	// fsynced; the syncer's next round fsyncs it after the files.
	dirDirty bool

	// filesMu guards files; ftab is replaced copy-on-write under it.
	filesMu sync.Mutex
	files   []*dataFile                 // every data file, ordered by id; the active one is last
	ftab    atomic.Pointer[[]*dataFile] // handle -> file

	// mergeMu serializes merges and hint writing.
	mergeMu sync.Mutex

	written atomic.Uint64 // seq of the newest record written to a data file
	sy      syncer
	policy  atomic.Int32

	merges, mergeErrors, mergeDamaged, expiredRemoved, fsyncs atomic.Int64
	syncRounds, syncNanos                                     atomic.Int64
	recovery                                                  recoveryStats

	closed atomic.Bool
	quit   chan struct{}
	wg     sync.WaitGroup
	hintq  chan *dataFile

	sweep sweepState // expiry sweep position, owned by the sweep goroutine

	// mergeHook, when set by tests, is called at each step of a merge; a
	// non-nil error stops the merge right there, as a crash would.
	mergeHook func(step string) error
	// syncHook, when set by tests, runs before each group-commit fsync.
	syncHook func()
}

type recoveryStats struct {
	truncated, truncatedBytes, skipped, skippedBytes int64
	hintsLoaded, scanned                             int
}

// Select returns database n's DB (0 <= n < NumDBs), which shares
// everything but the keys with db.
func (db *DB) Select(n int) *DB { return db.views[n] }

// Num is the database's number.
func (db *DB) Num() int { return int(db.num) }

// totalLive is LiveBytes summed over the databases.
func (db *DB) totalLive() int64 {
	var n int64
	for _, v := range db.views {
		n += v.liveBytes.Load()
	}
	return n
}

// totalKeys is Len summed over the databases.
func (db *DB) totalKeys() int64 {
	var n int64
	for _, v := range db.views {
		n += v.keys.Load()
	}
	return n
}

func (db *DB) nowMs() int64 { return db.opts.Clock().UnixMilli() }

func (db *DB) setBroken(err error) {
	e := fmt.Errorf("%w: %v", ErrReadOnly, err)
	db.broken.CompareAndSwap(nil, &e)
}

func (db *DB) brokenErr() error {
	if p := db.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// Hash is the hash the key directory files key under: xxhash64 of the
// whole key, the hash shardkv's range map positions keys by. A caller that
// has it already passes it to the ...Hashed methods instead of having it
// computed again.
func Hash(key []byte) uint64 { return xxhash.Sum64(key) }

// Get returns the value of key and its meta. It returns ErrNotFound when the
// key is absent or expired, and an error wrapping ErrCorrupt when the record
// on disk fails its CRC: corrupt bytes are never returned.
func (db *DB) Get(key []byte) ([]byte, Meta, error) {
	v, m, err := db.getAt(nil, xxhash.Sum64(key), key, 0)
	if err == nil && v == nil {
		v = []byte{} // an empty value is present, not nil
	}
	return v, m, err
}

// GetAppend is Get that appends the value to dst instead of allocating.
func (db *DB) GetAppend(dst, key []byte) ([]byte, Meta, error) {
	return db.getAt(dst, xxhash.Sum64(key), key, 0)
}

// GetAppendHashed is GetAppend for a key whose Hash the caller has (a
// wrong h finds nothing), at time now: unix ms by the DB's clock, taken by
// the caller once for a whole command or pipeline as Redis does; 0 reads
// the clock.
func (db *DB) GetAppendHashed(dst []byte, h uint64, key []byte, now int64) ([]byte, Meta, error) {
	return db.getAt(dst, h, key, now)
}

// maxLockedCopy: a record up to this size is read (from the mapping, no
// system call) while the shard's read lock is held, which keeps its file
// open without touching the file's shared reference count: nothing
// releases a file while an entry of a locked shard points into it (Close
// takes every shard lock first; a merge releases its inputs after moving
// every entry off them under the shard locks). Larger records take a
// reference and are read after the lock is released, so that copying them
// never holds up the shard's writers.
const maxLockedCopy = 64 << 10

func (db *DB) getAt(dst []byte, h uint64, key []byte, now int64) ([]byte, Meta, error) {
	return db.getOrStream(dst, h, key, now, nil)
}

// GetAppendOrStream is GetAppendHashed, but a string of StreamMin bytes or
// more is opened as a ValueStream (returned, dst untouched) instead of
// read: one lookup for the small values a GET mostly reads.
func (db *DB) GetAppendOrStream(dst []byte, h uint64, key []byte, now int64) ([]byte, *ValueStream, Meta, error) {
	var vs *ValueStream
	out, m, err := db.getOrStream(dst, h, key, now, &vs)
	return out, vs, m, err
}

// getOrStream is getAt; with stream set, a big string is opened into
// *stream rather than read.
func (db *DB) getOrStream(dst []byte, h uint64, key []byte, now int64, stream **ValueStream) ([]byte, Meta, error) {
	s := db.kd.shardFor(h)
	if now == 0 {
		now = db.nowMs()
	}
	s.mu.RLock()
	if db.closed.Load() {
		s.mu.RUnlock()
		return dst, Meta{}, ErrClosed
	}
	e, verified := s.getUnverified(h, key)
	if e == nil {
		s.mu.RUnlock()
		return dst, Meta{}, ErrNotFound
	}
	if e.expired(now) {
		seq := e.seq
		s.mu.RUnlock()
		db.expireLazy(h, key, seq) // searches again, comparing keys
		return dst, Meta{}, ErrNotFound
	}
	if e.typ != 0 {
		wrong := verified || bytes.Equal(s.keyOf(e), key)
		s.mu.RUnlock()
		if wrong {
			return dst, Meta{}, ErrWrongType
		}
		return dst, Meta{}, ErrNotFound
	}
	loc := *e
	f := db.fileAt(loc.file)
	var v []byte
	var err error
	if loc.recSize(len(key)) <= maxLockedCopy {
		v, err = db.readValue(dst, f, &loc, key)
		if err != nil && !verified && !bytes.Equal(s.keyOf(e), key) {
			// The one entry with key's hash is another key's (a hash
			// collision; its record holds that key): key is absent.
			// Only if the entry is key's is a failed read an error.
			err = ErrNotFound
		}
		s.mu.RUnlock()
	} else {
		if !verified && !bytes.Equal(s.keyOf(e), key) {
			s.mu.RUnlock()
			return dst, Meta{}, ErrNotFound
		}
		if stream != nil && loc.vtype() == valTypeBytes && int64(loc.valueLen()) >= StreamMin {
			s.mu.RUnlock()
			vs, err := db.openValue(h, key, now)
			if vs != nil || err != nil {
				*stream = vs
				return dst, loc.meta(), err
			}
			// Shorter by now: read it as any other.
			return db.getAt(dst, h, key, now)
		}
		f.acquire()
		s.mu.RUnlock()
		v, err = db.readValue(dst, f, &loc, key)
		f.release()
	}
	if err != nil {
		return dst, Meta{}, err
	}
	return v, loc.meta(), nil
}

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readValue appends to dst the value of the put record loc points at, as
// the caller wrote it, after checking the record: header, CRC, kind, value
// type and key. The record is read from the file's mapping, or with pread
// when it lies beyond it. The caller keeps f open (a reference, or the
// shard lock, see maxLockedCopy).
func (db *DB) readValue(dst []byte, f *dataFile, loc *entry, key []byte) ([]byte, error) {
	size := loc.recSize(len(key))
	off := int64(loc.off)
	if mm := f.mapping(db.opts.MaxFileSize); off+size <= int64(len(mm)) {
		out, err := appendMapped(dst, mm[off:off+size:off+size], f, loc, key)
		if size >= bigValueSize {
			dropPages(mm, off, size)
		}
		return out, err
	}
	if size >= bigValueSize {
		if out, ok, err := readBigMapped(dst, f, loc, key, off, size); ok {
			return out, err
		}
	}
	var buf []byte
	if size <= 64<<10 {
		pooled := readBufPool.Get().(*[]byte)
		if int64(cap(*pooled)) < size {
			*pooled = make([]byte, size)
		}
		buf = (*pooled)[:size]
		defer readBufPool.Put(pooled)
	} else {
		buf = make([]byte, size)
	}
	if _, err := f.f.ReadAt(buf, off); err != nil {
		return dst, fmt.Errorf("bitcask: read %s at %d: %w", f.path, loc.off, err)
	}
	return appendChecked(dst, buf, f, loc, key)
}

// appendMapped is appendChecked over mapped memory: an I/O error while the
// kernel pages the record in is a fault, which becomes an error here
// instead of killing the process.
func appendMapped(dst, rec []byte, f *dataFile, loc *entry, key []byte) ([]byte, error) {
	out := dst
	err := mappedRead(func() (err error) {
		out, err = appendChecked(dst, rec, f, loc, key)
		return err
	})
	var fe faultError
	if errors.As(err, &fe) {
		return dst, fmt.Errorf("bitcask: read %s at %d: %v", f.path, loc.off, fe.v)
	}
	return out, err
}

// appendChecked decodes the record in rec, checks it is the put record of
// key that loc describes, and appends its value as the caller wrote it.
func appendChecked(dst, rec []byte, f *dataFile, loc *entry, key []byte) ([]byte, error) {
	// rec's length assumes the record holds key; check that first, so that
	// a record of another key (see getUnverified) is not read past its end.
	if binary.LittleEndian.Uint32(rec[offKeyLen:]) != uint32(len(key)) {
		return dst, &keyMismatchError{path: f.path, off: loc.off}
	}
	h, k, v, err := decodeRecord(rec)
	if err != nil {
		return dst, fmt.Errorf("%s at offset %d: %w", f.path, loc.off, err)
	}
	if !bytes.Equal(k, key) {
		return dst, &keyMismatchError{path: f.path, off: loc.off}
	}
	if h.kind != kindPut || h.valType != loc.vtype() {
		return dst, fmt.Errorf("%w: %s at offset %d does not hold the key's value", ErrCorrupt, f.path, loc.off)
	}
	if h.valType == valTypeInt {
		return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(v)), 10), nil
	}
	return append(dst, v...), nil
}

// keyMismatchError is a valid record that holds another key than the one
// the key directory entry pointing at it is for: ErrCorrupt, unless the
// entry was not known to be the key's (getUnverified).
type keyMismatchError struct {
	path string
	off  uint32
}

func (e *keyMismatchError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d does not hold the key's value", ErrCorrupt, e.path, e.off)
}

func (e *keyMismatchError) Unwrap() error { return ErrCorrupt }

// acquireEntry returns a copy of key's entry, expired or not, and its
// file with a reference the caller releases.
func (db *DB) acquireEntry(h uint64, key []byte) (entry, *dataFile, bool) {
	s := db.kd.shardFor(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.get(h, key)
	if e == nil {
		return entry{}, nil, false
	}
	f := db.fileAt(e.file)
	f.acquire()
	return *e, f, true
}

// readCurrent reads the value of key's entry whether or not it has
// expired; a Tx uses it when its own writes changed the expiry.
func (db *DB) readCurrent(h uint64, key []byte) ([]byte, error) {
	loc, f, ok := db.acquireEntry(h, key)
	if !ok {
		return nil, ErrNotFound
	}
	v, err := db.readValue(nil, f, &loc, key)
	f.release()
	if err == nil && v == nil {
		v = []byte{}
	}
	return v, err
}

// lookup returns a copy of key's entry if it is present and not expired at
// now (0: read the clock).
func (db *DB) lookup(h uint64, key []byte, now int64) (entry, bool) {
	s := db.kd.shardFor(h)
	if now == 0 {
		now = db.nowMs()
	}
	s.mu.RLock()
	e := s.get(h, key)
	if e == nil {
		s.mu.RUnlock()
		return entry{}, false
	}
	if e.expired(now) {
		seq := e.seq
		s.mu.RUnlock()
		db.expireLazy(h, key, seq)
		return entry{}, false
	}
	c := *e
	s.mu.RUnlock()
	return c, true
}

// Exists reports whether key is present and not expired.
func (db *DB) Exists(key []byte) bool {
	_, ok := db.lookup(xxhash.Sum64(key), key, 0)
	return ok
}

// MetaOf returns key's meta without reading its value.
func (db *DB) MetaOf(key []byte) (Meta, bool) {
	return db.MetaOfHashed(xxhash.Sum64(key), key, 0)
}

// MetaOfHashed is MetaOf for a key whose Hash the caller has (a wrong h
// finds nothing), at time now as for GetAppendHashed.
func (db *DB) MetaOfHashed(h uint64, key []byte, now int64) (Meta, bool) {
	e, ok := db.lookup(h, key, now)
	if !ok {
		return Meta{}, false
	}
	return e.meta(), true
}

// Put writes key with value; expireAt is an absolute unix ms, 0 for none.
func (db *DB) Put(key, value []byte, expireAt int64) error {
	return db.updateSimple(func(st *txState) error { return db.txPut(st, key, value, expireAt, 0) })
}

// Delete deletes key and reports whether it existed (and was not expired).
func (db *DB) Delete(key []byte) (existed bool, err error) {
	err = db.updateSimple(func(st *txState) error {
		existed, err = db.txDelete(st, key)
		return err
	})
	return existed, err
}

// FlushAll deletes every key of every database.
func (db *DB) FlushAll() error {
	return db.updateSimple(func(st *txState) error { return db.txFlushAll(st) })
}

// FlushDB deletes every key of db's database, with one record.
func (db *DB) FlushDB() error {
	return db.updateSimple(func(st *txState) error { return db.txFlushDB(st) })
}

// keyBuf collects keys (and metas) under a shard lock so that callbacks run
// without it: a callback may then call back into the DB.
type keyBuf struct {
	data  []byte
	ends  []int
	metas []Meta
}

func (kb *keyBuf) reset() { kb.data, kb.ends, kb.metas = kb.data[:0], kb.ends[:0], kb.metas[:0] }

func (kb *keyBuf) add(key []byte, e *entry) {
	kb.data = append(kb.data, key...)
	kb.ends = append(kb.ends, len(kb.data))
	kb.metas = append(kb.metas, e.meta())
}

func (kb *keyBuf) key(i int) []byte {
	start := 0
	if i > 0 {
		start = kb.ends[i-1]
	}
	return kb.data[start:kb.ends[i]:kb.ends[i]]
}

// Scan visits live keys whose xxhash64 is >= cursor in hash order: at least
// count keys (fewer only at the end), always every key that shares the last
// visited hash. It returns the hash after the last visited key, or 0 when no
// key remains. Every key present for a whole scan (cursor 0 until 0 comes
// back) is visited at least once. fn's key is valid only during the call;
// fn may call into the DB.
func (db *DB) Scan(cursor uint64, count int, fn func(key []byte)) (next uint64) {
	if db.closed.Load() {
		return 0
	}
	if count < 1 {
		count = 1
	}
	now := db.nowMs()
	var kb keyBuf
	visited := 0
	var last uint64
	for si := int(cursor >> (64 - shardBits)); si < numShards; si++ {
		s := &db.kd.shards[si]
		from := uint64(0)
		if si == int(cursor>>(64-shardBits)) {
			from = cursor
		}
		more := false
		kb.reset()
		s.mu.RLock()
		s.ascend(from, func(e *entry) bool {
			if e.expired(now) {
				return true
			}
			if visited >= count && e.hash != last {
				more = true
				return false
			}
			kb.add(s.keyOf(e), e)
			visited++
			last = e.hash
			return true
		})
		s.mu.RUnlock()
		for i := range kb.ends {
			fn(kb.key(i))
		}
		if more {
			return last + 1 // last < a later hash, so no overflow
		}
	}
	return 0
}

// Range calls fn for every live key with its meta, in hash order, until fn
// returns false. fn's key is valid only during the call; fn may call into
// the DB (writes it makes may or may not be seen by the rest of the walk).
func (db *DB) Range(fn func(key []byte, meta Meta) bool) {
	if db.closed.Load() {
		return
	}
	now := db.nowMs()
	var kb keyBuf
	for si := range db.kd.shards {
		s := &db.kd.shards[si]
		kb.reset()
		s.mu.RLock()
		s.ascend(0, func(e *entry) bool {
			if !e.expired(now) {
				kb.add(s.keyOf(e), e)
			}
			return true
		})
		s.mu.RUnlock()
		for i := range kb.ends {
			if !fn(kb.key(i), kb.metas[i]) {
				return
			}
		}
	}
}

// RandomKey returns a random live key, or false when there is none.
func (db *DB) RandomKey() ([]byte, bool) {
	if db.closed.Load() || db.keys.Load() == 0 {
		return nil, false
	}
	now := db.nowMs()
	// Start at a random hash and take the first live key at or after it,
	// wrapping around once.
	r := rand.Uint64()
	first := int(r >> (64 - shardBits))
	for n := 0; n <= numShards; n++ {
		si := (first + n) % numShards
		from := uint64(0)
		if n == 0 {
			from = r
		}
		s := &db.kd.shards[si]
		var key []byte
		s.mu.RLock()
		s.ascend(from, func(e *entry) bool {
			if e.expired(now) {
				return true
			}
			key = append([]byte{}, s.keyOf(e)...)
			return false
		})
		s.mu.RUnlock()
		if key != nil {
			return key, true
		}
	}
	return nil, false
}

// Len is the number of keys in the database's key directory: live keys, plus expired
// ones not yet removed by the sweep or a lazy removal.
func (db *DB) Len() int { return int(db.keys.Load()) }

// LastSeq is the sequence number of the newest record written: every write
// of a key gives it a greater Meta.Seq than LastSeq was before.
func (db *DB) LastSeq() uint64 { return db.written.Load() }

// ExpiringKeys is the number of the keys Len counts that have an expiry
// (Redis's INFO keyspace "expires"). Each shard keeps its count, so this
// costs a read lock per shard, not a pass over the keys.
func (db *DB) ExpiringKeys() int {
	n := 0
	for i := range db.kd.shards {
		s := &db.kd.shards[i]
		s.mu.RLock()
		n += s.nexp
		s.mu.RUnlock()
	}
	return n
}

// CountHashRange counts like Len and ExpiringKeys, restricted to the keys
// whose hash is in [lo, hi] (inclusive, so that the last hash can be
// named). A shard node whose range was narrowed by a forced reassignment
// counts its own keys with it.
func (db *DB) CountHashRange(lo, hi uint64) (keys, expiring int) {
	if lo > hi {
		return 0, 0
	}
	const span = 64 - shardBits
	for i := lo >> span; i <= hi>>span; i++ {
		s := &db.kd.shards[i]
		first := i << span
		last := first | (1<<span - 1)
		s.mu.RLock()
		if lo <= first && last <= hi {
			keys += s.n
			expiring += s.nexp
		} else {
			k, e := s.countRange(lo, hi)
			keys += k
			expiring += e
		}
		s.mu.RUnlock()
	}
	return keys, expiring
}

// LiveBytes is the sum of len(key)+len(value) over the keys of every
// database (the store's size, which a size limit bounds).
func (db *DB) LiveBytes() int64 { return db.totalLive() }

// NamespaceStats returns, per namespace (Options.Namespace of the keys), its
// key count and key+value bytes, counted like Len and LiveBytes. Without a
// Namespace function every key counts under "".
func (db *DB) NamespaceStats() map[string]NamespaceStat {
	db.idxMu.Lock()
	defer db.idxMu.Unlock()
	out := make(map[string]NamespaceStat, len(db.idx))
	for k, v := range db.idx {
		out[k] = *v
	}
	return out
}

// Stats returns the DB's counters.
func (db *DB) Stats() Stats {
	st := Stats{
		Keys:                   db.totalKeys(),
		LiveBytes:              db.totalLive(),
		Merges:                 db.merges.Load(),
		MergeErrors:            db.mergeErrors.Load(),
		MergeDamagedRecords:    db.mergeDamaged.Load(),
		ExpiredRemoved:         db.expiredRemoved.Load(),
		Fsyncs:                 db.fsyncs.Load(),
		SyncRounds:             db.syncRounds.Load(),
		SyncNanos:              db.syncNanos.Load(),
		RecoveryTruncated:      db.recovery.truncated,
		RecoveryTruncatedBytes: db.recovery.truncatedBytes,
		RecoverySkipped:        db.recovery.skipped,
		RecoverySkippedBytes:   db.recovery.skippedBytes,
		HintFilesLoaded:        db.recovery.hintsLoaded,
		DataFilesScanned:       db.recovery.scanned,
		LastSeq:                db.written.Load(),
	}
	for _, f := range db.snapshotFiles() {
		st.DataFiles++
		st.DiskBytes += f.size.Load()
		st.DeadBytes += f.dead()
	}
	return st
}

// Close stops background work, fsyncs the active file, writes its hint
// file (the file is immutable until the next Open, which removes the hint
// before it appends), closes every file and releases the directory lock. Reads and writes
// in flight finish first; later calls return ErrClosed.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(db.quit)
	db.wg.Wait()
	db.mergeMu.Lock() // a Merge call sees quit and stops soon
	defer db.mergeMu.Unlock()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if db.brokenErr() == nil {
		db.sy.mu.Lock()
		for db.sy.running {
			db.sy.cond.Wait()
		}
		db.sy.mu.Unlock()
		for _, f := range db.takeUnsynced() {
			keep(f.f.Sync())
			f.release()
		}
		if db.takeDirDirty() {
			keep(syncDir(db.dir))
		}
		keep(db.active.trimPrealloc())
		err := db.active.f.Sync()
		keep(err)
		db.fsyncs.Add(1)
		if err == nil {
			// Writers still waiting for an fsync are covered by this one.
			db.sy.mu.Lock()
			db.sy.durable = db.written.Load()
			db.sy.cond.Broadcast()
			db.sy.mu.Unlock()
		}
		if !db.opts.DisableHints {
			// Hints the background writer did not get to, then the
			// active file's, so that the next Open reads only hints.
			for len(db.hintq) > 0 {
				f := <-db.hintq
				if slicesContains(db.files, f) {
					if err := db.writeHintFromScan(f); err != nil {
						db.log.Warn("writing hint file failed", "file", f.path, "error", err)
					}
				}
			}
			keep(db.writeHintFromScan(db.active))
		}
	}
	// A Get copies small values from a file's mapping under its shard's
	// read lock, checking closed first (see maxLockedCopy): once every
	// shard lock was taken after closed was set, no such read is left.
	for _, v := range db.views {
		for i := range v.kd.shards {
			v.kd.shards[i].mu.Lock()
			//lint:ignore SA2001 an empty critical section waits for the readers
			v.kd.shards[i].mu.Unlock()
		}
	}
	db.filesMu.Lock()
	for _, f := range db.files {
		f.release()
	}
	db.files = nil
	db.filesMu.Unlock()
	keep(unlockDir(db.lock))
	return firstErr
}
