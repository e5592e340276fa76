package bitcask

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// pattern returns n bytes that differ from offset to offset.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// spliced is what Splice makes of v: part at off, zero-padded.
func spliced(v []byte, off int, part []byte) []byte {
	if n := off + len(part); n > len(v) {
		v = append(v, make([]byte, n-len(v))...)
	}
	copy(v[off:], part)
	return v
}

// diskUse is the length of dir's data files and the bytes they take on disk.
func diskUse(t *testing.T, dir string) (size, used int64) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
		used += fi.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return size, used
}

// TestBigValues writes big values (referenced, not copied, by the Tx) next
// to small records in one Update, and splices big values (SETRANGE past
// the end, inside, APPEND), whose zeros stay holes in the file, and checks
// them through the Tx, the key directory, and a reopen that replays the
// files.
func TestBigValues(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncEverySec, SyncAlways} {
		t.Run(sync.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions()
			o.Sync = sync
			db := mustOpen(t, dir, o)
			const zeros = 16 << 20
			big := pattern(3<<20+5, 1)
			tail := pattern(bigValueSize, 3)
			want := map[string][]byte{
				"a":   []byte("small before"),
				"big": big,
				"m":   []byte("small between"),
				"pad": spliced(nil, zeros, tail),
				"end": spliced(nil, zeros, []byte("x")),
				"z":   []byte("small after"),
			}
			splice := func(tx *Tx, k string, off int, part []byte) {
				t.Helper()
				n, err := tx.Splice([]byte(k), int64(off), part, 0)
				if err != nil || n != int64(max(len(want[k]), off+len(part))) {
					t.Fatalf("Splice(%s, %d, %d bytes) = %d, %v", k, off, len(part), n, err)
				}
			}
			err := db.Update(func(tx *Tx) error {
				for _, k := range []string{"a", "big", "m"} {
					if err := tx.Put([]byte(k), want[k], 0); err != nil {
						return err
					}
				}
				splice(tx, "pad", zeros, tail)
				splice(tx, "end", zeros, []byte("x"))
				if err := tx.Put([]byte("z"), want["z"], 0); err != nil {
					return err
				}
				v, _, err := tx.Get([]byte("pad"))
				if err != nil || !bytes.Equal(v, want["pad"]) {
					t.Errorf("Tx.Get(pad): %d bytes, %v", len(v), err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			check := func(db *DB) {
				t.Helper()
				for k, w := range want {
					v, _, err := db.Get([]byte(k))
					if err != nil || !bytes.Equal(v, w) {
						t.Errorf("Get(%s): %d bytes (want %d), %v", k, len(v), len(w), err)
					}
				}
			}
			check(db)
			// Splices of committed big values, read from the file: past
			// the end, inside (across data and a hole), and appends.
			steps := []struct {
				k    string
				off  int
				part []byte
			}{
				{"end", 2 * zeros, []byte("y")},
				{"end", zeros - 3, []byte("abcdef")},
				{"big", len(big), []byte("appended")},
				{"big", 10, []byte("inside")},
				{"pad", zeros + 5, []byte("ZZ")},
			}
			for _, s := range steps {
				if err := db.Update(func(tx *Tx) error { splice(tx, s.k, s.off, s.part); return nil }); err != nil {
					t.Fatal(err)
				}
				want[s.k] = spliced(want[s.k], s.off, s.part)
			}
			check(db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			// The zeros were never written: the files hold far fewer
			// blocks than their length.
			if size, used := diskUse(t, dir); size < 4*zeros || used > size/4 {
				t.Errorf("data files: %d bytes long, %d on disk; want the zeros left as holes", size, used)
			}
			db = mustOpen(t, dir, o)
			defer db.Close()
			check(db)
			mustPut(t, db, "after", "reopen")
			mustGet(t, db, "after", "reopen")
		})
	}
}

// TestSpliceRefusesDamage: a big value whose record was damaged on disk is
// not spliced into a new record with a valid CRC.
func TestSpliceRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	defer db.Close()
	if err := db.Put([]byte("k"), pattern(2<<20, 5), 0); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = db.Update(func(tx *Tx) error {
		_, err := tx.Splice([]byte("k"), 3, []byte("x"), 0)
		return err
	})
	if err == nil {
		t.Fatal("Splice of a damaged value succeeded")
	}
}
