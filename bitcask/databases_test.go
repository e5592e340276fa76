package bitcask

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// dbState is every database's keys and values, for comparing a DB before
// and after a reopen or a merge.
func dbState(t *testing.T, db *DB) map[int]map[string]string {
	t.Helper()
	out := make(map[int]map[string]string)
	for n := range NumDBs {
		v := db.Select(n)
		v.Range(func(key []byte, m Meta) bool {
			if out[n] == nil {
				out[n] = make(map[string]string)
			}
			var val string
			switch m.Type {
			case TypeHash:
				n, err := v.HashLen(Hash(key), key, 0)
				val = fmt.Sprint("<hash of ", n, " ", err, ">")
			case TypeSet:
				n, err := v.SetCard(Hash(key), key, 0)
				val = fmt.Sprint("<set of ", n, " ", err, ">")
			case TypeString:
				b, _, err := v.Get(key)
				if err != nil {
					t.Fatalf("db %d Get(%q): %v", n, key, err)
				}
				val = string(b)
			}
			out[n][string(key)] = val
			return true
		})
	}
	return out
}

func sameState(t *testing.T, what string, got, want map[int]map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// TestDatabasesIsolated: equal keys of two databases never meet, whatever
// their bytes (a key that looks like another database's prefix included),
// and every per-database count is the database's own.
func TestDatabasesIsolated(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	d3 := db.Select(3)
	mustPut(t, db, "k", "zero")
	mustPut(t, d3, "k", "three")
	mustPut(t, db, "\x03k", "zero-prefixed")
	mustPut(t, d3, "\x00k", "three-prefixed")
	mustGet(t, db, "k", "zero")
	mustGet(t, d3, "k", "three")
	mustMissing(t, db.Select(1), "k")
	mustMissing(t, d3, "\x03k")
	if db.Len() != 2 || d3.Len() != 2 || db.Select(5).Len() != 0 {
		t.Fatalf("Len: db0 %d db3 %d db5 %d", db.Len(), d3.Len(), db.Select(5).Len())
	}
	if err := d3.Put([]byte("e"), []byte("x"), db.nowMs()+100000); err != nil {
		t.Fatal(err)
	}
	if d3.ExpiringKeys() != 1 || db.ExpiringKeys() != 0 {
		t.Fatalf("ExpiringKeys: db3 %d db0 %d", d3.ExpiringKeys(), db.ExpiringKeys())
	}
	if got := db.Stats().Keys; got != 5 {
		t.Fatalf("Stats.Keys = %d, want 5 (every database)", got)
	}
	if got, want := db.LiveBytes(), d3.LiveBytes(); got != want {
		t.Fatalf("LiveBytes differs between views: %d, %d", got, want)
	}
	var scanned []string
	for c := uint64(0); ; {
		c = d3.Scan(c, 10, func(k []byte) { scanned = append(scanned, string(k)) })
		if c == 0 {
			break
		}
	}
	if len(scanned) != 3 {
		t.Fatalf("Scan of db 3: %q", scanned)
	}
	if existed, _ := db.Delete([]byte("k")); !existed {
		t.Fatal("Delete in db 0 found nothing")
	}
	mustGet(t, d3, "k", "three")
	want := dbState(t, db)
	db.Close()
	db = mustOpen(t, dir, testOptions()) // from hints
	sameState(t, "after reopen", dbState(t, db), want)
	db.Close()
	removeHints(t, dir)
	db = mustOpen(t, dir, testOptions()) // by scanning
	defer db.Close()
	sameState(t, "after reopen without hints", dbState(t, db), want)
}

// TestMoveIsOneBatch: a key moved between databases in one Update is in
// exactly one of them after a reopen, also when the batch is torn.
func TestMoveIsOneBatch(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	mustPut(t, db, "m", "v")
	err := db.Update(func(tx *Tx) error {
		if _, err := tx.Delete([]byte("m")); err != nil {
			return err
		}
		t5 := tx.Select(5)
		if _, ok := t5.Meta([]byte("m")); ok {
			t.Fatal("db 5 sees db 0's key inside the Tx")
		}
		if err := t5.Put([]byte("m"), []byte("v"), 0); err != nil {
			return err
		}
		if _, ok := tx.Meta([]byte("m")); ok {
			t.Fatal("db 0 sees its deleted key")
		}
		if _, ok := t5.Select(0).Meta([]byte("m")); ok {
			t.Fatal("Select(0) of Select(5) sees the deleted key")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustMissing(t, db, "m")
	mustGet(t, db.Select(5), "m", "v")
	db.Close()
	removeHints(t, dir)
	db = mustOpen(t, dir, testOptions())
	mustMissing(t, db, "m")
	mustGet(t, db.Select(5), "m", "v")
	db.Close()

	// A torn move: the last record of the batch (the put into db 5) cut.
	truncateNewest(t, dir, 3)
	removeHints(t, dir)
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	mustGet(t, db, "m", "v")
	mustMissing(t, db.Select(5), "m")
}

// TestFlushDB: a flush-db empties its database only, and survives a
// reopen and a merge; a flush-all empties every database.
func TestFlushDB(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	for n := range 4 {
		v := db.Select(n)
		mustPut(t, v, "a", fmt.Sprint("a", n))
		if err := v.Update(func(tx *Tx) error {
			if _, err := tx.HashSet([]byte("h"), []byte("f"), []byte("x")); err != nil {
				return err
			}
			_, err := tx.SetAdd([]byte("s"), []byte("m"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats().LiveBytes
	if err := db.Select(2).FlushDB(); err != nil {
		t.Fatal(err)
	}
	if db.Select(2).Len() != 0 || db.Select(1).Len() != 3 || db.Len() != 3 {
		t.Fatalf("Len after FLUSHDB of db 2: db0 %d db1 %d db2 %d", db.Len(), db.Select(1).Len(), db.Select(2).Len())
	}
	if got := db.Stats().LiveBytes; got != before*3/4 {
		t.Fatalf("LiveBytes %d after FLUSHDB, want %d", got, before*3/4)
	}
	// Written after the flush, in the same Update as a flush of db 1: the
	// Tx sees db 1 empty and db 3 untouched.
	err := db.Update(func(tx *Tx) error {
		t1 := tx.Select(1)
		if err := t1.Put([]byte("b"), []byte("1"), 0); err != nil {
			return err
		}
		if err := t1.FlushDB(); err != nil {
			return err
		}
		if _, ok := t1.Meta([]byte("b")); ok {
			t.Fatal("a key written before the Tx's flush-db is visible")
		}
		if _, ok := tx.Select(3).Meta([]byte("a")); !ok {
			t.Fatal("db 3 lost its key to db 1's flush inside the Tx")
		}
		return t1.Put([]byte("c"), []byte("1"), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := dbState(t, db)
	if len(want[1]) != 1 || len(want[2]) != 0 || len(want[3]) != 3 {
		t.Fatalf("state %v", want)
	}
	db.Close()
	removeHints(t, dir)
	db = mustOpen(t, dir, testOptions())
	sameState(t, "after reopen", dbState(t, db), want)
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	sameState(t, "after merge", dbState(t, db), want)
	db.Close()
	db = mustOpen(t, dir, testOptions())
	sameState(t, "after merge and reopen", dbState(t, db), want)
	if err := db.Select(7).FlushAll(); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats().Keys; got != 0 {
		t.Fatalf("%d keys after FlushAll", got)
	}
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	sameState(t, "after FlushAll and reopen", dbState(t, db), map[int]map[string]string{})
}

// TestDatabasesExpirySweep: the sweep removes expired keys of every
// database.
func TestDatabasesExpirySweep(t *testing.T) {
	clock := newTestClock()
	o := testOptions()
	o.Clock = clock.Now
	db := mustOpen(t, t.TempDir(), o)
	defer db.Close()
	d9 := db.Select(9)
	if err := d9.Put([]byte("x"), []byte("1"), clock.Ms()+1000); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * 1000 * 1000 * 1000)
	sweepAll(db)
	if d9.Len() != 0 {
		t.Fatalf("db 9 Len after sweep = %d", d9.Len())
	}
}

func removeHints(t *testing.T, dir string) {
	t.Helper()
	hints, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
	for _, h := range hints {
		if err := os.Remove(h); err != nil {
			t.Fatal(err)
		}
	}
}

// truncateNewest cuts n bytes off the newest data file, as a torn write.
func truncateNewest(t *testing.T, dir string, n int64) {
	t.Helper()
	p := newestDataFile(t, dir)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()-n); err != nil {
		t.Fatal(err)
	}
}

// TestOpenBeforeDatabases opens a data directory written before databases
// existed (testdata/before-databases, made by that version: strings, an
// integer, a tombstone, an expiry, a hash): from its hint and by scanning,
// everything is database 0's and the other databases are empty.
func TestOpenBeforeDatabases(t *testing.T) {
	for _, hints := range []bool{true, false} {
		dir := t.TempDir()
		copyDir(t, "testdata/before-databases", dir)
		if !hints {
			removeHints(t, dir)
		}
		db := mustOpen(t, dir, testOptions())
		mustGet(t, db, "str", "value")
		mustGet(t, db, "int", "-42")
		mustGet(t, db, "\x03k", "prefix-looking")
		mustMissing(t, db, "gone")
		if m, ok := db.MetaOf([]byte("ttl")); !ok || m.ExpireAt != 4102444800000 {
			t.Fatalf("hints=%v ttl: %+v, %v", hints, m, ok)
		}
		if v, err := db.HashGet(nil, Hash([]byte("h")), []byte("h"), []byte("f2"), 0); err != nil || string(v) != "12" {
			t.Fatalf("hints=%v HGET h f2 = %q, %v", hints, v, err)
		}
		if db.Len() != 5 {
			t.Fatalf("hints=%v db 0 Len = %d, want 5", hints, db.Len())
		}
		for n := 1; n < NumDBs; n++ {
			if l := db.Select(n).Len(); l != 0 {
				t.Fatalf("hints=%v db %d Len = %d", hints, n, l)
			}
		}
		mustMissing(t, db.Select(3), "k")
		db.Close()
	}
}
