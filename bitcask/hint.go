package bitcask

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A hint file lists, for one data file, every record a replay of that file
// applies, without values, so Open can rebuild the key directory without
// reading the data. Layout (little endian):
//
//	header   8 bytes   magic "bchint02" (or "bchint01", below)
//	entries  32 bytes + key each:
//	         seq u64 | expireAt i64 | offset u32 | key length u32 |
//	         logical value length u32 | kind u8 | value type u8 |
//	         key type u8 | database u8 | key
//	         (kind, value type and key type as in the record; the key of
//	         an element in the record's form, see doc.go; the database
//	         0-15 as in the record's flags: a hint written before databases
//	         existed has 0 there, database 0. With hintValueFlag (0x80)
//	         set in the database byte, the entry is a sorted set's
//	         element put and expireAt's 8 bytes are its logical value,
//	         the score's bits, which an element never has an expiry to
//	         fill: Open then builds the set's index without reading each
//	         score from the data file.)
//	trailer  24 bytes: data file size u64 | entry count u64 |
//	         CRC-32C u32 of every byte before it | magic "hend"
//
// A hint is used only if its CRC matches and the data file's size equals
// the size in the trailer; otherwise Open scans the data file. Hints
// written before scores were carried have the magic "bchint01" and never
// the flag; Open reads those as before (the scores from the data file).
// A version that knows only "bchint01" takes a new hint for a bad one and
// scans its data file.

// These constants are part of the wire format and should not be changed.
const (
	hintMagic       = "bchint02"
	hintMagicV1     = "bchint01"
	hintValueFlag   = 0x80
	hintEndMagic    = "hend"
	hintHeaderSize  = 8
	hintEntrySize   = 32
	hintTrailerSize = 24
)

var errBadHint = errors.New("bitcask: bad hint file")

// hintSizeError is a hint that describes another size of its data file.
type hintSizeError struct{ hinted, actual int64 }

func (e *hintSizeError) Error() string {
	return fmt.Sprintf("%v: describes %d bytes of data, the file has %d", errBadHint, e.hinted, e.actual)
}

func (e *hintSizeError) Unwrap() error { return errBadHint }

type hintWriter struct {
	f     *os.File
	w     *bufio.Writer
	crc   uint32
	count uint64
	tmp   string
	final string
	buf   [hintEntrySize]byte
}

func createHint(dir string, id uint64) (*hintWriter, error) {
	final := filepath.Join(dir, hintName(id))
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	hw := &hintWriter{f: f, w: bufio.NewWriterSize(f, 256<<10), tmp: tmp, final: final}
	hw.write([]byte(hintMagic))
	return hw, nil
}

func (hw *hintWriter) write(b []byte) {
	hw.crc = crc32.Update(hw.crc, castagnoli, b)
	hw.w.Write(b) // errors surface at Flush
}

// add writes the entry of the record at off; stored is its value as
// stored, or nil when the caller did not read it (a record larger than a
// scanner's window).
func (hw *hintWriter) add(off int64, h *header, key []byte, vlen uint32, stored []byte) {
	b := hw.buf[:]
	binary.LittleEndian.PutUint64(b[0:], h.seq)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.expireAt))
	binary.LittleEndian.PutUint32(b[16:], uint32(off))
	binary.LittleEndian.PutUint32(b[20:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[24:], vlen)
	b[28], b[29], b[30], b[31] = h.kind, h.valType, h.keyType, h.db()
	if bits, ok := scoreBits(h, stored); ok {
		binary.LittleEndian.PutUint64(b[8:], bits)
		b[31] |= hintValueFlag
	}
	hw.write(b)
	hw.write(key)
	hw.count++
}

// finish writes the trailer, fsyncs, and renames the hint into place.
// The caller fsyncs the directory.
func (hw *hintWriter) finish(dataSize int64) error {
	var t [hintTrailerSize]byte
	binary.LittleEndian.PutUint64(t[0:], uint64(dataSize))
	binary.LittleEndian.PutUint64(t[8:], hw.count)
	hw.write(t[:16])
	binary.LittleEndian.PutUint32(t[16:], hw.crc)
	copy(t[20:], hintEndMagic)
	hw.w.Write(t[16:])
	err := hw.w.Flush()
	if err == nil {
		err = hw.f.Sync()
	}
	if cerr := hw.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(hw.tmp, hw.final)
	}
	if err != nil {
		os.Remove(hw.tmp)
	}
	return err
}

func (hw *hintWriter) abort() {
	hw.f.Close()
	os.Remove(hw.tmp)
}

// writeHintFromScan writes the hint of an immutable data file by scanning
// it: a rotated file, or at Close the active file, which stays immutable
// until the next Open loads the hint and removes it before appending (see
// recover). A hint never describes a file that may still grow, so after a
// crash every hint matches its file. Callers hold mergeMu or are Close.
func (db *DB) writeHintFromScan(f *dataFile) error {
	size := f.size.Load()
	// The hint must never describe data that is not on disk.
	if err := f.f.Sync(); err != nil {
		return err
	}
	db.fsyncs.Add(1)
	hw, err := createHint(db.dir, f.id)
	if err != nil {
		return err
	}
	sc := newScanner()
	sc.reset(f.f, size)
	scanFile(sc, func(r *scanRec) { hw.add(r.off, &r.h, r.key, r.vlen, r.value) })
	if err := hw.finish(size); err != nil {
		return err
	}
	return syncDir(db.dir)
}

// queueHint asks the hint goroutine to write f's hint. Dropped when the
// queue is full: Open scans a file without a hint and queues it again.
func (db *DB) queueHint(f *dataFile) {
	if db.opts.DisableHints {
		return
	}
	select {
	case db.hintq <- f:
	default:
	}
}

func (db *DB) hintLoop() {
	defer db.wg.Done()
	for {
		select {
		case <-db.quit:
			return
		case f := <-db.hintq:
			db.mergeMu.Lock()
			db.activeMu.Lock()
			active := db.active
			db.activeMu.Unlock()
			db.filesMu.Lock()
			present := slicesContains(db.files, f) && f != active
			if present {
				f.acquire()
			}
			db.filesMu.Unlock()
			if present {
				if err := db.writeHintFromScan(f); err != nil {
					db.log.Warn("writing hint file failed", "file", f.path, "error", err)
				}
				f.release()
			}
			db.mergeMu.Unlock()
		}
	}
}

func slicesContains(fs []*dataFile, f *dataFile) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

// loadHint replays f's hint file. It returns false, without having applied
// anything, when the hint's trailer or CRC is bad or it describes a
// different file size; it returns false after applying a prefix only for a
// hint whose CRC matches but whose contents are malformed, which replaying
// the data file afterwards then repairs (replay is idempotent per file).
func (db *DB) loadHint(f *dataFile, rs *replayState) (bool, error) {
	hf, err := os.Open(filepath.Join(db.dir, hintName(f.id)))
	if err != nil {
		return false, err
	}
	defer hf.Close()
	fi, err := hf.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	if size < hintHeaderSize+hintTrailerSize {
		return false, fmt.Errorf("%w: %d bytes", errBadHint, size)
	}
	// Read through a mapping: no copy, and an entry is decoded where it
	// lies. The hint is replaced, never written in place, so the bytes do
	// not change under the mapping.
	mm, err := unix.Mmap(int(hf.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false, err
	}
	defer unix.Munmap(mm)
	t := mm[size-hintTrailerSize:]
	if string(t[20:]) != hintEndMagic {
		return false, fmt.Errorf("%w: no trailer", errBadHint)
	}
	dataSize := int64(binary.LittleEndian.Uint64(t[0:]))
	count := binary.LittleEndian.Uint64(t[8:])
	if dataSize != f.size.Load() {
		return false, &hintSizeError{hinted: dataSize, actual: f.size.Load()}
	}
	// The CRC first, before anything is applied.
	if crc32.Checksum(mm[:size-8], castagnoli) != binary.LittleEndian.Uint32(t[16:]) {
		return false, fmt.Errorf("%w: CRC mismatch", errBadHint)
	}
	magic := string(mm[:hintHeaderSize])
	if magic != hintMagic && magic != hintMagicV1 {
		return false, fmt.Errorf("%w: bad magic", errBadHint)
	}
	v1 := magic == hintMagicV1
	body := mm[hintHeaderSize : size-hintTrailerSize]
	var eb [hintEntrySize]byte
	var n uint64
	for len(body) > 0 {
		if len(body) < hintEntrySize {
			return false, fmt.Errorf("%w: truncated entry", errBadHint)
		}
		copy(eb[:], body) // the flag and score are cleared below, not in the file
		body = body[hintEntrySize:]
		var score *uint64
		var bits uint64
		if eb[31]&hintValueFlag != 0 {
			if v1 || eb[28] != kindElemPut || eb[30] != keyTypeZSet {
				return false, fmt.Errorf("%w: a value on an entry of kind %d, key type %d", errBadHint, eb[28], eb[30])
			}
			bits = binary.LittleEndian.Uint64(eb[8:])
			score = &bits
			eb[31] &^= hintValueFlag
			clear(eb[8:16]) // the element's expiry
		}
		h := header{
			seq:      binary.LittleEndian.Uint64(eb[0:]),
			expireAt: int64(binary.LittleEndian.Uint64(eb[8:])),
			keyLen:   binary.LittleEndian.Uint32(eb[20:]),
			kind:     eb[28],
			valType:  eb[29],
			keyType:  eb[30],
			flags:    flagSingle | dbFlags(eb[31]&0x0f),
		}
		off := int64(binary.LittleEndian.Uint32(eb[16:]))
		vlen := binary.LittleEndian.Uint32(eb[24:])
		h.valLen = storedLen(h.valType, vlen)
		if h.kind != kindPut && h.kind != kindElemPut && vlen != 0 {
			return false, fmt.Errorf("%w: value length on a kind %d entry", errBadHint, h.kind)
		}
		if err := h.check(); err != nil || eb[31] >= NumDBs || int64(h.keyLen) > int64(len(body)) || off+h.size() > dataSize {
			return false, fmt.Errorf("%w: malformed entry", errBadHint)
		}
		if h.valType == valTypeInt && (vlen == 0 || vlen > 20) {
			return false, fmt.Errorf("%w: integer of %d digits", errBadHint, vlen)
		}
		key := body[:h.keyLen:h.keyLen]
		body = body[h.keyLen:]
		if checkElemKey(&h, key) != nil {
			return false, fmt.Errorf("%w: malformed element key", errBadHint)
		}
		db.replay(f, off, &h, key, vlen, score, rs)
		n++
	}
	if n != count {
		return false, fmt.Errorf("%w: %d entries, trailer says %d", errBadHint, n, count)
	}
	return true, nil
}
