package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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
//  2. Resolve the damaged records: a live record the scan could not read
//     (bit rot under a key that a hint file pointed at) is skipped as
//     recovery skips it. The key gets the state the inputs' other records
//     give it, the newest older value that nothing deleted (copied to the
//     output too) or none; see resolveDamage.
//  3. Per output file: fsync, rename to "<id>.data", write its hint
//     (tmp, fsync, rename), fsync the directory, then move the key
//     directory entries that still point at the copied record (one key
//     at a time under its shard lock). Until the inputs are gone a
//     replay sees every record twice; the copy, later in id order with
//     an equal sequence number, wins.
//  4. Drop the keys of expired records that were not copied (if a key
//     would come back, for example after the clock went back, the merge
//     fails here).
//  5. Check that no entry points into an input but at a damaged record,
//     and give the damaged records' keys their new state: the commit
//     point. Then delete the inputs oldest first: while any input
//     remains, every input newer than it remains too, so no tombstone is
//     lost before the value it hides.
//
// A merge that fails before its commit point takes its output back: the
// entries it moved go back to the inputs (which are intact) and its files
// are deleted, so a failing merge never leaves a copy of the live data
// behind. The background merge then waits longer before each new attempt
// (mergeBackoff). Open deletes "*.tmp" leftovers and hint files without a
// data file.

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

// prefixThrough is mergePrefix up to the immutable file f, nil if f is not
// an immutable file.
func (db *DB) prefixThrough(f *dataFile) []*dataFile {
	db.filesMu.Lock()
	n := -1
	for i, x := range db.files[:len(db.files)-1] {
		if x == f {
			n = i + 1
		}
	}
	db.filesMu.Unlock()
	if n < 0 {
		return nil
	}
	return db.mergePrefix(n)
}

// mergeDue returns the newest file of the prefix a background merge should
// take, or nil when the triggers do not fire: the longest prefix of the
// files that holds at least MergeMinDeadBytes dead bytes, at least
// MergeDeadRatio of its size, and ends with a file that is itself at least
// MergeDeadRatio dead (so a merge never rewrites a live tail for nothing).
// The active file counts like the others: with the default file size a
// node's data often fits in the active file, and dead bytes there (a
// FLUSHALL, most keys deleted) would otherwise never be reclaimed.
func (db *DB) mergeDue() *dataFile {
	files := db.snapshotFiles()
	var dead, size int64
	var upTo *dataFile
	for i, f := range files {
		d, s := f.dead(), f.size.Load()
		dead += d
		size += s
		if i == len(files)-1 && s == 0 {
			break // an empty active file: nothing to rotate for
		}
		if s > 0 && float64(d) < db.opts.MergeDeadRatio*float64(s) {
			continue
		}
		if dead > 0 && dead >= db.opts.MergeMinDeadBytes && float64(dead) >= db.opts.MergeDeadRatio*float64(size) {
			upTo = f
		}
	}
	return upTo
}

// backgroundMerge merges the prefix mergeDue picks, if any, starting a new
// active file first when the prefix takes the active one. Caller holds
// mergeMu.
func (db *DB) backgroundMerge() error {
	f := db.mergeDue()
	if f == nil {
		return nil
	}
	db.writeMu.Lock()
	err := db.brokenErr()
	if err == nil && f == db.active {
		err = db.rotate()
	}
	db.writeMu.Unlock()
	if err != nil {
		return err
	}
	inputs := db.prefixThrough(f)
	if len(inputs) == 0 {
		return nil
	}
	db.log.Info("background merge", "files", len(inputs))
	return db.mergeFiles(inputs)
}

// mergeBackoffMax bounds the pause after failed background merges, in
// check intervals: the pause doubles with each consecutive failure (2, 4,
// ... 64 intervals; 16 minutes at the default interval). A merge that
// fails for good (a full disk, an unreadable file) is then retried a few
// times an hour instead of at every check.
const mergeBackoffMax = 64

func mergeBackoff(interval time.Duration, failures int) time.Duration {
	return interval * time.Duration(min(1<<min(failures, 30), mergeBackoffMax))
}

func (db *DB) mergeLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.opts.MergeCheckInterval)
	defer t.Stop()
	failures := 0
	var notBefore time.Time
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		if time.Now().Before(notBefore) || db.brokenErr() != nil || !db.mergeMu.TryLock() {
			continue
		}
		err := db.backgroundMerge()
		db.mergeMu.Unlock()
		if err == nil {
			failures, notBefore = 0, time.Time{}
			continue
		}
		if db.closed.Load() {
			return
		}
		failures++
		pause := mergeBackoff(db.opts.MergeCheckInterval, failures)
		notBefore = time.Now().Add(pause)
		db.log.Warn("background merge failed; pausing merges", "consecutive_failures", failures, "pause", pause, "error", err)
	}
}

// errMergeStopped is returned when a test hook stops a merge mid-way.
var errMergeStopped = errors.New("bitcask: merge stopped by hook")

// errMergeFault, returned by a test hook, fails the merge at that step as
// an I/O error would (the merge cleans up), where another error stops it
// as a crash would.
var errMergeFault = errors.New("bitcask: injected merge fault")

// move is a key directory entry a merge relocates (or drops, if expired).
type move struct {
	db      *DB // the key's database
	hash    uint64
	key     []byte // the entry's key (arena bytes never change)
	oldFile uint16
	oldOff  uint32
	newOff  uint32
	size    int64
}

// origin is where a record copied to a merge output came from.
type origin struct {
	off  uint32
	file uint16
}

// installedOutput is a merge output in the file table. origins[i] is where
// its i-th record came from: what a failed merge moves entries back to.
// That is 8 bytes per copied record, held until the merge ends.
type installedOutput struct {
	f       *dataFile
	origins []origin
}

// badRegion is a stretch [from, to) of an input holding no readable record.
type badRegion struct {
	file     *dataFile
	from, to int64
}

// damage is a key whose live record lies in a bad region, and the state
// the merge gives it at its commit point (see resolveDamage).
type damage struct {
	db      *DB // the key's database
	hash    uint64
	key     []byte // the entry's key (arena bytes never change)
	file    *dataFile
	off     uint32 // the damaged record
	seq     uint64 // the key's sequence number when the damage was found
	expNow  int64  // and its expiry then
	restore bool   // an older value was copied to out at newOff; else the key goes
	out     *dataFile
	newOff  uint32
	vlen    uint32 // the older value's length, packed with its type
	exp     int64  // and its expiry
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
	// elemMoves are the elements to move to out once it is in place.
	elemMoves []elemMove
	origins   []origin // where out's records came from, in order
	expired   []move   // expired records not copied
	chunk     []byte   // copy buffer for records larger than the scan window
	// installed are the outputs in the file table, oldest first.
	installed []installedOutput
	bad       []badRegion // unreadable stretches of the inputs, in scan order
	damaged   []damage
	stopped   bool // a hook stopped the merge: leave everything as a crash would
	committed bool // past the commit point: the inputs' data lives in the outputs
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
		if err == nil {
			return
		}
		db.mergeErrors.Add(1)
		switch {
		case m.stopped:
			db.log.Error("merge stopped", "error", err)
		case m.committed:
			db.log.Error("merge failed after its output replaced its inputs; the merged inputs are dead and go with the next merge", "error", err)
		default:
			m.abortOutput()
			removed := m.undoInstalled()
			db.log.Error("merge failed; its output is removed", "error", err, "output_files_removed", removed)
		}
	}()
	for _, in := range inputs {
		if err := m.copyLive(in); err != nil {
			return err
		}
	}
	if err := m.resolveDamage(inputs); err != nil {
		return err
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
	isDamaged := make(map[origin]bool, len(m.damaged))
	for _, d := range m.damaged {
		isDamaged[origin{file: d.file.handle, off: d.off}] = true
	}
	for i := range NumDBs * numShards {
		s := &db.views[i/numShards].kd.shards[i%numShards]
		bad := false
		s.mu.RLock()
		s.ascend(0, func(e *entry) bool {
			bad = isInput[e.file] && !isDamaged[origin{file: e.file, off: e.off}]
			return !bad
		})
		if !bad {
			for _, c := range s.colls {
				c.each(func(_ string, l elemLoc) { bad = bad || isInput[l.file] })
			}
		}
		s.mu.RUnlock()
		if bad {
			return fmt.Errorf("bitcask: merge left a key pointing into an input; inputs kept")
		}
	}
	if err := m.step("resolved"); err != nil {
		return err
	}
	m.applyDamage()
	m.committed = true
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
	for _, o := range m.installed {
		reclaimed -= o.f.size.Load()
	}
	if err := syncDir(db.dir); err != nil {
		return err
	}
	db.merges.Add(1)
	db.log.Info("merge done", "inputs", len(inputs), "outputs", len(m.installed), "reclaimed_bytes", reclaimed,
		"damaged_records", len(m.damaged), "elapsed", time.Since(start))
	return nil
}

func (m *merger) step(name string) error {
	if err := m.db.hook(name); err != nil {
		if errors.Is(err, errMergeFault) {
			return fmt.Errorf("at %s: %w", name, err)
		}
		m.stopped = true
		return fmt.Errorf("%w at %s: %v", errMergeStopped, name, err)
	}
	return nil
}

// copyLive copies the records of in that the key directory points at, and
// notes the stretches it cannot read as records (resolveDamage looks for
// live records there). A read error is not damage: it fails the merge.
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
			next := sc.resync(off + 1)
			if sc.err != nil {
				return fmt.Errorf("bitcask: merge reading %s: %w", in.path, sc.err)
			}
			m.bad = append(m.bad, badRegion{file: in, from: off, to: next})
			off = next
			continue
		}
		off += r.h.size()
		if r.h.kind == kindElemPut {
			if err := m.copyElem(in, &r); err != nil {
				return err
			}
			continue
		}
		if r.h.kind != kindPut && r.h.kind != kindColl {
			continue // tombstones, expire and flush-all records: see Merge
		}
		h := xxhash.Sum64(r.key)
		v := db.views[r.h.db()]
		s := v.kd.shardFor(h)
		s.mu.RLock()
		e := s.get(h, r.key)
		live := e != nil && e.file == in.handle && int64(e.off) == r.off
		var mv move
		var seq uint64
		var exp int64
		if live {
			mv = move{db: v, hash: h, key: s.keyOf(e), oldFile: in.handle, oldOff: e.off, size: r.h.size()}
			seq, exp = e.seq, e.expireAt
			if e.typ != 0 {
				// A root keeps its generation: the entry's sequence
				// number follows the element writes, and a root copied
				// with it would hide the elements older than that.
				if c := s.colls[string(r.key)]; c != nil {
					seq = c.gen
				} else {
					seq = r.h.seq
				}
			}
		}
		s.mu.RUnlock()
		if !live {
			continue
		}
		if exp != 0 && exp <= m.now {
			m.expired = append(m.expired, mv)
			continue
		}
		newOff, err := m.copyRecord(in, &r, seq, exp)
		if err != nil {
			return err
		}
		mv.newOff = newOff
		m.moves = append(m.moves, mv)
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

// copyRecord appends r, a record of in, with seq and expiry exp (the key's
// current ones), to the output (m.out on return) and returns its offset
// there.
func (m *merger) copyRecord(in *dataFile, r *scanRec, seq uint64, exp int64) (uint32, error) {
	size := r.h.size()
	if m.out != nil && m.outSize+int64(len(m.buf)) > 0 && m.outSize+int64(len(m.buf))+size > m.db.opts.MaxFileSize {
		if err := m.finishOutput(); err != nil {
			return 0, err
		}
	}
	if m.out == nil {
		if err := m.openOutput(); err != nil {
			return 0, err
		}
	}
	nh := r.h
	nh.seq, nh.expireAt, nh.flags = seq, exp, flagSingle|r.h.flags&flagDBMask
	off := m.outSize + int64(len(m.buf))
	if r.value != nil {
		m.buf = appendStored(m.buf, &nh, r.key, r.value)
		if len(m.buf) >= 1<<20 {
			if err := m.flushBuf(); err != nil {
				return 0, err
			}
		}
	} else if err := m.copyLarge(in, r, &nh, off); err != nil {
		return 0, err
	}
	m.hw.add(off, &nh, r.key, r.vlen, r.value)
	m.origins = append(m.origins, origin{file: in.handle, off: uint32(r.off)})
	return uint32(off), nil
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
		os.Remove(out.path)
		return err
	}
	m.installed = append(m.installed, installedOutput{f: out, origins: m.origins})
	m.origins = nil
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
		s := mv.db.kd.shardFor(mv.hash)
		s.mu.Lock()
		if e := s.get(mv.hash, mv.key); e != nil && e.file == mv.oldFile && e.off == mv.oldOff {
			e.file, e.off = out.handle, mv.newOff
			out.live.Add(mv.size)
			tab[mv.oldFile].live.Add(-mv.size)
		}
		s.mu.Unlock()
	}
	m.moves = m.moves[:0]
	for i := range m.elemMoves {
		mv := &m.elemMoves[i]
		s := mv.db.kd.shardFor(mv.hash)
		s.mu.Lock()
		if c := s.colls[string(mv.key)]; c != nil {
			if l, ok := c.lookup(mv.field); ok && l.file == mv.oldFile && l.off == mv.oldOff {
				l.file, l.off = out.handle, mv.newOff
				c.store(mv.field, l)
				out.live.Add(mv.size)
				tab[mv.oldFile].live.Add(-mv.size)
			}
		}
		s.mu.Unlock()
	}
	m.elemMoves = m.elemMoves[:0]
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

// undoInstalled takes back the outputs a failed merge put in the file
// table: every entry still pointing at a copy goes back to the record it
// was copied from (the inputs are intact until the commit point), then the
// output's files are deleted. An output whose records cannot all be read
// back keeps its entries and stays, a valid data file, for the next merge.
// It returns the number of outputs removed.
func (m *merger) undoInstalled() int {
	db := m.db
	removed := 0
	sc := newScanner()
	var r scanRec
	for i := len(m.installed) - 1; i >= 0; i-- {
		o := &m.installed[i]
		tab := *db.ftab.Load()
		size := o.f.size.Load()
		sc.reset(o.f.f, size)
		n := 0
		off := int64(0)
		for ; off < size && n < len(o.origins); n++ {
			if err := sc.read(off, &r); err != nil {
				break
			}
			from := o.origins[n]
			if r.h.kind == kindElemPut {
				m.undoElem(o, &r, from, off)
				off += r.h.size()
				continue
			}
			h := xxhash.Sum64(r.key)
			s := db.views[r.h.db()].kd.shardFor(h)
			s.mu.Lock()
			if e := s.get(h, r.key); e != nil && e.file == o.f.handle && int64(e.off) == off {
				e.file, e.off = from.file, from.off
				o.f.live.Add(-r.h.size())
				tab[from.file].live.Add(r.h.size())
			}
			s.mu.Unlock()
			off += r.h.size()
		}
		if off != size || n != len(o.origins) {
			db.log.Error("a failed merge could not take back its output; the file stays", "file", o.f.path, "records_read", n, "records", len(o.origins))
			continue
		}
		db.filesMu.Lock()
		db.removeFileLocked(o.f)
		db.filesMu.Unlock()
		if err := os.Remove(o.f.path); err != nil && !os.IsNotExist(err) {
			db.log.Warn("removing the output of a failed merge", "file", o.f.path, "error", err)
		}
		os.Remove(filepath.Join(db.dir, hintName(o.f.id)))
		o.f.release()
		removed++
	}
	m.installed = nil
	if removed > 0 {
		if err := syncDir(db.dir); err != nil {
			db.log.Warn("fsync of the directory after removing a failed merge's output", "error", err)
		}
	}
	return removed
}

// resolveDamage finds the keys whose live record lies in a region of an
// input that copyLive could not read, and decides what each becomes, as a
// scan of the inputs at Open would have: recovery skips a record that
// fails its checks, so the key has the state the other records give it,
// the newest older put that no tombstone, flush-all or expiry hides, or
// none. The older value is copied to the output; applyDamage installs it at
// the commit point, so that a failed merge leaves the key as it was.
//
// The older value keeps the key's current sequence number: no newer record
// of the key can then override it at a replay, which makes the state after
// a restart the state the merge installs.
func (m *merger) resolveDamage(inputs []*dataFile) error {
	if len(m.bad) == 0 {
		return nil
	}
	db := m.db
	regions := make(map[uint16][]badRegion) // per input, in offset order
	for _, b := range m.bad {
		regions[b.file.handle] = append(regions[b.file.handle], b)
	}
	tab := *db.ftab.Load()
	hit := make(map[badRegion]bool)
	byKey := make(map[string]*damage) // by dbKey
	collHit := false
	for i := range NumDBs * numShards {
		v := db.views[i/numShards]
		s := &v.kd.shards[i%numShards]
		s.mu.RLock()
		s.ascend(0, func(e *entry) bool {
			rs := regions[e.file]
			if len(rs) == 0 {
				return true
			}
			j := sort.Search(len(rs), func(j int) bool { return rs[j].to > int64(e.off) })
			if j < len(rs) && rs[j].from <= int64(e.off) {
				key := s.keyOf(e)
				if e.typ != 0 {
					collHit = true
				}
				hit[rs[j]] = true
				byKey[dbKey(v.num, key)] = &damage{db: v, hash: e.hash, key: key, file: tab[e.file], off: e.off, seq: e.seq, expNow: e.expireAt}
			}
			return true
		})
		s.mu.RUnlock()
	}
	for i := range NumDBs * numShards {
		s := &db.views[i/numShards].kd.shards[i%numShards]
		s.mu.RLock()
		for _, c := range s.colls {
			c.each(func(_ string, l elemLoc) {
				rs := regions[l.file]
				j := sort.Search(len(rs), func(j int) bool { return rs[j].to > int64(l.off) })
				collHit = collHit || j < len(rs) && rs[j].from <= int64(l.off)
			})
		}
		s.mu.RUnlock()
	}
	if collHit {
		// A collection's damaged record is not resolved the way a
		// string's is (no older value is looked for): the merge keeps
		// its inputs, which recovery at the next Open reads as it can.
		return fmt.Errorf("%w: a live record of a collection is unreadable; merge refused, inputs kept", ErrCorrupt)
	}
	for _, b := range m.bad {
		if !hit[b] {
			db.log.Info("merge drops unreadable bytes that no key points at", "file", b.file.path, "offset", b.from, "bytes", b.to-b.from)
		}
	}
	if len(byKey) == 0 {
		return nil
	}

	// Replay the inputs for the damaged keys only, with recovery's rules.
	type state struct {
		has  bool
		file *dataFile
		off  int64
		seq  uint64
		exp  int64
	}
	states := make(map[*damage]*state, len(byKey))
	for _, d := range byKey {
		states[d] = new(state)
	}
	var flushSeq [NumDBs]uint64
	sc := newScanner()
	for _, in := range inputs {
		sc.reset(in.f, in.size.Load())
		scanFile(sc, func(r *scanRec) {
			if r.h.seq < flushSeq[r.h.db()] {
				return
			}
			if r.h.kind == kindFlushAll || r.h.kind == kindFlushDB {
				for n := range flushSeq {
					if r.h.kind == kindFlushAll || n == int(r.h.db()) {
						flushSeq[n] = max(flushSeq[n], r.h.seq)
					}
				}
				for d, st := range states {
					if r.h.kind == kindFlushAll || d.db.num == r.h.db() {
						st.has = st.has && st.seq > r.h.seq
					}
				}
				return
			}
			d := byKey[dbKey(r.h.db(), r.key)]
			if d == nil {
				return
			}
			st := states[d]
			switch r.h.kind {
			case kindPut:
				if !st.has || r.h.seq >= st.seq {
					*st = state{has: true, file: in, off: r.off, seq: r.h.seq, exp: r.h.expireAt}
				}
			case kindDelete:
				st.has = st.has && r.h.seq <= st.seq
			case kindExpire:
				if st.has && r.h.seq > st.seq {
					st.exp, st.seq = r.h.expireAt, r.h.seq
				}
			}
		})
		if sc.err != nil {
			return fmt.Errorf("bitcask: merge reading %s: %w", in.path, sc.err)
		}
	}

	// Outside the inputs a damaged key can only have expire records (a
	// put, tombstone or flush-all would have moved its entry off the
	// damaged record), all newer than anything in the inputs. If it has
	// one, the newest sets the older value's expiry at a replay, and the
	// key's entry holds that expiry already.
	later := make(map[*damage]bool)
	for _, f := range db.snapshotFiles() {
		if f.id < m.limit {
			continue // the inputs, and this merge's outputs
		}
		sc.reset(f.f, f.size.Load())
		scanFile(sc, func(r *scanRec) {
			if d := byKey[dbKey(r.h.db(), r.key)]; d != nil && r.h.kind == kindExpire && r.h.seq <= d.seq {
				later[d] = true
			}
		})
		if sc.err != nil {
			return fmt.Errorf("bitcask: merge reading %s: %w", f.path, sc.err)
		}
	}
	for d := range later {
		states[d].exp = d.expNow
	}

	m.damaged = make([]damage, 0, len(byKey))
	for _, d := range byKey {
		m.damaged = append(m.damaged, *d)
	}
	slices.SortFunc(m.damaged, func(a, b damage) int {
		if a.db.num != b.db.num {
			return int(a.db.num) - int(b.db.num)
		}
		return bytes.Compare(a.key, b.key)
	})
	var r scanRec
	for i := range m.damaged {
		d := &m.damaged[i]
		st := states[byKey[dbKey(d.db.num, d.key)]]
		if !st.has || st.exp != 0 && st.exp <= m.now {
			continue // the key goes
		}
		sc.reset(st.file.f, st.file.size.Load())
		if err := sc.read(st.off, &r); err != nil {
			return fmt.Errorf("bitcask: merge re-reading %s at %d: %w", st.file.path, st.off, err)
		}
		newOff, err := m.copyRecord(st.file, &r, d.seq, st.exp)
		if err != nil {
			return err
		}
		d.restore, d.out, d.newOff, d.vlen, d.exp = true, m.out, newOff, packVlen(r.vlen, r.h.valType), st.exp
	}
	return nil
}

// applyDamage gives the keys of the damaged records the state
// resolveDamage found, logs each, and counts them: the merge's commit
// point. A key written since the damage was found is left alone.
func (m *merger) applyDamage() {
	if len(m.damaged) == 0 {
		return
	}
	db := m.db
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	tab := *db.ftab.Load()
	for i := range m.damaged {
		d := &m.damaged[i]
		db := d.db
		s := db.kd.shardFor(d.hash)
		s.mu.Lock()
		ci, j, found := s.search(d.hash, d.key)
		if !found || s.chunks[ci].e[j].file != d.file.handle || s.chunks[ci].e[j].off != d.off {
			s.mu.Unlock()
			continue
		}
		e := &s.chunks[ci].e[j]
		klen := len(d.key)
		if !d.restore {
			db.dropLocked(s, ci, j)
			s.mu.Unlock()
			db.log.Warn("merge skipped a damaged record; the key had no older value and is gone",
				"key", logKey(d.key), "file", d.file.path, "offset", d.off)
			db.mergeDamaged.Add(1)
			continue
		}
		oldLive := e.liveLen(klen)
		tab[e.file].live.Add(-e.recSize(klen))
		if e.seq == d.seq {
			// Else an expire record written since sets the expiry, at a
			// replay too.
			s.setExpireAt(e, d.exp)
		}
		e.file, e.off, e.vlen = d.out.handle, d.newOff, d.vlen
		d.out.live.Add(e.recSize(klen))
		delta := e.liveLen(klen) - oldLive
		s.mu.Unlock()
		db.liveBytes.Add(delta)
		db.indexAdd(d.key, 0, delta)
		db.log.Warn("merge skipped a damaged record; the key now has its older value",
			"key", logKey(d.key), "file", d.file.path, "offset", d.off)
		db.mergeDamaged.Add(1)
	}
}

// logKey is a key as a log line shows it: quoted, and cut if long.
func logKey(key []byte) string {
	const max = 200
	if len(key) > max {
		return strconv.Quote(string(key[:max])) + fmt.Sprintf("... (%d bytes)", len(key))
	}
	return strconv.Quote(string(key))
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
			s := mv.db.kd.shardFor(mv.hash)
			s.mu.Lock()
			ci, j, found := s.search(mv.hash, mv.key)
			if found {
				if e := &s.chunks[ci].e[j]; e.file == mv.oldFile && e.off == mv.oldOff {
					if e.expired(now) {
						mv.db.removeLocked(s, ci, j)
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

// elemMove is an element a merge relocates.
type elemMove struct {
	db         *DB    // the collection's database
	hash       uint64 // of the collection's key
	key, field []byte
	oldFile    uint16
	oldOff     uint32
	newOff     uint32
	size       int64
}

// copyElem copies r, an element put record of in, if its collection
// still points at it. An element of an expired collection is copied
// too: the root decides (dropExpired removes it with its elements), and
// a copied element without a live root is dead at a replay.
func (m *merger) copyElem(in *dataFile, r *scanRec) error {
	db := m.db.views[r.h.db()]
	key, field, _ := splitElemKey(r.key)
	h := xxhash.Sum64(key)
	s := db.kd.shardFor(h)
	s.mu.RLock()
	var seq uint64
	live := false
	if c := s.colls[string(key)]; c != nil {
		if l, ok := c.lookup(field); ok && l.file == in.handle && int64(l.off) == r.off {
			// A set keeps no sequence number per member: the record's
			// is the member's, as this is its live record.
			live, seq = true, max(l.seq, r.h.seq)
		}
	}
	s.mu.RUnlock()
	if !live {
		return nil
	}
	mv := elemMove{db: db, hash: h, key: bytes.Clone(key), field: bytes.Clone(field), oldFile: in.handle, oldOff: uint32(r.off), size: r.h.size()}
	newOff, err := m.copyRecord(in, r, seq, 0)
	if err != nil {
		return err
	}
	mv.newOff = newOff
	m.elemMoves = append(m.elemMoves, mv)
	return nil
}

// undoElem moves an element copied to the output o at off back to the
// record it was copied from.
func (m *merger) undoElem(o *installedOutput, r *scanRec, from origin, off int64) {
	db := m.db.views[r.h.db()]
	key, field, _ := splitElemKey(r.key)
	h := xxhash.Sum64(key)
	s := db.kd.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.colls[string(key)]
	if c == nil {
		return
	}
	if l, ok := c.lookup(field); ok && l.file == o.f.handle && int64(l.off) == off {
		l.file, l.off = from.file, from.off
		c.store(field, l)
		tab := *db.ftab.Load()
		o.f.live.Add(-r.h.size())
		tab[from.file].live.Add(r.h.size())
	}
}

// dbKey names key in database d unambiguously, for maps over the keys of
// every database.
func dbKey(d uint8, key []byte) string { return string([]byte{d}) + string(key) }
