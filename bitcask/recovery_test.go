package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// activeData returns the path and contents of the newest data file.
func newestDataFile(t testing.TB, dir string) string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	if len(ms) == 0 {
		t.Fatal("no data file")
	}
	return ms[len(ms)-1]
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() == lockFileName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTruncateLastRecordEveryOffset cuts the newest file at every byte
// offset inside its last record (a single put, then a multi-record batch)
// and reopens: the last record or batch is wholly present or wholly gone,
// and everything before it intact.
func TestTruncateLastRecordEveryOffset(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			base := t.TempDir()
			o := testOptions()
			o.DisableHints = true
			db := mustOpen(t, base, o)
			mustPut(t, db, "a", "a1")
			mustPut(t, db, "b", "b1")
			mustPut(t, db, "n", "12")
			before := db.active.size.Load()
			if batch {
				err := db.Update(func(tx *Tx) error {
					tx.Put([]byte("a"), []byte("a2"), 0)
					tx.Delete([]byte("b"))
					tx.Put([]byte("c"), []byte("c2-longer-value"), 0)
					tx.Put([]byte("n"), []byte("13"), 0)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				mustPut(t, db, "a", "a2-new")
			}
			db.Close()
			path := newestDataFile(t, base)
			full, _ := os.ReadFile(path)
			for cut := before; cut <= int64(len(full)); cut++ {
				dir := t.TempDir()
				copyDir(t, base, dir)
				p := filepath.Join(dir, filepath.Base(path))
				if err := os.WriteFile(p, full[:cut], 0o644); err != nil {
					t.Fatal(err)
				}
				db := mustOpen(t, dir, o)
				whole := cut == int64(len(full))
				switch {
				case whole && batch:
					mustGet(t, db, "a", "a2")
					mustMissing(t, db, "b")
					mustGet(t, db, "c", "c2-longer-value")
					mustGet(t, db, "n", "13")
				case whole:
					mustGet(t, db, "a", "a2-new")
					mustGet(t, db, "b", "b1")
				default:
					mustGet(t, db, "a", "a1")
					mustGet(t, db, "b", "b1")
					mustGet(t, db, "n", "12")
					mustMissing(t, db, "c")
					st := db.Stats()
					if cut > before && (st.RecoveryTruncated == 0 || st.RecoveryTruncatedBytes != cut-before) {
						t.Fatalf("cut %d: stats %+v", cut, st)
					}
					if fi, _ := os.Stat(p); fi.Size() != before {
						t.Fatalf("cut %d: file is %d bytes after recovery, want %d", cut, fi.Size(), before)
					}
				}
				// The DB keeps working after recovery.
				mustPut(t, db, "after", "x")
				db.Close()
				db = mustOpen(t, dir, o)
				mustGet(t, db, "after", "x")
				db.Close()
			}
		})
	}
}

// TestFlippedBit flips every bit of a record (header, key, value) and
// checks that Get returns an error while the DB is open, and the previous
// value after a reopen; never the corrupted bytes.
func TestFlippedBit(t *testing.T) {
	base := t.TempDir()
	o := testOptions()
	o.DisableHints = true
	db := mustOpen(t, base, o)
	mustPut(t, db, "key", "old-value")
	mustPut(t, db, "other", "o")
	recOff := db.active.size.Load()
	mustPut(t, db, "key", "new-value")
	recEnd := db.active.size.Load()
	mustPut(t, db, "tail", "t") // the flipped record is not the last one
	db.Close()
	path := newestDataFile(t, base)
	full, _ := os.ReadFile(path)

	for bit := recOff * 8; bit < recEnd*8; bit++ {
		dir := t.TempDir()
		copyDir(t, base, dir)
		p := filepath.Join(dir, filepath.Base(path))
		db := mustOpen(t, dir, o)
		mustGet(t, db, "key", "new-value")
		b := append([]byte(nil), full...)
		b[bit/8] ^= 1 << (bit % 8)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v, _, err := db.Get([]byte("key"))
		if err == nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d: open DB Get = %q, %v; want ErrCorrupt", bit, v, err)
		}
		db.Close()
		db = mustOpen(t, dir, o)
		v, _, err = db.Get([]byte("key"))
		if err != nil || string(v) != "old-value" {
			t.Fatalf("bit %d: after reopen Get = %q, %v; want the previous value", bit, v, err)
		}
		mustGet(t, db, "other", "o")
		mustGet(t, db, "tail", "t")
		if st := db.Stats(); st.RecoverySkipped == 0 {
			t.Fatalf("bit %d: nothing counted as skipped: %+v", bit, st)
		}
		db.Close()
	}
}

// TestBadRecordInOlderFile: a bad record in an immutable file is skipped
// and counted, the rest of the file is served, and nothing is truncated.
func TestBadRecordInOlderFile(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 1024
	db := mustOpen(t, dir, o)
	for i := 0; i < 100; i++ {
		mustPut(t, db, fmt.Sprintf("k%03d", i), fmt.Sprintf("value-%03d", i))
	}
	db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	if len(files) < 3 {
		t.Fatalf("%d files", len(files))
	}
	// Corrupt the 3rd record of the first file and drop its hint.
	b, _ := os.ReadFile(files[0])
	recSize := headerSize + 4 + 9
	b[2*recSize+headerSize+1] ^= 0xff
	os.WriteFile(files[0], b, 0o644)
	os.Remove(filepath.Join(dir, hintName(mustID(t, files[0]))))
	db = mustOpen(t, dir, o)
	defer db.Close()
	mustMissing(t, db, "k002")
	for i := 0; i < 100; i++ {
		if i != 2 {
			mustGet(t, db, fmt.Sprintf("k%03d", i), fmt.Sprintf("value-%03d", i))
		}
	}
	st := db.Stats()
	if st.RecoverySkipped != 1 || st.RecoveryTruncated != 0 {
		t.Fatalf("stats %+v", st)
	}
	if fi, _ := os.Stat(files[0]); fi.Size() != int64(len(b)) {
		t.Fatal("older file was modified")
	}
}

func mustID(t testing.TB, path string) uint64 {
	id, _, ok := parseFileName(filepath.Base(path))
	if !ok {
		t.Fatalf("bad name %s", path)
	}
	return id
}

func TestEmptyValueSurvivesRestart(t *testing.T) {
	for _, hints := range []bool{true, false} {
		dir := t.TempDir()
		o := testOptions()
		o.DisableHints = !hints
		db := mustOpen(t, dir, o)
		mustPut(t, db, "empty", "")
		mustPut(t, db, "", "")
		db.Close()
		db = mustOpen(t, dir, o)
		for _, k := range []string{"empty", ""} {
			v, _, err := db.Get([]byte(k))
			if err != nil || v == nil || len(v) != 0 {
				t.Fatalf("hints=%v Get(%q) = %#v, %v", hints, k, v, err)
			}
		}
		db.Close()
	}
}

func TestHintFileUsedAndBadHintIgnored(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 4096
	db := mustOpen(t, dir, o)
	for i := 0; i < 500; i++ {
		mustPut(t, db, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	db.Delete([]byte("k7"))
	db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("k8"), 1<<50); return err })
	db.Close()
	db = mustOpen(t, dir, o)
	st := db.Stats()
	if st.DataFilesScanned != 0 || st.HintFilesLoaded != st.DataFiles {
		t.Fatalf("want every file from hints: %+v", st)
	}
	check := func(db *DB) {
		mustMissing(t, db, "k7")
		if m, _ := db.MetaOf([]byte("k8")); m.ExpireAt != 1<<50 {
			t.Fatalf("k8 meta %+v", m)
		}
		for i := 0; i < 500; i++ {
			if i != 7 {
				mustGet(t, db, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
			}
		}
	}
	check(db)
	db.Close()
	// Corrupt every hint: Open falls back to scanning and gets the same.
	hints, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
	for _, h := range hints {
		b, _ := os.ReadFile(h)
		b[len(b)/2] ^= 1
		os.WriteFile(h, b, 0o644)
	}
	db = mustOpen(t, dir, o)
	defer db.Close()
	if st := db.Stats(); st.HintFilesLoaded != 0 || st.DataFilesScanned != st.DataFiles {
		t.Fatalf("stats %+v", st)
	}
	check(db)
}

// FuzzOpen opens a directory holding one data file and, optionally, its
// hint with arbitrary contents: no panic, no allocation the file sizes do
// not justify, and whatever Open serves reads back without corruption.
func FuzzOpen(f *testing.F) {
	var seeds [][]byte
	for _, g := range goldenRecords {
		seeds = append(seeds, appendRecord(nil, g.kind, g.flags, g.seq, goldenTime, g.expireAt, []byte(g.key), []byte(g.value)))
	}
	all := bytes.Join(seeds, nil)
	f.Add(all, []byte(nil))
	f.Add(all[:len(all)-3], []byte(nil))
	f.Add(bytes.Repeat([]byte{0}, 100), []byte(nil))
	f.Add([]byte("garbage garbage garbage garbage garbage garbage garbage"), []byte("bchint01"))
	// A real data file and its real hint.
	dir := f.TempDir()
	o := testOptions()
	db, err := Open(dir, o)
	if err != nil {
		f.Fatal(err)
	}
	db.Put([]byte("a"), []byte("1"), 0)
	db.Put([]byte("b"), []byte("two"), 1<<50)
	db.Delete([]byte("a"))
	db.Update(func(tx *Tx) error {
		tx.Put([]byte("c"), []byte("x"), 0)
		tx.SetExpireAt([]byte("b"), 0)
		return nil
	})
	// A hash: root, fields, a field tombstone, an expiry, a delete and a
	// new hash under the same key.
	hset(f, db, "h", "f", "v", "n", "12")
	db.Update(func(tx *Tx) error {
		tx.HashDelete([]byte("h"), []byte("f"))
		tx.SetExpireAt([]byte("h"), 1<<50)
		return nil
	})
	hset(f, db, "g", "f", "v")
	db.Delete([]byte("g"))
	hset(f, db, "g", "x", "y")
	db.Close()
	data, _ := os.ReadFile(newestDataFile(f, dir))
	hint, _ := os.ReadFile(filepath.Join(dir, hintName(mustID(f, newestDataFile(f, dir)))))
	f.Add(data, hint)
	f.Add(data, []byte(nil))
	f.Add(data[:len(data)-1], hint)

	f.Fuzz(func(t *testing.T, data, hint []byte) {
		dir := t.TempDir()
		id := uint64(1) << idSubBits
		os.WriteFile(filepath.Join(dir, dataName(id)), data, 0o644)
		if len(hint) > 0 {
			os.WriteFile(filepath.Join(dir, hintName(id)), hint, 0o644)
		}
		o := testOptions()
		o.DisableHints = true
		o.Sync = SyncNo
		db, err := Open(dir, o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		var keys [][]byte
		db.Range(func(k []byte, m Meta) bool {
			keys = append(keys, append([]byte(nil), k...))
			return true
		})
		for _, k := range keys {
			if m, _ := db.MetaOf(k); m.Type == TypeHash {
				if _, err := db.HashGetAll(Hash(k), k, true, 0); err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
					t.Fatalf("HashGetAll(%q): %v", k, err)
				}
				continue
			}
			v, _, err := db.Get(k)
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%q): %v", k, err)
			}
			_ = v
		}
		if err := db.Put([]byte("new"), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = Open(dir, o)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		mustGet(t, db, "new", "v")
		db.Close()
	})
}

// TestRestartAfterCrash: a clean Close, a restart that loads the active
// file from the hint Close wrote, more writes, then a crash (the directory
// copied while the DB is open). Open finds nothing to warn about, because
// no hint ever describes a file that may still grow: the restart removed
// the active file's hint before appending to it.
func TestRestartAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 1024
	db := mustOpen(t, dir, o)
	for i := 0; i < 30; i++ {
		mustPut(t, db, fmt.Sprintf("before%d", i), "1")
	}
	db.Close()
	files := len(dataFiles(t, dir))
	db = mustOpen(t, dir, o)
	if st := db.Stats(); st.HintFilesLoaded != files || st.DataFiles != files {
		t.Fatalf("want every file from its hint, and no new file: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, hintName(db.active.id))); !os.IsNotExist(err) {
		t.Fatalf("the active file has a hint: %v", err)
	}
	mustPut(t, db, "after", "2")
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	db.Close()

	var logs logLines
	o.Logger = logs.logger(hclog.Debug)
	db = mustOpen(t, crashed, o)
	defer db.Close()
	for i := 0; i < 30; i++ {
		mustGet(t, db, fmt.Sprintf("before%d", i), "1")
	}
	mustGet(t, db, "after", "2")
	if ls := append(logs.matching("[WARN]"), logs.matching("[ERROR]")...); len(ls) > 0 {
		t.Fatalf("Open after a crash warned: %q", ls)
	}
	if st := db.Stats(); st.HintFilesLoaded != files-1 || st.DataFilesScanned != 1 {
		t.Fatalf("want the older files from their hints and the crashed active file scanned: %+v", st)
	}
}

// TestHintOfAnotherSize: a hint that describes less data than its file has
// is what a crash leaves behind when an earlier version appended to a file
// after writing its hint at Close; Open says so at info level and scans
// the file. A hint describing more data than the file has means data went
// missing: a warning.
func TestHintOfAnotherSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grow  bool // append a record to the data file; else cut its last one
		level string
		keys  map[string]string // expected after the reopen
	}{
		{name: "file grew after its hint", grow: true, level: "[INFO]", keys: map[string]string{"a": "1", "b": "2", "c": "3"}},
		{name: "file shorter than its hint", level: "[WARN]", keys: map[string]string{"a": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions()
			db := mustOpen(t, dir, o)
			mustPut(t, db, "a", "1")
			mustPut(t, db, "b", "2")
			seq := db.Stats().LastSeq
			db.Close()
			path := newestDataFile(t, dir)
			b, _ := os.ReadFile(path)
			if tc.grow {
				b = appendRecord(b, kindPut, flagSingle, seq+1, 1, 0, []byte("c"), []byte("3"))
			} else {
				b = b[:len(b)-int(headerSize+1+intValueSize)] // "b" = 2, an integer
			}
			os.WriteFile(path, b, 0o644)
			var logs logLines
			o.Logger = logs.logger(hclog.Debug)
			db = mustOpen(t, dir, o)
			defer db.Close()
			for k, v := range tc.keys {
				mustGet(t, db, k, v)
			}
			if db.Len() != len(tc.keys) {
				t.Fatalf("Len %d, want %d", db.Len(), len(tc.keys))
			}
			ls := logs.matching("hint file")
			if len(ls) != 1 || !strings.Contains(ls[0], tc.level) {
				t.Fatalf("want one %s line about the hint, got %q", tc.level, ls)
			}
			if tc.grow && !strings.Contains(ls[0], "crash") {
				t.Fatalf("the line does not say this is what a crash leaves: %q", ls[0])
			}
		})
	}
}
