package shardnode

import (
	"errors"

	"github.com/shardkv/shardkv/bitcask"
)

// store is what a command handler reads and writes: a bitcask transaction
// (txStore) when the command runs inside an Update, or the database itself
// (dbStore) for reads outside one. Write handlers always get a txStore.
type store interface {
	get(key []byte) (value []byte, meta bitcask.Meta, ok bool, err error)
	// getAppend appends key's value to dst: reads that only reply the
	// value use it with a reused buffer.
	getAppend(dst, key []byte) ([]byte, bool, error)
	meta(key []byte) (bitcask.Meta, bool)
	// getRange appends bytes [start, end) of key's string value, which
	// the caller clamped to its length (bitcask's GetRange: a big value is
	// not read whole).
	getRange(dst, key []byte, start, end int64) ([]byte, error)
	// getAppendOrStream is getAppend, but a big value is opened as a
	// stream for a reply written a part at a time (replymem.go) instead of
	// appended; in a transaction, only a value it has not written itself.
	getAppendOrStream(dst, key []byte) ([]byte, *bitcask.ValueStream, bool, error)
	put(key, value []byte, expireAt int64) error
	// putTagged is put with the value's encoding tag (encoding.go).
	putTagged(key, value []byte, expireAt int64, tag uint8) error
	// splice writes part into key's value at off, zero-padded past its
	// end, keeping its expiry, tagged with tag, and returns the new length
	// (bitcask.Tx.Splice: SETRANGE, APPEND).
	splice(key []byte, off int64, part []byte, tag uint8) (int64, error)
	del(key []byte) (bool, error)
	setExpireAt(key []byte, expireAt int64) (bool, error)
	flushAll() error // every database
	flushDB() error  // the store's database
	liveBytes() int64

	// Hashes. A key holding another type gives bitcask.ErrWrongType; an
	// absent key or field is not an error.
	hget(key, field []byte) (value []byte, ok bool, err error)
	hset(key, field, value []byte) (created bool, err error)
	hdel(key, field []byte) (bool, error)
	hlen(key []byte) (int, error)
	// hgetall returns the fields (with values if asked for), nil when the
	// key is absent.
	hgetall(key []byte, values bool) ([]bitcask.HashField, error)

	setStore // sets (cmd_set.go)
	zstore   // sorted sets (store_zset.go)
	listStore
}

type txStore struct {
	tx *bitcask.Tx
	rc *readCache // nil when off
	c  *client    // for the hash of the command's key (client.keyHash)
	// watches is told of every key a write modifies (watch.go).
	watches *watchRegistry
}

func (t *txStore) get(key []byte) ([]byte, bitcask.Meta, bool, error) {
	v, m, err := t.tx.GetHashed(t.c.keyHash(key), key)
	return found(v, m, err)
}
func (t *txStore) getAppendOrStream(dst, key []byte) ([]byte, *bitcask.ValueStream, bool, error) {
	if t.rc == nil {
		vs, err := t.tx.OpenValueHashed(t.c.keyHash(key), key)
		if vs != nil || err != nil {
			if errors.Is(err, bitcask.ErrNotFound) {
				return dst, nil, false, nil
			}
			return dst, vs, err == nil, err
		}
	}
	out, ok, err := t.getAppend(dst, key)
	return out, nil, ok, err
}
func (t *txStore) getAppend(dst, key []byte) ([]byte, bool, error) {
	if t.rc != nil {
		// The cache holds committed values only; a key this transaction
		// wrote has a sequence number no committed record has, so it
		// misses.
		m, ok := t.meta(key)
		if !ok {
			return dst, false, nil
		}
		if out, hit := t.rc.get(dst, key, m.Seq); hit {
			return out, true, nil
		}
	}
	v, _, ok, err := t.get(key)
	return append(dst, v...), ok, err
}
func (t *txStore) getRange(dst, key []byte, start, end int64) ([]byte, error) {
	return t.tx.GetRange(dst, key, start, end)
}
func (t *txStore) meta(key []byte) (bitcask.Meta, bool) {
	return t.tx.MetaHashed(t.c.keyHash(key), key)
}

// Writes leave the read cache alone: a write gives the key a new sequence
// number, so its cached value is never served again and ages out. Each
// write that modifies a key touches it for WATCH; a delete or an expiry
// change that found no key modified nothing, as in Redis.
func (t *txStore) put(key, value []byte, expireAt int64) error {
	return t.putTagged(key, value, expireAt, 0)
}
func (t *txStore) putTagged(key, value []byte, expireAt int64, tag uint8) error {
	err := t.tx.PutTagged(key, value, expireAt, tag)
	if err == nil {
		t.touch(key)
	}
	return err
}
func (t *txStore) splice(key []byte, off int64, part []byte, tag uint8) (int64, error) {
	n, err := t.tx.Splice(key, off, part, tag)
	if err == nil {
		t.touch(key)
	}
	return n, err
}
func (t *txStore) del(key []byte) (bool, error) {
	ok, err := t.tx.Delete(key)
	if ok {
		t.touch(key)
	}
	return ok, err
}
func (t *txStore) setExpireAt(key []byte, expireAt int64) (bool, error) {
	ok, err := t.tx.SetExpireAt(key, expireAt)
	if ok {
		t.touchAs(key, migMeta, 0, nil)
	}
	return ok, err
}

// touch tells WATCH that key, of the transaction's database, is modified.
// It also wakes the clients blocked on key (blocking.go), and queues the
// key whole for a move's stream of its range (migrate.go).
func (t *txStore) touch(key []byte) { t.touchAs(key, migWhole, 0, nil) }

// touchAs is touch for a write that changed what how says of key (for a
// move's stream: the key, an element of a collection of type typ, its
// expiry).
func (t *txStore) touchAs(key []byte, how int, typ bitcask.Type, elem []byte) {
	t.watches.touch(t.tx.Num(), key)
	t.c.srv.blocks.touch(t.tx.Num(), key)
	t.c.srv.mig.touchedAs(t.c.srv, t.tx.Num(), key, how, typ, elem)
	t.c.srv.repl.touched(t.c, t.tx.Num(), key)
}

// elemHow is how a write of an element of key, about to be made, changes
// it for a move's stream (touchAs): an element, or the whole key when the
// write creates it (during a move only, the check costs a lookup): the
// target may still hold a key of that name the source let expire.
func (t *txStore) elemHow(key []byte) int {
	if t.c.srv.mig.active() {
		if _, exists := t.meta(key); !exists {
			return migWhole
		}
	}
	return migElem
}

func (t *txStore) flushAll() error {
	if t.rc != nil {
		t.rc.reset()
	}
	t.touchFlushed(-1)
	t.c.srv.mig.flushed(-1)
	t.c.srv.repl.flushed(t.c, -1)
	return t.tx.FlushAll()
}

func (t *txStore) flushDB() error {
	// The read cache needs nothing: its entries are checked against the
	// key's sequence number, which a flushed key no longer has.
	t.touchFlushed(t.tx.Num())
	t.c.srv.mig.flushed(t.tx.Num())
	t.c.srv.repl.flushed(t.c, t.tx.Num())
	return t.tx.FlushDB()
}

// touchFlushed touches the watched keys a flush of database db (every
// database for db < 0) deletes: only those are modified, Redis 7 leaves a
// watcher of a missing key alone.
func (t *txStore) touchFlushed(db int) {
	t.watches.touchIf(db, func(db int, key []byte) bool {
		_, ok := t.tx.Select(db).Meta(key)
		return ok
	})
}
func (t *txStore) liveBytes() int64 { return t.tx.LiveBytes() }

func (t *txStore) hget(key, field []byte) ([]byte, bool, error) { return t.tx.HashGet(key, field) }
func (t *txStore) hset(key, field, value []byte) (bool, error) {
	how := t.elemHow(key)
	created, err := t.tx.HashSet(key, field, value)
	if err == nil {
		t.touchAs(key, how, bitcask.TypeHash, field)
	}
	return created, err
}
func (t *txStore) hdel(key, field []byte) (bool, error) {
	ok, err := t.tx.HashDelete(key, field)
	if ok {
		t.touchAs(key, migElem, bitcask.TypeHash, field)
	}
	return ok, err
}
func (t *txStore) hlen(key []byte) (int, error) { return t.tx.HashLen(key) }
func (t *txStore) hgetall(key []byte, values bool) ([]bitcask.HashField, error) {
	return t.tx.HashGetAll(key, values)
}

type dbStore struct {
	db *bitcask.DB
	rc *readCache // nil when off
	c  *client    // for the hash of the command's key (client.keyHash)
}

func (d *dbStore) get(key []byte) ([]byte, bitcask.Meta, bool, error) {
	v, m, err := d.db.GetAppendHashed(nil, d.c.keyHash(key), key, d.c.now)
	if err == nil && v == nil {
		v = []byte{}
	}
	return found(v, m, err)
}
func (d *dbStore) getAppendOrStream(dst, key []byte) ([]byte, *bitcask.ValueStream, bool, error) {
	if d.rc != nil {
		out, ok, err := d.getAppend(dst, key) // the read cache's own path
		return out, nil, ok, err
	}
	out, vs, _, err := d.db.GetAppendOrStream(dst, d.c.keyHash(key), key, d.c.now)
	if errors.Is(err, bitcask.ErrNotFound) {
		return dst, nil, false, nil
	}
	return out, vs, err == nil, err
}
func (d *dbStore) getAppend(dst, key []byte) ([]byte, bool, error) {
	h := d.c.keyHash(key)
	if d.rc != nil {
		m, ok := d.db.MetaOfHashed(h, key, d.c.now)
		if !ok {
			return dst, false, nil
		}
		if out, hit := d.rc.get(dst, key, m.Seq); hit {
			return out, true, nil
		}
	}
	v, m, err := d.db.GetAppendHashed(dst, h, key, d.c.now)
	if err != nil {
		if errors.Is(err, bitcask.ErrNotFound) {
			return dst, false, nil
		}
		return dst, false, err
	}
	if d.rc != nil {
		d.rc.put(key, v[len(dst):], m.Seq)
	}
	return v, true, nil
}
func (d *dbStore) getRange(dst, key []byte, start, end int64) ([]byte, error) {
	return d.db.GetRange(dst, key, start, end)
}
func (d *dbStore) meta(key []byte) (bitcask.Meta, bool) {
	return d.db.MetaOfHashed(d.c.keyHash(key), key, d.c.now)
}
func (d *dbStore) put(key, value []byte, expireAt int64) error {
	return errReadOnlyStore
}
func (d *dbStore) putTagged(key, value []byte, expireAt int64, tag uint8) error {
	return errReadOnlyStore
}
func (d *dbStore) splice(key []byte, off int64, part []byte, tag uint8) (int64, error) {
	return 0, errReadOnlyStore
}
func (d *dbStore) del(key []byte) (bool, error) { return false, errReadOnlyStore }
func (d *dbStore) setExpireAt(key []byte, expireAt int64) (bool, error) {
	return false, errReadOnlyStore
}
func (d *dbStore) flushAll() error  { return errReadOnlyStore }
func (d *dbStore) flushDB() error   { return errReadOnlyStore }
func (d *dbStore) liveBytes() int64 { return d.db.LiveBytes() }

func (d *dbStore) hget(key, field []byte) ([]byte, bool, error) {
	v, err := d.db.HashGet(nil, d.c.keyHash(key), key, field, d.c.now)
	if errors.Is(err, bitcask.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}
func (d *dbStore) hset(key, field, value []byte) (bool, error) { return false, errReadOnlyStore }
func (d *dbStore) hdel(key, field []byte) (bool, error)        { return false, errReadOnlyStore }
func (d *dbStore) hlen(key []byte) (int, error) {
	n, err := d.db.HashLen(d.c.keyHash(key), key, d.c.now)
	if errors.Is(err, bitcask.ErrNotFound) {
		return 0, nil
	}
	return n, err
}
func (d *dbStore) hgetall(key []byte, values bool) ([]bitcask.HashField, error) {
	fs, err := d.db.HashGetAll(d.c.keyHash(key), key, values, d.c.now)
	if errors.Is(err, bitcask.ErrNotFound) {
		return nil, nil
	}
	return fs, err
}

// errReadOnlyStore means a write handler ran outside a transaction: a bug
// in the dispatch, reported rather than panicking.
var errReadOnlyStore = errors.New("internal error: write outside a transaction")

func found(v []byte, m bitcask.Meta, err error) ([]byte, bitcask.Meta, bool, error) {
	if err != nil {
		if errors.Is(err, bitcask.ErrNotFound) {
			return nil, bitcask.Meta{}, false, nil
		}
		return nil, bitcask.Meta{}, false, err
	}
	return v, m, true, nil
}
