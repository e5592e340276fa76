package shardnode

import (
	"sync"
	"sync/atomic"
)

// WATCH on a shard node, as Redis's multi.c has it: EXEC aborts (replies
// nil) when a watched key was modified after WATCH, by any client including
// the watcher itself, even by writes that leave it as it was (SET then DEL
// of a key that did not exist, a SET whose expiry has passed already), and
// when a key that existed at WATCH has expired since.
//
// Two checks make that exact:
//
//   - Every write that modifies a key (a put, a delete or an expiry change
//     that found the key, a FLUSHALL of a present key, and a SET with a past
//     expiry even of a missing key, as Redis's signalModifiedKey) touches it
//     in the node's watchRegistry, which marks every watcher of the key dirty.
//     Writes run inside a bitcask Update, so they are serialized with EXEC's
//     check. While no key is watched a write pays one atomic load.
//   - WATCH also remembers whether each key was visible and its sequence
//     number (bitcask.Meta.Seq, new on every record of the key); EXEC
//     compares them inside its Update. That sees the expiry of a key that
//     existed at WATCH (an expired key is invisible at once, whether or not
//     the sweep or a lazy read removed it yet), and a write that committed
//     after WATCH although it touched the registry just before WATCH
//     registered the key. The removal of a key that had already expired
//     when WATCH looked is not a change, as in Redis: WATCH saw it missing,
//     and the removal writes nothing.
//
// A write whose Update then fails has touched its keys all the same: EXEC
// aborts on a storage failure that changed nothing, which a client retries
// as any other abort.

// watcher is one client's set of watched keys: a connection's own WATCH,
// or one proxy client's (SHARD.WATCH) on a proxy's shared connection.
// keys belongs to the connection; the registry reads the names under its
// lock, and sets dirty under it.
type watcher struct {
	keys []watchedKey
	// dirty: a key was touched since WATCH; EXEC aborts. Guarded by
	// watchRegistry.mu.
	dirty bool
}

// watchedKey is a watched key and what WATCH saw of it.
type watchedKey struct {
	key    string // the database's number as one byte, then the key (watchKey)
	exists bool
	seq    uint64
}

// db and name split a watchedKey's key.
func (k *watchedKey) db() int      { return int(k.key[0]) }
func (k *watchedKey) name() []byte { return []byte(k.key[1:]) }

// watchKey appends the registry's name of key in database db to dst: the
// database's number as one byte, then the key, so that equal keys of two
// databases are two names.
func watchKey(dst []byte, db int, key []byte) []byte {
	return append(append(dst, byte(db)), key...)
}

// watching reports whether w watches k (a watchKey).
func (w *watcher) watching(k []byte) bool {
	for i := range w.keys {
		if w.keys[i].key == string(k) {
			return true
		}
	}
	return false
}

// watchRegistry is the node's index of watched keys: for each key, its
// watchers.
type watchRegistry struct {
	// n is the number of keys watched: a write reads it before anything
	// else, so writes cost nothing more while nothing is watched.
	n    atomic.Int64
	mu   sync.Mutex
	keys map[string][]*watcher
}

// watch adds key to w's keys, with snap's view of it, unless w watches it
// already. The key is registered before snap reads it, under the lock: a
// write that is not in snap's view touches the key after it is registered.
func (r *watchRegistry) watch(w *watcher, db int, key []byte, snap func(key []byte) (exists bool, seq uint64)) {
	wk := watchKey(nil, db, key)
	if w.watching(wk) {
		return
	}
	k := string(wk)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string][]*watcher)
	}
	r.keys[k] = append(r.keys[k], w)
	r.n.Store(int64(len(r.keys)))
	exists, seq := snap(key)
	w.keys = append(w.keys, watchedKey{key: k, exists: exists, seq: seq})
}

// touch marks the watchers of key in database db dirty. As Redis does, a
// dirty watcher stops watching its keys at once: EXEC aborts whatever else
// changes.
func (r *watchRegistry) touch(db int, key []byte) {
	if r.n.Load() == 0 {
		return
	}
	var buf [64]byte
	r.touchName(watchKey(buf[:0], db, key))
}

// touchName is touch of a watchKey.
func (r *watchRegistry) touchName(k []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws, ok := r.keys[string(k)]
	if !ok {
		return
	}
	delete(r.keys, string(k))
	for _, w := range ws {
		w.dirty = true
		r.dropLocked(w)
	}
	r.n.Store(int64(len(r.keys)))
}

// touchIf touches each watched key of database db (every database for
// db < 0) that present reports true for (FLUSHALL, FLUSHDB: only the keys
// they delete are modified).
func (r *watchRegistry) touchIf(db int, present func(db int, key []byte) bool) {
	if r.n.Load() == 0 {
		return
	}
	var hit []string
	r.mu.Lock()
	for k := range r.keys {
		if (db < 0 || int(k[0]) == db) && present(int(k[0]), []byte(k[1:])) {
			hit = append(hit, k)
		}
	}
	r.mu.Unlock()
	for _, k := range hit {
		r.touchName([]byte(k))
	}
}

// dropLocked takes w out of the index of every key it watches.
func (r *watchRegistry) dropLocked(w *watcher) {
	for i := range w.keys {
		k := w.keys[i].key
		ws := r.keys[k]
		for j, o := range ws {
			if o == w {
				ws[j] = ws[len(ws)-1]
				ws[len(ws)-1] = nil
				ws = ws[:len(ws)-1]
				break
			}
		}
		if len(ws) == 0 {
			delete(r.keys, k)
		} else {
			r.keys[k] = ws
		}
	}
}

// unwatch forgets w's keys (UNWATCH, DISCARD, RESET, a closed
// connection).
func (r *watchRegistry) unwatch(w *watcher) {
	if len(w.keys) == 0 && !w.dirty {
		return
	}
	keys, _ := r.release(w)
	clear(keys)
	w.keys = keys[:0]
}

// release takes w out of the index and hands its keys to EXEC, which
// checks them and gives the slice back (w.keys = keys[:0]); dirty reports
// whether a write touched one of them.
func (r *watchRegistry) release(w *watcher) (keys []watchedKey, dirty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(w)
	r.n.Store(int64(len(r.keys)))
	keys, dirty = w.keys, w.dirty
	w.keys, w.dirty = nil, false
	return keys, dirty
}

// watchedKeys is the number of keys watched on the node (INFO).
func (r *watchRegistry) watchedKeys() int64 { return r.n.Load() }
