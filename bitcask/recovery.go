package bitcask

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Open opens the database in dir, creating the directory if needed. It
// locks the directory (ErrLocked if another process, or another DB in this
// process, has it open), removes leftovers of an interrupted merge, loads
// every data file from its hint file when the hint is valid and by scanning
// it otherwise, and cuts a torn tail off the newest file. See the package
// comment for what recovery does with bad records.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bitcask: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	eng := &engine{
		dir:   dir,
		opts:  opts,
		log:   opts.Logger,
		lock:  lock,
		quit:  make(chan struct{}),
		hintq: make(chan *dataFile, 4096),
	}
	for i := range eng.views {
		v := &DB{engine: eng, num: uint8(i), idx: make(map[string]*NamespaceStat)}
		v.kd.init()
		eng.views[i] = v
	}
	db := eng.views[0]
	db.sy.cond.L = &db.sy.mu
	db.policy.Store(int32(opts.Sync))
	db.ftab.Store(new([]*dataFile))
	start := time.Now()
	if err := db.recover(); err != nil {
		for _, f := range db.files {
			f.release()
		}
		unlockDir(lock)
		return nil, err
	}
	db.log.Info("opened", "dir", dir, "keys", db.totalKeys(), "files", len(db.files),
		"hints_loaded", db.recovery.hintsLoaded, "files_scanned", db.recovery.scanned,
		"truncated_records", db.recovery.truncated, "skipped_records", db.recovery.skipped,
		"elapsed", time.Since(start))
	db.wg.Add(1)
	go db.syncLoop()
	db.wg.Add(1)
	go db.hintLoop()
	if opts.MergeCheckInterval > 0 {
		db.wg.Add(1)
		go db.mergeLoop()
	}
	if opts.ExpirySweepInterval > 0 {
		db.wg.Add(1)
		go db.sweepLoop()
	}
	return db, nil
}

func (db *DB) recover() error {
	des, err := os.ReadDir(db.dir)
	if err != nil {
		return fmt.Errorf("bitcask: %w", err)
	}
	var ids []uint64
	hints := make(map[uint64]bool)
	changed := false
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// Output of a merge (or a hint) that never got its final name.
			db.log.Info("removing leftover temporary file", "file", name)
			if err := os.Remove(filepath.Join(db.dir, name)); err != nil {
				return fmt.Errorf("bitcask: %w", err)
			}
			changed = true
			continue
		}
		id, suf, ok := parseFileName(name)
		if !ok || de.IsDir() {
			continue
		}
		if suf == dataSuffix {
			ids = append(ids, id)
		} else {
			hints[id] = true
		}
	}
	slices.Sort(ids)
	for id := range hints {
		if _, ok := slices.BinarySearch(ids, id); !ok {
			// The data file went first when a merge deleted its inputs.
			os.Remove(filepath.Join(db.dir, hintName(id)))
			delete(hints, id)
			changed = true
		}
	}
	if changed {
		if err := syncDir(db.dir); err != nil {
			return fmt.Errorf("bitcask: %w", err)
		}
	}
	for _, id := range ids {
		f, err := openDataFile(db.dir, id, false)
		if err != nil {
			return fmt.Errorf("bitcask: %w", err)
		}
		if err := db.addFileLocked(f); err != nil {
			f.release()
			return err
		}
	}

	rs := new(replayState)
	sc := newScanner()
	hinted := make(map[*dataFile]bool)
	for i, f := range db.files {
		newest := i == len(db.files)-1
		if hints[f.id] {
			ok, err := db.loadHint(f, rs)
			if ok {
				db.recovery.hintsLoaded++
				hinted[f] = true
				continue
			}
			var se *hintSizeError
			if errors.As(err, &se) && se.hinted < se.actual {
				// The file was appended to after its hint was written,
				// which only an earlier version did (it kept writing to
				// the file Close had hinted), and the process then
				// stopped without Close: expected after a crash.
				db.log.Info("hint file predates the last writes to its data file, as after a crash; scanning the data file",
					"file", hintName(f.id), "hint_bytes", se.hinted, "data_bytes", se.actual)
			} else {
				db.log.Warn("hint file unusable; scanning the data file", "file", hintName(f.id), "error", err)
			}
			os.Remove(filepath.Join(db.dir, hintName(f.id)))
		}
		db.recovery.scanned++
		sc.reset(f.f, f.size.Load())
		st := scanFile(sc, func(r *scanRec) {
			var score *uint64
			if bits, ok := scoreBits(&r.h, r.value); ok {
				score = &bits
			}
			db.replay(f, r.off, &r.h, r.key, r.vlen, score, rs)
		})
		if st.maxSeq > rs.maxSeq {
			rs.maxSeq = st.maxSeq
		}
		db.recovery.skipped += st.skipped
		db.recovery.skippedBytes += st.skippedBytes
		if st.skipped > 0 {
			db.log.Warn("skipped bad records", "file", f.path, "records", st.skipped, "bytes", st.skippedBytes)
		}
		if st.tail < 0 {
			continue
		}
		cut := f.size.Load() - st.tail
		if newest && isPreallocTail(f.f, st.tail, f.size.Load()) {
			// Zeros preallocate wrote ahead of the data (a crash left
			// them): not a torn record.
			db.log.Debug("cutting preallocated space off the newest data file", "file", f.path, "offset", st.tail, "bytes", cut)
			if err := f.f.Truncate(st.tail); err != nil {
				return fmt.Errorf("bitcask: truncate %s: %w", f.path, err)
			}
			if err := f.f.Sync(); err != nil {
				return fmt.Errorf("bitcask: fsync %s: %w", f.path, err)
			}
			f.size.Store(st.tail)
			f.alloc = st.tail
			continue
		}
		if !newest {
			// An older file is never rewritten; its bad tail is skipped.
			db.recovery.skipped += st.tailRecs
			db.recovery.skippedBytes += cut
			db.log.Warn("skipped bad tail of an older data file", "file", f.path, "offset", st.tail, "bytes", cut)
			continue
		}
		db.log.Warn("truncating torn tail of the newest data file", "file", f.path, "offset", st.tail, "records", st.tailRecs, "bytes", cut)
		if err := f.f.Truncate(st.tail); err != nil {
			return fmt.Errorf("bitcask: truncate %s: %w", f.path, err)
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("bitcask: fsync %s: %w", f.path, err)
		}
		f.size.Store(st.tail)
		f.alloc = st.tail
		db.recovery.truncated += st.tailRecs
		db.recovery.truncatedBytes += cut
	}
	for i, v := range db.views {
		v.foldAll(rs.dbs[i])
		v.finishReplay()
		v.finishColls(rs.dbs[i])
	}
	db.nextSeq = rs.maxSeq + 1
	db.written.Store(rs.maxSeq)
	db.sy.durable = rs.maxSeq

	// Keep appending to the newest file unless it is full or merge output.
	// Its hint (Close wrote it) goes first, durably: a hint must never
	// describe a file that may still grow, or a crash would leave one that
	// disagrees with its file.
	if n := len(db.files); n > 0 {
		last := db.files[n-1]
		if last.id&idSubMask == 0 && last.size.Load() < db.opts.MaxFileSize {
			if hinted[last] {
				if err := os.Remove(filepath.Join(db.dir, hintName(last.id))); err != nil {
					return fmt.Errorf("bitcask: %w", err)
				}
				if err := syncDir(db.dir); err != nil {
					return fmt.Errorf("bitcask: %w", err)
				}
			}
			db.active = last
		}
	}
	if db.active == nil {
		id := uint64(1) << idSubBits
		if n := len(db.files); n > 0 {
			id = (db.files[n-1].id>>idSubBits + 1) << idSubBits
		}
		f, err := openDataFile(db.dir, id, true)
		if err != nil {
			return fmt.Errorf("bitcask: create data file: %w", err)
		}
		if err := syncDir(db.dir); err != nil {
			f.release()
			return fmt.Errorf("bitcask: %w", err)
		}
		if err := db.addFileLocked(f); err != nil {
			f.release()
			return err
		}
		db.active = f
	}
	for _, f := range db.files {
		if f != db.active && !hinted[f] {
			db.queueHint(f)
		}
	}
	return nil
}

// finishReplay drops keys that expired while the DB was closed and computes
// the counters from the key directory.
func (db *DB) finishReplay() {
	now := db.nowMs()
	tab := *db.ftab.Load()
	var expired, keys, live int64
	for i := range db.kd.shards {
		s := &db.kd.shards[i]
		s.filter(func(e *entry) bool {
			if e.expired(now) {
				expired++
				return false
			}
			k := s.keyOf(e)
			keys++
			live += e.liveLen(len(k))
			tab[e.file].live.Add(e.recSize(len(k)))
			db.indexAdd(k, 1, e.liveLen(len(k)))
			return true
		})
	}
	db.expiredRemoved.Add(expired)
	db.keys.Store(keys)
	db.liveBytes.Store(live)
}

// scanWindow is how much of a data file a scanner reads at a time.
const scanWindow = 256 << 10

// scanner reads the records of one data file through a window buffer,
// checking every size against the file size before using it.
type scanner struct {
	r      io.ReaderAt
	size   int64
	buf    []byte // buf[:n] holds file bytes [bufOff, bufOff+n)
	bufOff int64
	n      int
	keyBuf []byte // the key of a record larger than the window
	// err is the first read error (not corruption) since reset: a merge
	// must not take bytes it could not read for damaged ones.
	err error
}

// scanRec is a valid record found by a scanner.
type scanRec struct {
	off int64
	h   header
	key []byte // valid until the scanner reads again
	// value is the stored value; nil for a record larger than the window
	// and, in a batch of several records, for all but a sorted set's
	// element puts (scores).
	value []byte
	vlen  uint32 // logical value length
}

func newScanner() *scanner { return &scanner{buf: make([]byte, scanWindow)} }

func (s *scanner) reset(r io.ReaderAt, size int64) {
	s.r, s.size, s.bufOff, s.n, s.err = r, size, 0, 0, nil
}

// at returns the n bytes at off; n <= len(s.buf) and off+n <= s.size.
func (s *scanner) at(off int64, n int) ([]byte, error) {
	if off >= s.bufOff && off+int64(n) <= s.bufOff+int64(s.n) {
		i := off - s.bufOff
		return s.buf[i : i+int64(n)], nil
	}
	m := int64(len(s.buf))
	if m > s.size-off {
		m = s.size - off
	}
	s.bufOff, s.n = off, 0
	k, err := s.r.ReadAt(s.buf[:m], off)
	if k < int(m) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if s.err == nil {
			s.err = err
		}
		return nil, err
	}
	s.n = int(m)
	return s.buf[:n], nil
}

// read decodes and verifies the record at off.
func (s *scanner) read(off int64, r *scanRec) error {
	if s.size-off < headerSize {
		return fmt.Errorf("%w: %d bytes left, shorter than a header", ErrCorrupt, s.size-off)
	}
	hb, err := s.at(off, headerSize)
	if err != nil {
		return err
	}
	h := decodeHeader(hb)
	if err := h.check(); err != nil {
		return err
	}
	size := h.size()
	if size > s.size-off {
		return fmt.Errorf("%w: record of %d bytes, %d left in the file", ErrCorrupt, size, s.size-off)
	}
	*r = scanRec{off: off, h: h, vlen: h.valLen}
	if size <= int64(len(s.buf)) {
		b, err := s.at(off, int(size))
		if err != nil {
			return err
		}
		if crc32.Checksum(b[offTime:], castagnoli) != h.crc {
			return fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
		}
		r.key = b[headerSize : headerSize+h.keyLen]
		r.value = b[headerSize+h.keyLen:]
		if err := checkElemKey(&h, r.key); err != nil {
			return err
		}
		if h.valType == valTypeInt {
			r.vlen = uint32(logicalLen(h.valType, r.value))
		}
		return nil
	}
	// Larger than the window: stream it through the CRC.
	crc := crc32.Update(0, castagnoli, hb[offTime:])
	if cap(s.keyBuf) < int(h.keyLen) {
		s.keyBuf = make([]byte, h.keyLen)
	}
	key := s.keyBuf[:h.keyLen]
	if _, err := s.r.ReadAt(key, off+headerSize); err != nil {
		if s.err == nil {
			s.err = err
		}
		return err
	}
	crc = crc32.Update(crc, castagnoli, key)
	vstart := off + headerSize + int64(h.keyLen)
	for p, end := vstart, off+size; p < end; {
		n := min(int64(len(s.buf)), end-p)
		b, err := s.at(p, int(n))
		if err != nil {
			return err
		}
		crc = crc32.Update(crc, castagnoli, b)
		p += n
	}
	if crc != h.crc {
		return fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
	}
	if err := checkElemKey(&h, key); err != nil {
		return err
	}
	r.key = key
	if h.valType == valTypeInt {
		b, err := s.at(vstart, intValueSize)
		if err != nil {
			return err
		}
		r.vlen = uint32(logicalLen(h.valType, b))
	}
	return nil
}

// resync returns the offset of the first valid record at or after from, or
// the file size when there is none.
func (s *scanner) resync(from int64) int64 {
	var r scanRec
	for p := from; p+headerSize <= s.size; p++ {
		hb, err := s.at(p, headerSize)
		if err != nil {
			return s.size
		}
		// Cheap filters before a full decode and CRC.
		if k := hb[offKind]; k < kindPut || k > kindFlushDB || hb[offKeyType] > keyTypeList || hb[offFlags]&^(flagSingle|flagDBMask) != 0 {
			continue
		}
		if s.read(p, &r) == nil {
			return p
		}
	}
	return s.size
}

// scanStats is what scanFile found besides the records it emitted.
type scanStats struct {
	// tail is the offset from which nothing valid follows but an
	// incomplete batch or garbage, or -1 when the file ends cleanly.
	tail     int64
	tailRecs int64 // records in that tail (valid records of the incomplete batch, plus one for garbage)
	skipped  int64 // bad regions and records of incomplete batches before the tail
	// skippedBytes counts the bytes of those.
	skippedBytes int64
	maxSeq       uint64
}

type pendingRec struct {
	off      int64
	h        header
	keyStart int // the key in the arena, then the value if valLen > 0
	valLen   int
	vlen     uint32
}

// scanFile emits, in order, every record of every complete batch in the
// file. A bad record is skipped together with the rest of its batch: the
// scanner resyncs at the next valid record. A batch is complete when its
// records run from one with the first flag to one with the last flag with
// nothing skipped in between.
func scanFile(s *scanner, emit func(r *scanRec)) scanStats {
	st := scanStats{tail: -1}
	var (
		r        scanRec
		inBatch  bool
		batchOff int64
		pending  []pendingRec
		arena    []byte
	)
	dropBatch := func(end int64) {
		if inBatch {
			st.skipped += int64(len(pending))
			st.skippedBytes += end - batchOff
		}
		inBatch, pending, arena = false, pending[:0], arena[:0]
	}
	off := int64(0)
	for off < s.size {
		if err := s.read(off, &r); err != nil {
			next := s.resync(off + 1)
			if next >= s.size {
				st.tail = off
				st.tailRecs = 1
				if inBatch {
					st.tail = batchOff
					st.tailRecs += int64(len(pending))
				}
				return st
			}
			dropBatch(off)
			st.skipped++
			st.skippedBytes += next - off
			off = next
			continue
		}
		if r.h.seq > st.maxSeq {
			st.maxSeq = r.h.seq
		}
		size := r.h.size()
		first, last := r.h.flags&flagBatchFirst != 0, r.h.flags&flagBatchLast != 0
		switch {
		case first && last:
			dropBatch(off)
			emit(&r)
		case first:
			dropBatch(off)
			inBatch, batchOff = true, off
			fallthrough
		case inBatch:
			p := pendingRec{off: off, h: r.h, keyStart: len(arena), vlen: r.vlen}
			arena = append(arena, r.key...)
			if r.h.kind == kindElemPut && r.h.keyType == keyTypeZSet && r.value != nil {
				// A score (8 bytes) goes to the hint and the index.
				p.valLen = len(r.value)
				arena = append(arena, r.value...)
			}
			pending = append(pending, p)
			if last {
				for _, p := range pending {
					kend := p.keyStart + int(p.h.keyLen)
					pr := scanRec{off: p.off, h: p.h, key: arena[p.keyStart:kend:kend], vlen: p.vlen}
					if p.valLen > 0 {
						pr.value = arena[kend : kend+p.valLen : kend+p.valLen]
					}
					emit(&pr)
				}
				inBatch, pending, arena = false, pending[:0], arena[:0]
			}
		default:
			// The rest of a batch whose start was lost.
			st.skipped++
			st.skippedBytes += size
		}
		off += size
	}
	if inBatch {
		st.tail = batchOff
		st.tailRecs = int64(len(pending))
	}
	return st
}
