package bitcask

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// syncer makes written records durable. Under SyncAlways every writer waits,
// after releasing the write lock, until durable covers its last record. The
// first waiter to find no fsync running becomes the leader: it notes the
// newest written record, fsyncs the active file, and wakes everyone; writers
// that arrived during that fsync are covered by the next one. N concurrent
// writers therefore share a handful of fsyncs (group commit).
type syncer struct {
	mu      sync.Mutex
	cond    sync.Cond
	running bool   // a leader is inside fsync
	durable uint64 // every record with seq <= durable is on stable storage
	err     error  // first fsync failure; sticky, like the kernel's page state after one
}

// syncRound runs one fsync as leader. Called with s.mu held; returns with it
// held, having released it during the fsync.
func (db *DB) syncRound() error {
	s := &db.sy
	s.running = true
	// Records in files older than the active one were fsynced when the file
	// was rotated, so syncing the active file covers everything up to target.
	db.activeMu.Lock()
	target := db.written.Load()
	f := db.active
	f.acquire()
	older := db.unsynced
	db.unsynced = nil
	dirDirty := db.dirDirty
	db.dirDirty = false
	db.activeMu.Unlock()
	s.mu.Unlock()

	if db.syncHook != nil {
		db.syncHook()
	}
	t0 := time.Now()
	var err error
	for _, o := range older {
		if e := o.f.Sync(); e != nil && err == nil {
			err = e
		}
		db.fsyncs.Add(1)
		o.release()
	}
	// fdatasync: the data and what reading it needs (the length, when it
	// grew), not the timestamps; what Redis's appendfsync does too.
	size := f.size.Load()
	if e := fdatasync(f.f); e != nil && err == nil {
		err = e
	} else if e == nil {
		f.synced.Store(size)
	}
	db.fsyncs.Add(1)
	if dirDirty {
		// After the files: the new file's name must not be durable
		// before what was written ahead of it.
		if e := syncDir(db.dir); e != nil && err == nil {
			err = e
		}
	}
	db.syncRounds.Add(1)
	db.syncNanos.Add(int64(time.Since(t0)))
	f.release()

	s.mu.Lock()
	s.running = false
	if err != nil {
		if s.err == nil {
			s.err = err
			db.log.Error("fsync failed; the database refuses further writes", "file", f.path, "error", err)
			db.setBroken(err)
		}
	} else if target > s.durable {
		s.durable = target
	}
	s.cond.Broadcast()
	return s.err
}

// takeDirDirty reports and clears dirDirty.
func (db *DB) takeDirDirty() bool {
	db.activeMu.Lock()
	defer db.activeMu.Unlock()
	d := db.dirDirty
	db.dirDirty = false
	return d
}

// takeUnsynced empties the list of rotated files not fsynced yet; the
// caller fsyncs and releases them.
func (db *DB) takeUnsynced() []*dataFile {
	db.activeMu.Lock()
	defer db.activeMu.Unlock()
	fs := db.unsynced
	db.unsynced = nil
	return fs
}

// waitDurable returns once the record with sequence number seq is durable.
func (db *DB) waitDurable(seq uint64) error {
	s := &db.sy
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.durable < seq && s.err == nil {
		if s.running {
			s.cond.Wait()
			continue
		}
		db.syncRound()
	}
	return s.err
}

// Sync fsyncs everything written so far.
func (db *DB) Sync() error {
	if db.closed.Load() {
		return ErrClosed
	}
	s := &db.sy
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.running {
		s.cond.Wait()
	}
	return db.syncRound()
}

// syncLoop is the everysec background fsync.
func (db *DB) syncLoop() {
	defer db.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		if db.SyncPolicy() != SyncEverySec {
			continue
		}
		s := &db.sy
		s.mu.Lock()
		if !s.running && s.durable < db.written.Load() && s.err == nil {
			db.syncRound()
		}
		s.mu.Unlock()
	}
}

// SetSyncPolicy changes the fsync policy at run time (CONFIG SET appendfsync).
func (db *DB) SetSyncPolicy(p SyncPolicy) { db.policy.Store(int32(p)) }

// SyncPolicy returns the current fsync policy.
func (db *DB) SyncPolicy() SyncPolicy { return SyncPolicy(db.policy.Load()) }

func fdatasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
