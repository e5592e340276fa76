package bitcask

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Data file ids order the files for replay. A file the writer starts gets
// id gen<<idSubBits for a new generation gen; merge output that replaces a
// prefix of files ending at id K gets ids K+1, K+2, ..., which sort after
// every input and before the next writer file. So replaying files in id
// order always replays a key's records oldest first.
const (
	idSubBits  = 20
	idSubMask  = 1<<idSubBits - 1
	dataSuffix = ".data"
	hintSuffix = ".hint"
	tmpSuffix  = ".tmp"
	// maxHandles bounds the data files open at once (handles are 16 bits
	// in the key directory).
	maxHandles = 1 << 16
)

func dataName(id uint64) string { return fmt.Sprintf("%016x%s", id, dataSuffix) }
func hintName(id uint64) string { return fmt.Sprintf("%016x%s", id, hintSuffix) }

// parseFileName returns the id and suffix of a data or hint file name.
func parseFileName(name string) (id uint64, suffix string, ok bool) {
	for _, suf := range []string{dataSuffix, hintSuffix} {
		if base, found := strings.CutSuffix(name, suf); found && len(base) == 16 {
			v, err := strconv.ParseUint(base, 16, 64)
			if err != nil {
				return 0, "", false
			}
			return v, suf, true
		}
	}
	return 0, "", false
}

// dataFile is one data file of the DB.
type dataFile struct {
	id     uint64
	handle uint16 // index in the file table; what key directory entries hold
	path   string
	f      *os.File
	// size is the number of bytes written; records live in [0, size).
	// Only the active file grows, under DB.writeMu.
	size atomic.Int64
	// synced is how much of it the syncer's last fsync covered (rotate
	// fsyncs a file itself only when little is left).
	synced atomic.Int64
	// alloc is the file's length on disk, size plus the zeros written
	// ahead of it (see preallocate); guarded by DB.writeMu.
	alloc int64
	// live is the total size of the records the key directory points at;
	// size-live is dead space that a merge reclaims.
	live atomic.Int64
	// refs is 1 while the file is in the file table, plus one per reader
	// between looking it up and finishing its read. The descriptor is
	// closed and the mapping unmapped when it drops to 0.
	refs atomic.Int32
	// mm is the file mapped read-only (see mapping), set on the first
	// read; noMap after mapping failed, and reads use pread.
	mm    atomic.Pointer[[]byte]
	mapMu sync.Mutex
}

func (f *dataFile) acquire() { f.refs.Add(1) }

func (f *dataFile) release() {
	if f.refs.Add(-1) == 0 {
		if p := f.mm.Load(); p != nil && p != &noMap {
			_ = unix.Munmap(*p)
		}
		f.f.Close()
	}
}

// noMap marks a file that could not be mapped.
var noMap []byte

// mapping returns the file mapped read-only, mapping it on first use, or
// nil when it cannot be mapped. Reads serve records from the mapping, so a
// GET costs no system call: the records are in the page cache (written
// there by pwrite, or faulted in once) and the mapping sees the page cache
// directly. The mapping is at least minLen bytes (the file size limit), so
// the active file's records stay inside it as the file grows; a record that
// ends past it is read with pread. Bytes of the mapping beyond the end of
// the file must never be touched (SIGBUS): readers only read records the
// key directory points at, which were written before it pointed at them,
// and nothing truncates a file below a record the key directory points at
// (recovery truncates before the first read; a failed write truncates only
// its own bytes). The caller holds a reference (or the lock of a shard
// whose entry points into the file).
func (f *dataFile) mapping(minLen int64) []byte {
	if p := f.mm.Load(); p != nil {
		return *p
	}
	return f.mapSlow(minLen)
}

func (f *dataFile) mapSlow(minLen int64) []byte {
	f.mapMu.Lock()
	defer f.mapMu.Unlock()
	if p := f.mm.Load(); p != nil {
		return *p
	}
	n := max(minLen, f.size.Load())
	const page = 1 << 16
	n = (n + page - 1) &^ (page - 1)
	if n <= 0 || n > maxMapLen {
		f.mm.Store(&noMap)
		return nil
	}
	b, err := unix.Mmap(int(f.f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.mm.Store(&noMap)
		return nil
	}
	f.mm.Store(&b)
	return b
}

// maxMapLen bounds a mapping: a record offset is below 2^32.
const maxMapLen = 1 << 32

func (f *dataFile) dead() int64 { return f.size.Load() - f.live.Load() }

func openDataFile(dir string, id uint64, create bool) (*dataFile, error) {
	p := filepath.Join(dir, dataName(id))
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	fh, err := os.OpenFile(p, flag, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	df := &dataFile{id: id, path: p, f: fh, alloc: st.Size()}
	df.size.Store(st.Size())
	df.refs.Store(1)
	return df, nil
}

// syncDir fsyncs a directory so that creates, renames and removes in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// addFile registers f in the file table and in the ordered file list.
// Caller holds filesMu.
func (db *DB) addFileLocked(f *dataFile) error {
	old := *db.ftab.Load()
	h := -1
	for i, x := range old {
		if x == nil {
			h = i
			break
		}
	}
	tab := make([]*dataFile, len(old), len(old)+1)
	copy(tab, old)
	if h < 0 {
		if len(tab) >= maxHandles {
			return ErrTooManyFiles
		}
		h = len(tab)
		tab = append(tab, nil)
	}
	f.handle = uint16(h)
	tab[h] = f
	db.ftab.Store(&tab)
	i := len(db.files)
	for i > 0 && db.files[i-1].id > f.id {
		i--
	}
	db.files = append(db.files, nil)
	copy(db.files[i+1:], db.files[i:])
	db.files[i] = f
	return nil
}

// removeFileLocked drops f from the table and the list; the caller releases
// its base reference. Caller holds filesMu.
func (db *DB) removeFileLocked(f *dataFile) {
	old := *db.ftab.Load()
	tab := make([]*dataFile, len(old))
	copy(tab, old)
	tab[f.handle] = nil
	db.ftab.Store(&tab)
	for i, x := range db.files {
		if x == f {
			db.files = append(db.files[:i], db.files[i+1:]...)
			break
		}
	}
}

// fileAt returns the file of a handle. Callers hold the lock of the shard of
// the entry the handle came from, which keeps the file in the table.
func (db *DB) fileAt(h uint16) *dataFile { return (*db.ftab.Load())[h] }

// snapshotFiles returns the ordered file list.
func (db *DB) snapshotFiles() []*dataFile {
	db.filesMu.Lock()
	defer db.filesMu.Unlock()
	return append([]*dataFile(nil), db.files...)
}

// Under appendfsync always the active file is extended ahead of its end with
// zeros, a chunk at a time, so that the fsync after each write is an
// fdatasync that flushes data only: when a write does not change the file's
// length, the inode need not be written, which on this project's ext4
// machines halved the I/O waits of an fsync (an inode write and its wait
// less) and cut its CPU by a quarter. The zeros are never part of the data:
// size is where records end, a file is cut back to size before it becomes
// immutable (rotation) and at Close, and recovery cuts a zero tail off the
// newest file (see isPreallocTail) without counting it as torn records.
const preallocChunk = 1 << 20

// zeroChunk is what preallocate writes, allocated on first use.
var zeroChunk = sync.OnceValue(func() []byte { return make([]byte, preallocChunk) })

// preallocate keeps at least half a chunk of zeros past end, the end of the
// data just written, in the active file. Caller holds writeMu.
func (db *DB) preallocate(f *dataFile, end int64) error {
	if db.SyncPolicy() != SyncAlways || db.opts.MaxFileSize < 4*preallocChunk || f.alloc-end >= preallocChunk/2 {
		return nil
	}
	target := (end/preallocChunk + 2) * preallocChunk
	for p := max(f.alloc, end); p < target; {
		z := zeroChunk()
		n, err := f.f.WriteAt(z[:min(int64(len(z)), target-p)], p)
		p += int64(n)
		f.alloc = max(f.alloc, p)
		if err != nil {
			return err
		}
	}
	return nil
}

// trimPrealloc cuts the zeros preallocate wrote past the end of f's data.
// Caller holds writeMu (or is Close).
func (f *dataFile) trimPrealloc() error {
	size := f.size.Load()
	if f.alloc <= size {
		return nil
	}
	if err := f.f.Truncate(size); err != nil {
		return err
	}
	f.alloc = size
	return nil
}

// isPreallocTail reports whether the bad tail [from, size) of the newest
// file is space preallocate wrote and no record reached: all zeros, in a
// file whose length is a whole number of chunks (what preallocate leaves).
// A torn record is not zeros; anything else is counted as torn.
func isPreallocTail(f *os.File, from, size int64) bool {
	if size%preallocChunk != 0 || from >= size {
		return false
	}
	buf := make([]byte, 64<<10)
	for p := from; p < size; {
		n := min(int64(len(buf)), size-p)
		if _, err := f.ReadAt(buf[:n], p); err != nil {
			return false
		}
		for _, b := range buf[:n] {
			if b != 0 {
				return false
			}
		}
		p += n
	}
	return true
}
