package bitcask

import (
	"time"
)

// Expiry, as in Redis: a key whose expiry has passed is invisible to every
// read at once. It is removed from the key directory lazily, by the read
// that finds it expired (when the write lock is free), and by a background
// sweep. Neither writes anything: the put record carries its absolute
// expiry, so a replay at Open drops it again, and a merge drops the record.

// Sweep budget: entries examined per sweep step, and how long one tick may
// keep going while it keeps finding many expired keys (Redis's active
// expire cycle stops at 25% of its period).
const (
	sweepEntriesPerStep = 2048
	sweepRepeatRatio    = 4 // repeat a step while more than 1/4 of the keys with an expiry examined were expired
)

// sweepState is the sweep's position: the database, the shard and the
// hash in it to resume from.
type sweepState struct {
	db    int
	shard int
	hash  uint64
}

// removeLocked removes the entry at (ci, i) of s as expired. Caller holds
// writeMu and s.mu.
func (db *DB) removeLocked(s *shard, ci, i int) {
	db.dropLocked(s, ci, i)
	db.expiredRemoved.Add(1)
}

// dropLocked removes the entry at (ci, i) of s and its counts. Caller
// holds writeMu and s.mu.
func (db *DB) dropLocked(s *shard, ci, i int) {
	e := &s.chunks[ci].e[i]
	key := s.keyOf(e) // stays valid after removeAt
	if e.typ != 0 {
		db.dropColl(s, key)
	}
	live := e.liveLen(len(key))
	db.fileAt(e.file).live.Add(-e.recSize(len(key)))
	s.removeAt(ci, i)
	db.keys.Add(-1)
	db.liveBytes.Add(-live)
	db.indexAdd(key, -1, -live)
}

// expireLazy removes key if it still has sequence number seq and has
// expired. It gives up when a writer holds the lock: the key is invisible
// anyway and the sweep will get it.
func (db *DB) expireLazy(h uint64, key []byte, seq uint64) {
	if !db.writeMu.TryLock() {
		return
	}
	defer db.writeMu.Unlock()
	if db.closed.Load() {
		return
	}
	s := db.kd.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	ci, i, found := s.search(h, key)
	if found {
		if e := &s.chunks[ci].e[i]; e.seq == seq && e.expired(db.nowMs()) {
			db.removeLocked(s, ci, i)
		}
	}
}

func (db *DB) sweepLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.opts.ExpirySweepInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		deadline := time.Now().Add(db.opts.ExpirySweepInterval / 4)
		for {
			withExp, expired := db.sweepStep()
			if expired*sweepRepeatRatio <= withExp || time.Now().After(deadline) {
				break
			}
		}
	}
}

// sweepStep examines up to sweepEntriesPerStep entries from the sweep
// position on, skipping shards without expiring keys, and removes the
// expired ones. It returns how many examined entries had an expiry and
// how many of those were removed.
func (db *DB) sweepStep() (withExp, removed int) {
	type victim struct {
		db   *DB
		hash uint64
		key  []byte
		seq  uint64
	}
	var victims []victim
	examined := 0
	now := db.nowMs()
	for examined < sweepEntriesPerStep {
		sw := &db.sweep
		v := db.views[sw.db]
		if sw.shard == 0 && sw.hash == 0 && v.keys.Load() == 0 {
			// An empty database is skipped in one visit.
			sw.db = (sw.db + 1) % NumDBs
			examined += 16
			continue
		}
		s := &v.kd.shards[sw.shard]
		done := true
		s.mu.RLock()
		if s.nexp > 0 {
			s.ascend(sw.hash, func(e *entry) bool {
				if examined >= sweepEntriesPerStep {
					sw.hash = e.hash
					done = false
					return false
				}
				examined++
				if e.expireAt != 0 {
					withExp++
					if e.expired(now) {
						victims = append(victims, victim{v, e.hash, s.keyOf(e), e.seq})
					}
				}
				return true
			})
		} else {
			examined += 16 // an empty-handed visit still costs something
		}
		s.mu.RUnlock()
		if done {
			sw.shard = (sw.shard + 1) % numShards
			sw.hash = 0
			if sw.shard == 0 {
				sw.db = (sw.db + 1) % NumDBs
			}
		}
	}
	if len(victims) == 0 {
		return withExp, 0
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed.Load() {
		return withExp, 0
	}
	now = db.nowMs()
	for _, v := range victims {
		s := v.db.kd.shardFor(v.hash)
		s.mu.Lock()
		ci, i, found := s.search(v.hash, v.key)
		if found {
			if e := &s.chunks[ci].e[i]; e.seq == v.seq && e.expired(now) {
				v.db.removeLocked(s, ci, i)
				removed++
			}
		}
		s.mu.Unlock()
	}
	return withExp, removed
}
