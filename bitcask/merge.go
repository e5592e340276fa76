package bitcask

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Merge rewrites the live records of the immutable data files into new
// files and deletes the old ones. It always merges a prefix of the files
// in id order (the oldest files, up to a generation boundary). That is what
// makes dropping tombstones, flush-all records and expired records safe:
// every older record of the same key is in the prefix too, so none can come
// back (Basho bitcask lost deletes merging arbitrary subsets, issues #82,
// #148, #156).
//
// Steps, each crash-safe:
//  1. Scan the inputs; copy every put record the key directory points at
//     (with the key's current sequence number and expiry, which folds in
//     expire records) to "<id>.data.tmp", ids K+1, K+2, ... for the
//     last input K, so the output sorts after the inputs and before
//     every newer file.
//  2. Per output file: fsync, rename to "<id>.data", write its hint
//     (tmp, fsync, rename), fsync the directory, then move the key
//     directory entries that still point at the copied record (one key
//     at a time under its shard lock). Until the inputs are gone a
//     replay sees every record twice; the copy, later in id order with
//     an equal sequence number, wins.
//  3. Drop the keys of expired records that were not copied (if a key
//     would come back, for example after the clock went back, the merge
//     stops here and keeps the inputs).
//  4. Check that no entry points into an input, then delete the inputs
//     oldest first: while any input remains, every input newer than it
//     remains too, so no tombstone is lost before the value it hides.
//
// Open deletes "*.tmp" leftovers and hint files without a data file.

// Merge merges now: it starts a new active file so that the current one
// can be merged too, then merges every immutable file.
func (db *DB) Merge() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	db.writeMu.Lock()
	err := db.brokenErr()
	if err == nil && db.active.size.Load() > 0 {
		err = db.rotate()
	}
	db.writeMu.Unlock()
	if err != nil {
		return err
	}
	return db.mergeFiles(db.mergePrefix(0))
}

// mergePrefix returns the oldest n immutable files (all of them for n <= 0),
// extended so that the last one is the last of its generation: merge
// output ids must fit between the last input and the next file.
func (db *DB) mergePrefix(n int) []*dataFile {
	db.filesMu.Lock()
	defer db.filesMu.Unlock()
	imm := db.files[:len(db.files)-1] // the active file is last
	if n > 0 && n < len(imm) {
		for n < len(imm) && imm[n].id>>idSubBits == imm[n-1].id>>idSubBits {
			n++
		}
		imm = imm[:n]
	}
	return append([]*dataFile(nil), imm...)
}

// mergeDue reports whether the dead-bytes triggers fire, and returns the
// prefix to merge: up to the newest immutable file that is itself at least
// MergeDeadRatio dead.
func (db *DB) mergeDue() []*dataFile {
	files := db.snapshotFiles()
	imm := files[:len(files)-1]
	var dead, size int64
	last := -1
	for i, f := range imm {
		d, s := f.dead(), f.size.Load()
		dead += d
		size += s
		if s == 0 || float64(d) >= db.opts.MergeDeadRatio*float64(s) {
			last = i
		}
	}
	if size == 0 || dead < db.opts.MergeMinDeadBytes || float64(dead) < db.opts.MergeDeadRatio*float64(size) || last < 0 {
		return nil
	}
	return db.mergePrefix(last + 1)
}

func (db *DB) mergeLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.opts.MergeCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		if db.brokenErr() != nil || !db.mergeMu.TryLock() {
			continue
		}
		if inputs := db.mergeDue(); len(inputs) > 0 {
			db.log.Info("background merge", "files", len(inputs))
			db.mergeFiles(inputs)
		}
		db.mergeMu.Unlock()
	}
}

// errMergeStopped is returned when a test hook stops a merge mid-way.
var errMergeStopped = errors.New("bitcask: merge stopped by hook")

// move is a key directory entry a merge relocates (or drops, if expired).
type move struct {
	hash    uint64
	key     []byte // the entry's key (arena bytes never change)
	oldFile uint16
	oldOff  uint32
	newOff  uint32
	size    int64
}

type merger struct {
	db      *DB
	now     int64
	nextID  uint64 // id of the next output file
	limit   uint64 // output ids must stay below this (the next file's id)
	out     *dataFile
	outTmp  string
	outSize int64
	hw      *hintWriter
	buf     []byte // encoded records not yet written to out
	moves   []move // entries to move to out once it is in place
	expired []move // expired records not copied
	chunk   []byte // copy buffer for records larger than the scan window
	stopped bool   // a hook stopped the merge: leave everything as a crash would
}

func (db *DB) hook(step string) error {
	if db.mergeHook != nil {
		return db.mergeHook(step)
	}
	return nil
}

// mergeFiles merges inputs, a prefix of the files. Caller holds mergeMu.
func (db *DB) mergeFiles(inputs []*dataFile) (err error) {
	if len(inputs) == 0 {
		return nil
	}
	db.filesMu.Lock()
	limit := uint64(0)
	for i, f := range db.files {
		if f == inputs[len(inputs)-1] && i+1 < len(db.files) {
			limit = db.files[i+1].id
		}
	}
	db.filesMu.Unlock()
	m := &merger{db: db, now: db.nowMs(), nextID: inputs[len(inputs)-1].id + 1, limit: limit}
	start := time.Now()
	defer func() {
		if err != nil {
			if !m.stopped {
				m.abortOutput()
			}
			db.mergeErrors.Add(1)
			db.log.Error("merge failed", "error", err)
		}
	}()
	for _, in := range inputs {
		if err := m.copyLive(in); err != nil {
			return err
		}
	}
	if err := m.finishOutput(); err != nil {
		return err
	}
	if err := m.dropExpired(); err != nil {
		return err
	}
	isInput := make(map[uint16]bool, len(inputs))
	for _, in := range inputs {
		isInput[in.handle] = true
	}
	for i := range db.kd.shards {
		s := &db.kd.shards[i]
		bad := false
		s.mu.RLock()
		s.ascend(0, func(e *entry) bool {
			bad = isInput[e.file]
			return !bad
		})
		s.mu.RUnlock()
		if bad {
			return fmt.Errorf("bitcask: merge left a key pointing into an input; inputs kept")
		}
	}
	if err := m.step("installed"); err != nil {
		return err
	}
	db.filesMu.Lock()
	for _, in := range inputs {
		db.removeFileLocked(in)
	}
	db.filesMu.Unlock()
	var reclaimed int64
	for i, in := range inputs {
		reclaimed += in.size.Load()
		if err := os.Remove(in.path); err != nil && !os.IsNotExist(err) {
			db.log.Warn("removing merged data file", "file", in.path, "error", err)
		}
		os.Remove(filepath.Join(db.dir, hintName(in.id)))
		in.release()
		if err := m.step(fmt.Sprintf("removed-%d", i)); err != nil {
			return err
		}
	}
	if err := syncDir(db.dir); err != nil {
		return err
	}
	db.merges.Add(1)
	db.log.Info("merge done", "inputs", len(inputs), "reclaimed_bytes", reclaimed, "elapsed", time.Since(start))
	return nil
}

func (m *merger) step(name string) error {
	if err := m.db.hook(name); err != nil {
		m.stopped = true
		return fmt.Errorf("%w at %s: %v", errMergeStopped, name, err)
	}
	return nil
}

// copyLive copies the records of in that the key directory points at.
func (m *merger) copyLive(in *dataFile) error {
	db := m.db
	sc := newScanner()
	size := in.size.Load()
	sc.reset(in.f, size)
	var r scanRec
	for off := int64(0); off < size; {
		select {
		case <-db.quit:
			return ErrClosed
		default:
		}
		if err := sc.read(off, &r); err != nil {
			off = sc.resync(off + 1)
			continue
		}
		off += r.h.size()
		if r.h.kind != kindPut {
			continue // tombstones, expire and flush-all records: see Merge
		}
		h := xxhash.Sum64(r.key)
		s := db.kd.shardFor(h)
		s.mu.RLock()
		e := s.get(h, r.key)
		live := e != nil && e.file == in.handle && int64(e.off) == r.off
		var mv move
		var seq uint64
		var exp int64
		if live {
			mv = move{hash: h, key: s.keyOf(e), oldFile: in.handle, oldOff: e.off, size: r.h.size()}
			seq, exp = e.seq, e.expireAt
		}
		s.mu.RUnlock()
		if !live {
			continue
		}
		if exp != 0 && exp <= m.now {
			m.expired = append(m.expired, mv)
			continue
		}
		if err := m.copyRecord(in, &r, seq, exp, &mv); err != nil {
			return err
		}
	}
	return nil
}

func (m *merger) openOutput() error {
	if m.nextID >= m.limit {
		return fmt.Errorf("bitcask: no merge output id left below %016x", m.limit)
	}
	id := m.nextID
	m.nextID++
	final := filepath.Join(m.db.dir, dataName(id))
	m.outTmp = final + tmpSuffix
	fh, err := os.OpenFile(m.outTmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	m.out = &dataFile{id: id, path: final, f: fh}
	m.out.refs.Store(1)
	m.outSize = 0
	m.hw, err = createHint(m.db.dir, id)
	if err != nil {
		fh.Close()
		os.Remove(m.outTmp)
		m.out = nil
		return err
	}
	return nil
}

func (m *merger) flushBuf() error {
	if len(m.buf) == 0 {
		return nil
	}
	if _, err := m.out.f.WriteAt(m.buf, m.outSize); err != nil {
		return err
	}
	m.outSize += int64(len(m.buf))
	m.buf = m.buf[:0]
	return nil
}

// copyRecord appends r, with the key's current seq and expiry, to the output.
func (m *merger) copyRecord(in *dataFile, r *scanRec, seq uint64, exp int64, mv *move) error {
	size := r.h.size()
	if m.out != nil && m.outSize+int64(len(m.buf)) > 0 && m.outSize+int64(len(m.buf))+size > m.db.opts.MaxFileSize {
		if err := m.finishOutput(); err != nil {
			return err
		}
	}
	if m.out == nil {
		if err := m.openOutput(); err != nil {
			return err
		}
	}
	nh := r.h
	nh.seq, nh.expireAt, nh.flags = seq, exp, flagSingle
	off := m.outSize + int64(len(m.buf))
	if r.value != nil {
		m.buf = appendStored(m.buf, &nh, r.key, r.value)
		if len(m.buf) >= 1<<20 {
			if err := m.flushBuf(); err != nil {
				return err
			}
		}
	} else if err := m.copyLarge(in, r, &nh, off); err != nil {
		return err
	}
	m.hw.add(off, &nh, r.key, r.vlen)
	mv.newOff = uint32(off)
	m.moves = append(m.moves, *mv)
	return nil
}

// copyLarge streams a record larger than the scan window from in to the
// output, checking the source CRC again on the way.
func (m *merger) copyLarge(in *dataFile, r *scanRec, nh *header, off int64) error {
	if err := m.flushBuf(); err != nil {
		return err
	}
	var hb [headerSize]byte
	encodeHeader(hb[:], &r.h)
	src := crc32.Update(0, castagnoli, hb[offTime:])
	src = crc32.Update(src, castagnoli, r.key)
	encodeHeader(hb[:], nh)
	dst := crc32.Update(0, castagnoli, hb[offTime:])
	dst = crc32.Update(dst, castagnoli, r.key)
	if _, err := m.out.f.WriteAt(r.key, off+headerSize); err != nil {
		return err
	}
	if m.chunk == nil {
		m.chunk = make([]byte, 1<<20)
	}
	vstart := r.off + headerSize + int64(r.h.keyLen)
	for p, n := int64(0), int64(r.h.valLen); p < n; {
		c := m.chunk[:min(int64(len(m.chunk)), n-p)]
		if _, err := in.f.ReadAt(c, vstart+p); err != nil {
			return err
		}
		src = crc32.Update(src, castagnoli, c)
		dst = crc32.Update(dst, castagnoli, c)
		if _, err := m.out.f.WriteAt(c, off+headerSize+int64(r.h.keyLen)+p); err != nil {
			return err
		}
		p += int64(len(c))
	}
	if src != r.h.crc {
		return fmt.Errorf("%w: %s at offset %d changed during merge", ErrCorrupt, in.path, r.off)
	}
	nh.crc = dst
	encodeHeader(hb[:], nh)
	if _, err := m.out.f.WriteAt(hb[:], off); err != nil {
		return err
	}
	m.outSize = off + r.h.size()
	return nil
}

// finishOutput makes the current output durable, puts it in place and
// moves the key directory entries to it.
func (m *merger) finishOutput() error {
	if m.out == nil {
		return nil
	}
	db := m.db
	if err := m.flushBuf(); err != nil {
		return err
	}
	if err := m.out.f.Sync(); err != nil {
		return err
	}
	db.fsyncs.Add(1)
	if err := m.step("output-synced"); err != nil {
		return err
	}
	if err := os.Rename(m.outTmp, m.out.path); err != nil {
		return err
	}
	out, hw := m.out, m.hw
	m.out, m.hw = nil, nil
	out.size.Store(m.outSize)
	db.filesMu.Lock()
	err := db.addFileLocked(out)
	db.filesMu.Unlock()
	if err != nil {
		hw.abort()
		out.release()
		return err
	}
	if err := m.step("output-renamed"); err != nil {
		hw.abort()
		return err
	}
	if err := hw.finish(m.outSize); err != nil {
		db.log.Warn("writing merge hint failed", "file", out.path, "error", err)
	}
	if err := syncDir(db.dir); err != nil {
		return err
	}
	if err := m.step("output-hinted"); err != nil {
		return err
	}
	tab := *db.ftab.Load()
	for i := range m.moves {
		mv := &m.moves[i]
		s := db.kd.shardFor(mv.hash)
		s.mu.Lock()
		if e := s.get(mv.hash, mv.key); e != nil && e.file == mv.oldFile && e.off == mv.oldOff {
			e.file, e.off = out.handle, mv.newOff
			out.live.Add(mv.size)
			tab[mv.oldFile].live.Add(-mv.size)
		}
		s.mu.Unlock()
	}
	m.moves = m.moves[:0]
	return nil
}

// abortOutput removes an output that never got its final name.
func (m *merger) abortOutput() {
	if m.out == nil {
		return
	}
	m.out.f.Close()
	os.Remove(m.outTmp)
	if m.hw != nil {
		m.hw.abort()
	}
	m.out, m.hw = nil, nil
}

// dropExpired removes the keys whose expired records were not copied, if
// they still point there, taking the write lock in small batches.
func (m *merger) dropExpired() error {
	db := m.db
	kept := 0
	for len(m.expired) > 0 {
		n := min(len(m.expired), 1024)
		batch := m.expired[:n]
		m.expired = m.expired[n:]
		db.writeMu.Lock()
		now := db.nowMs()
		for i := range batch {
			mv := &batch[i]
			s := db.kd.shardFor(mv.hash)
			s.mu.Lock()
			ci, j, found := s.search(mv.hash, mv.key)
			if found {
				if e := &s.chunks[ci].e[j]; e.file == mv.oldFile && e.off == mv.oldOff {
					if e.expired(now) {
						db.removeLocked(s, ci, j)
					} else {
						kept++
					}
				}
			}
			s.mu.Unlock()
		}
		db.writeMu.Unlock()
	}
	if kept > 0 {
		return fmt.Errorf("bitcask: %d keys the merge found expired are live again; inputs kept", kept)
	}
	return nil
}
