package bitcask

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// readStream reads s to its end in parts of at most step bytes.
func readStream(t *testing.T, s *ValueStream, step int) []byte {
	t.Helper()
	var out []byte
	for s.Remaining() > 0 {
		before := len(out)
		var err error
		if out, err = s.AppendNext(out, step); err != nil {
			t.Fatalf("AppendNext: %v", err)
		}
		if n := len(out) - before; n == 0 || n > step {
			t.Fatalf("AppendNext gave %d bytes with %d remaining, step %d", n, s.Remaining(), step)
		}
	}
	return out
}

// TestValueStream: a value of StreamMin bytes or more is read in parts,
// holes as zeros; a shorter one, a missing key and another type are told
// apart; and an open stream keeps the value it was opened on, though the
// key is overwritten and its data file merged away before it is read.
func TestValueStream(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 8 << 20
	db := mustOpen(t, dir, o)
	defer db.Close()
	big := pattern(3<<20+7, 2)
	holed := spliced(nil, 4<<20, []byte("end"))
	mustPut(t, db, "small", "x")
	if err := db.Put([]byte("big"), big, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		_, err := tx.Splice([]byte("holed"), 4<<20, []byte("end"), 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { _, err := tx.SetAdd([]byte("set"), []byte("m")); return err }); err != nil {
		t.Fatal(err)
	}
	if s, err := db.OpenValue([]byte("small"), 0); s != nil || err != nil {
		t.Errorf("OpenValue(small) = %v, %v; want nil, nil (read it whole)", s, err)
	}
	if _, err := db.OpenValue([]byte("missing"), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenValue(missing): %v, want ErrNotFound", err)
	}
	if _, err := db.OpenValue([]byte("set"), 0); !errors.Is(err, ErrWrongType) {
		t.Errorf("OpenValue(set): %v, want ErrWrongType", err)
	}
	hs, err := db.OpenValue([]byte("holed"), 0)
	if err != nil || hs == nil {
		t.Fatalf("OpenValue(holed) = %v, %v", hs, err)
	}
	if got := readStream(t, hs, 1<<20); !bytes.Equal(got, holed) {
		t.Errorf("holed value streamed: %d bytes, not the value", len(got))
	}
	hs.Close()
	hs.Close() // twice is harmless

	s, err := db.OpenValue([]byte("big"), 0)
	if err != nil || s == nil || s.Len() != int64(len(big)) {
		t.Fatalf("OpenValue(big) = %v, %v", s, err)
	}
	defer s.Close()
	first := readStream(t, &ValueStream{parts: s.parts, n: 1 << 20}, 1<<20) // a peek, not advancing s
	if !bytes.Equal(first, big[:1<<20]) {
		t.Fatal("the first part is not the value's")
	}
	// Overwrite and merge: the file the stream reads is no longer the

	mustPut(t, db, "big", "replaced")
	if err := db.Update(func(tx *Tx) error { return tx.Put([]byte("pad"), pattern(9<<20, 3), 0) }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadDir(dir)
	t.Logf("files before the merge %d, after %d", len(before), len(after))
	if got := readStream(t, s, 300<<10); !bytes.Equal(got, big) {
		t.Errorf("streamed after the overwrite and merge: %d bytes, not the value opened", len(got))
	}
	if v, _, err := db.Get([]byte("big")); err != nil || string(v) != "replaced" {
		t.Errorf("Get(big) = %q, %v", v, err)
	}
	// Inside a Tx: a value the Tx wrote is not streamed; one it did not
	// write is.
	if err := db.Update(func(tx *Tx) error {
		if s, err := tx.OpenValueHashed(xxhash.Sum64String("holed"), []byte("holed")); err != nil || s == nil {
			t.Errorf("Tx.OpenValueHashed(holed) = %v, %v", s, err)
		} else {
			s.Close()
		}
		if err := tx.Put([]byte("holed"), big, 0); err != nil {
			return err
		}
		if s, err := tx.OpenValueHashed(xxhash.Sum64String("holed"), []byte("holed")); s != nil || err != nil {
			t.Errorf("Tx.OpenValueHashed of the Tx's own write = %v, %v; want nil, nil", s, err)
		}
		if _, err := tx.Delete([]byte("small")); err != nil {
			return err
		}
		if _, err := tx.OpenValueHashed(xxhash.Sum64String("small"), []byte("small")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Tx.OpenValueHashed of a key it deleted: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
