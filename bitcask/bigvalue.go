package bitcask

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// bigValueSize is the length from which a put's value is not copied into
// the Tx's buffer. Its header and key are; the value stays in the caller's
// memory, its CRC is computed once (and combined with the header's when the
// commit rewrites the header's flags), and the commit writes it with one
// pwritev behind its header. Copying a 512 MiB value twice and reading it
// three times (copy, CRC, the CRC again for the batch flags, the write)
// took seconds and left the copy in the heap.
const bigValueSize = 1 << 20

// piece is part of a big value: bytes, or (b nil) a run of zeros.
type piece struct {
	b     []byte
	zeros int64
}

func (p piece) len() int64 {
	if p.b != nil {
		return int64(len(p.b))
	}
	return p.zeros
}

// extValue is a big put's value, in pieces. Zero runs are never
// materialised: their CRC is folded in (crcZeros) and the file gets a
// hole where it has no bytes yet (see vecWriter.zeros). A piece may be a
// slice of a data file's mapping (Splice), kept mapped until the Update
// returns (txState.after).
type extValue struct {
	parts []piece
	n     int64 // the value's length
	// bodyCRC is the CRC of the record's key and value (everything after
	// the header), computed on its own so that the header may change.
	bodyCRC uint32
	bodyLen int64 // key plus value length
}

func (x *extValue) len() int64 { return x.n }

// add appends a piece, dropping empty ones.
func (x *extValue) add(p piece) {
	if p.len() > 0 {
		x.parts = append(x.parts, p)
		x.n += p.len()
	}
}

// appendTo appends the value to dst.
func (x *extValue) appendTo(dst []byte) []byte {
	for _, p := range x.parts {
		if p.b != nil {
			dst = append(dst, p.b...)
		} else {
			dst = append(dst, make([]byte, p.zeros)...)
		}
	}
	return dst
}

// slice returns the pieces of the value's bytes [from, to).
func (x *extValue) slice(from, to int64) []piece {
	var out []piece
	var pos int64
	for _, p := range x.parts {
		l := p.len()
		lo, hi := max(from, pos)-pos, min(to, pos+l)-pos
		pos += l
		if lo >= hi {
			continue
		}
		if p.b != nil {
			out = append(out, piece{b: p.b[lo:hi]})
		} else {
			out = append(out, piece{zeros: hi - lo})
		}
	}
	return out
}

// setFlags is setFlags for a record whose value is x: rec is its header
// and key.
func (x *extValue) setFlags(rec []byte, flags byte) {
	rec[offFlags] = flags
	x.sealHeader(rec)
}

// sealHeader computes the CRC of the record whose header is rec[:headerSize].
func (x *extValue) sealHeader(rec []byte) {
	crc := crcCombine(crcUpdate(0, rec[offTime:headerSize]), x.bodyCRC, x.bodyLen)
	binary.LittleEndian.PutUint32(rec[offCRC:], crc)
}

// crcParts continues crc over the pieces. A piece may be mapped file
// memory: see mappedRead.
func crcParts(crc uint32, parts []piece) (out uint32, err error) {
	err = mappedRead(func() error {
		for _, p := range parts {
			if p.b != nil {
				crc = crcUpdate(crc, p.b)
			} else {
				crc = crcZeros(crc, p.zeros)
			}
		}
		return nil
	})
	return crc, err
}

// crcMappedParts is crcParts over pieces of a file's shared mapping, a
// chunk at a time, each chunk's pages dropped from the process once
// summed (dropMapped): checking a 512 MiB value must not make it resident.
func crcMappedParts(crc uint32, parts []piece) (out uint32, err error) {
	const chunk = 4 << 20
	err = mappedRead(func() error {
		for _, p := range parts {
			if p.b == nil {
				crc = crcZeros(crc, p.zeros)
				continue
			}
			for b := p.b; len(b) > 0; {
				n := min(len(b), chunk)
				crc = crcUpdate(crc, b[:n])
				dropMapped(b[:n])
				b = b[n:]
			}
		}
		return nil
	})
	return crc, err
}

// dropMapped drops from the process the whole pages inside b, bytes of a
// file's shared mapping (see dropPages); a partial page at either end
// stays. Never for memory that is not such a mapping: MADV_DONTNEED would
// zero it.
func dropMapped(b []byte) {
	page := unix.Getpagesize()
	if len(b) < page {
		return
	}
	skip := (page - int(uintptr(unsafe.Pointer(&b[0]))%uintptr(page))) % page
	if n := (len(b) - skip) / page * page; n > 0 {
		_ = unix.Madvise(b[skip:skip+n], unix.MADV_DONTNEED)
	}
}

// mappedRead runs fn, which reads mapped file memory: an I/O error while
// the kernel pages it in is a fault, which becomes an error here instead
// of killing the process.
func mappedRead(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = faultError{r}
		}
	}()
	return fn()
}

// faultError is a fault while reading mapped memory (mappedRead).
type faultError struct{ v any }

func (e faultError) Error() string { return fmt.Sprintf("bitcask: reading mapped data: %v", e.v) }

// Splice writes part into key's string value at offset off, padding with
// zero bytes past its end (a missing key is an empty value), and keeps the
// key's expiry: SETRANGE, and APPEND at off = the value's length. It
// returns the new length. A big value is spliced on disk rather than in
// memory: its bytes are read from the data file's mapping, where its holes
// (zeros a Splice left) are neither read nor written again, so
// SETRANGE k 536870911 x costs about the same on a missing key and on a
// 512 MiB one. tag is as PutTagged's. part, like Put's value, must not
// change until the Update returns.
func (tx *Tx) Splice(key []byte, off int64, part []byte, tag uint8) (int64, error) {
	if tx.isDone() {
		return 0, ErrTxDone
	}
	if off < 0 {
		return 0, fmt.Errorf("bitcask: negative offset %d", off)
	}
	db, st := tx.db, tx.st
	h := xxhash.Sum64(key)
	ks := db.txLookup(st, h, key)
	var old extValue
	var expireAt int64
	if ks.visible(db.nowMs()) {
		if ks.typ != 0 {
			return 0, ErrWrongType
		}
		expireAt = ks.expireAt
		if ks.valOp < 0 && ks.vtype == valTypeBytes && int64(ks.vlen) >= bigValueSize {
			parts, err := db.storedParts(&st.after, h, key)
			if err != nil {
				return 0, err
			}
			for _, p := range parts {
				old.add(p)
			}
		} else {
			v, _, err := db.txGet(st, h, key)
			if err != nil {
				return 0, err
			}
			old.add(piece{b: v})
		}
	}
	end := off + int64(len(part))
	var x extValue
	for _, p := range old.slice(0, off) {
		x.add(p)
	}
	x.add(piece{zeros: off - min(off, old.n)})
	x.add(piece{b: part})
	for _, p := range old.slice(end, old.n) {
		x.add(p)
	}
	if x.n < bigValueSize {
		v := x.appendTo(make([]byte, 0, x.n))
		return x.n, db.txPut(st, key, v, expireAt, tag)
	}
	if x.n > db.opts.MaxValueSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, x.n, db.opts.MaxValueSize)
	}
	return x.n, db.txPutBig(st, key, x, expireAt, tag)
}

// storedParts returns the value of key's current record (a put of bytes)
// as pieces of the data file's mapping, its holes as zero runs, after
// checking the record's header, key and CRC. The file stays open and
// mapped until the caller runs the functions appended to after (a Tx's
// Update, when it returns).
func (db *DB) storedParts(after *[]func(), h uint64, key []byte) ([]piece, error) {
	loc, f, ok := db.acquireEntry(h, key)
	if !ok {
		return nil, ErrNotFound
	}
	*after = append(*after, f.release)

	size := loc.recSize(len(key))
	off := int64(loc.off)
	var rec []byte
	if mm := f.mapping(db.opts.MaxFileSize); off+size <= int64(len(mm)) {
		rec = mm[off : off+size : off+size]
		*after = append(*after, func() { dropPages(mm, off, size) })
	} else {
		r, unmap, err := mapRecord(f, off, size)
		if err != nil {
			return nil, fmt.Errorf("bitcask: map %s at %d: %w", f.path, off, err)
		}
		*after = append(*after, unmap)
		rec = r
	}
	var hd header
	keyOK := false
	if err := mappedRead(func() error {
		hd = decodeHeader(rec)
		keyOK = bytes.Equal(rec[headerSize:headerSize+len(key)], key)
		return hd.check()
	}); err != nil {
		return nil, fmt.Errorf("%s at offset %d: %w", f.path, off, err)
	}
	if hd.kind != kindPut || hd.valType != valTypeBytes || hd.size() != size || !keyOK {
		return nil, fmt.Errorf("%w: %s at offset %d does not hold the key's value", ErrCorrupt, f.path, off)
	}
	// The CRC over the header, the key and the value's data; holes count
	// as the zeros they read as, without being read.
	vstart := off + headerSize + int64(len(key))
	parts := dataParts(int(f.f.Fd()), rec[headerSize+len(key):], vstart)
	var hb [headerSize]byte
	encodeHeader(hb[:], &hd)
	crc, err := crcMappedParts(crcUpdate(crcUpdate(0, hb[offTime:]), key), parts)
	if err != nil {
		return nil, err
	}
	if crc != hd.crc {
		return nil, fmt.Errorf("%w: %s at offset %d: CRC mismatch", ErrCorrupt, f.path, off)
	}
	return parts, nil
}

// GetRange appends to dst the bytes [start, end) of key's string value
// (the caller clamps them to its length, MetaOf's Len), seeing the Tx's
// own writes: GETRANGE. A big value is not read whole: its CRC is checked
// over its data, its holes counted as the zeros they read as, and only the
// range is copied.
func (tx *Tx) GetRange(dst, key []byte, start, end int64) ([]byte, error) {
	if tx.isDone() {
		return dst, ErrTxDone
	}
	h := xxhash.Sum64(key)
	ks := tx.db.txLookup(tx.st, h, key)
	if ks.valOp >= 0 || !ks.visible(tx.db.nowMs()) {
		v, _, err := tx.db.txGet(tx.st, h, key)
		return appendRange(dst, v, start, end), err
	}
	return tx.db.getRange(dst, h, key, start, end)
}

// GetRange is Tx.GetRange outside a transaction.
func (db *DB) GetRange(dst, key []byte, start, end int64) ([]byte, error) {
	return db.getRange(dst, xxhash.Sum64(key), key, start, end)
}

func (db *DB) getRange(dst []byte, h uint64, key []byte, start, end int64) ([]byte, error) {
	m, ok := db.MetaOfHashed(h, key, 0)
	if !ok {
		return dst, ErrNotFound
	}
	if m.Type != TypeString {
		return dst, ErrWrongType
	}
	if m.Len < bigValueSize {
		v, _, err := db.getAt(nil, h, key, 0)
		return appendRange(dst, v, start, end), err
	}
	var after []func()
	defer func() {
		for _, fn := range after {
			fn()
		}
	}()
	parts, err := db.storedParts(&after, h, key)
	if err != nil {
		return dst, err
	}
	var x extValue
	for _, p := range parts {
		x.add(p)
	}
	r := extValue{}
	for _, p := range x.slice(start, end) {
		r.add(p)
	}
	err = mappedRead(func() error { dst = r.appendTo(dst); return nil })
	return dst, err
}

// appendRange appends v[start:end], clamped to v.
func appendRange(dst, v []byte, start, end int64) []byte {
	end = min(end, int64(len(v)))
	if start >= end {
		return dst
	}
	return append(dst, v[start:end]...)
}

// dataParts splits v, the bytes of a file from offset at, into its data
// and its holes (SEEK_DATA/SEEK_HOLE): a hole reads as zeros, so it
// becomes a zero run that is not read. A file system without the seeks
// gives one piece.
func dataParts(fd int, v []byte, at int64) []piece {
	end := at + int64(len(v))
	var parts []piece
	for pos := at; pos < end; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil || data >= end {
			if err != nil && !errors.Is(err, unix.ENXIO) {
				return append(parts, piece{b: v[pos-at:]}) // no seeks: all data
			}
			return append(parts, piece{zeros: end - pos}) // a hole to the end
		}
		if data > pos {
			parts = append(parts, piece{zeros: data - pos})
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > end {
			hole = end
		}
		parts = append(parts, piece{b: v[data-at : hole-at]})
		pos = hole
	}
	return parts
}

// txPutBig is txPut for a value of bigValueSize or more.
func (db *DB) txPutBig(st *txState, key []byte, x extValue, expireAt int64, tag byte) error {
	if err := db.checkSizes(key, int(min(x.len(), math.MaxInt32))); err != nil {
		return err
	}
	h := xxhash.Sum64(key)
	var prev keyState
	if st.trackLive {
		prev = db.txLookup(st, h, key)
	}
	vlen := x.len()
	if st.size()+headerSize+int64(len(key))+vlen > math.MaxUint32 {
		return ErrTxTooLarge
	}
	crc, err := crcParts(crcUpdate(0, key), x.parts)
	if err != nil {
		return err
	}
	x.bodyCRC = crc
	x.bodyLen = int64(len(key)) + vlen

	off := len(st.buf)
	st.buf = grow(st.buf, headerSize+len(key))
	rec := st.buf[off:]
	encodeHeader(rec, &header{
		time: st.now, seq: st.seq, expireAt: expireAt, keyLen: uint32(len(key)), valLen: uint32(vlen),
		kind: kindPut, flags: db.recFlags(st), keyType: keyTypeBytes, valType: valTypeBytes,
	})
	copy(rec[headerSize:], key)
	x.sealHeader(rec)
	st.ext = append(st.ext, x)
	db.addOp(st, txOp{
		hash: h, seq: st.seq, expireAt: expireAt, recOff: uint32(off), klen: uint32(len(key)),
		vlen: uint32(vlen), valOp: int32(len(st.ops)), kind: kindPut, vtype: valTypeBytes,
		tag: tag, exists: true, big: int32(len(st.ext)),
	})
	st.seq++
	if st.trackLive {
		st.addLive(db.num, int64(len(key))+vlen-prev.liveLen(len(key)))
	}
	return nil
}

// writeExt is write for a Tx with big values: the buffer's records with
// each big value after its header and key, in pwritev calls.
func (db *DB) writeExt(st *txState) (*dataFile, int64, error) {
	return db.writeWith(st.size(), func(f *dataFile, off int64) error {
		w := vecWriter{f: f, fd: int(f.f.Fd()), pos: off}
		prev := 0
		for i := range st.ops {
			op := &st.ops[i]
			if op.big == 0 {
				continue
			}
			end := int(op.recOff + headerSize + op.klen)
			w.add(st.buf[prev:end])
			for _, p := range st.ext[op.big-1].parts {
				if p.b != nil {
					w.add(p.b)
				} else if err := w.zeros(p.zeros); err != nil {
					return err
				}
			}
			prev = end
		}
		w.add(st.buf[prev:])
		return w.finish()
	})
}

// vecWriter writes a sequence of byte slices and zero runs at consecutive
// file offsets. Caller holds writeMu (f.alloc).
type vecWriter struct {
	f    *dataFile
	fd   int
	pos  int64    // file offset of iov's first byte
	iov  [][]byte // pending slices
	hole bool     // the last thing added was a hole
	err  error
}

// maxIov is the most slices one pwritev takes (IOV_MAX).
const maxIov = 1024

func (w *vecWriter) add(b []byte) {
	if len(b) == 0 || w.err != nil {
		return
	}
	w.hole = false
	w.iov = append(w.iov, b)
	if len(w.iov) == maxIov {
		w.err = w.flush()
	}
}

// zeros adds n zero bytes. Where the file already has bytes (below
// f.alloc: preallocated zeros, or whatever a failed write left) they are
// written; past its end they are skipped, and the file gets a hole that
// reads as zeros, costing neither the write nor the disk.
func (w *vecWriter) zeros(n int64) error {
	start := w.pos
	for _, b := range w.iov {
		start += int64(len(b))
	}
	lit := min(n, max(0, w.f.alloc-start))
	for lit > 0 {
		z := zeroChunk()
		k := min(lit, int64(len(z)))
		w.add(z[:k])
		lit -= k
		n -= k
	}
	if n == 0 || w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.pos += n // past everything flushed: the hole
	w.hole = true
	return nil
}

// finish writes what is pending. A write that ends in a hole writes its
// last byte, so that the file's length covers the record.
func (w *vecWriter) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.hole {
		w.pos--
		w.add(zeroChunk()[:1])
	}
	return w.flush()
}

func (w *vecWriter) flush() error {
	for len(w.iov) > 0 {
		n, err := unix.Pwritev(w.fd, w.iov, w.pos)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		w.pos += int64(n)
		for n > 0 {
			if n >= len(w.iov[0]) {
				n -= len(w.iov[0])
				w.iov[0] = nil
				w.iov = w.iov[1:]
			} else {
				w.iov[0] = w.iov[0][n:]
				n = 0
			}
		}
	}
	w.iov = w.iov[:0]
	return nil
}

// dropPages unmaps from the process the pages of mm that hold the record
// [off, off+size) after a big read: they stay in the page cache, but no
// longer count in the process's RSS (a 512 MiB value read once kept
// 512 MiB resident for as long as its file stayed mapped). A later read
// faults them in again from the cache.
func dropPages(mm []byte, off, size int64) {
	page := int64(unix.Getpagesize())
	start := off &^ (page - 1)
	end := min((off+size+page-1)&^(page-1), int64(len(mm)))
	_ = unix.Madvise(mm[start:end], unix.MADV_DONTNEED)
}

// readBigMapped is readValue for a big record beyond the file's mapping
// (past the file size limit, where a maximal record can end): it maps the
// record's pages on their own, so the value is copied once, from the page
// cache, rather than read into a buffer and copied again. ok is false when
// the mapping fails, and the caller reads with pread.
func readBigMapped(dst []byte, f *dataFile, loc *entry, key []byte, off, size int64) (out []byte, ok bool, err error) {
	rec, unmap, merr := mapRecord(f, off, size)
	if merr != nil {
		return dst, false, nil
	}
	defer unmap()
	out, err = appendMapped(dst, rec, f, loc, key)
	return out, true, err
}

// mapRecord maps the pages of f that hold [off, off+size) on their own and
// returns those bytes, and the function that unmaps them.
func mapRecord(f *dataFile, off, size int64) ([]byte, func(), error) {
	page := int64(unix.Getpagesize())
	start := off &^ (page - 1)
	mm, err := unix.Mmap(int(f.f.Fd()), start, int(off+size-start), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	i := off - start
	return mm[i : i+size : i+size], func() { unix.Munmap(mm) }, nil
}
