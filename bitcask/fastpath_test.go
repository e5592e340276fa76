package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLiveBytesComputedLate: a Tx that asks for LiveBytes only after many
// writes (overwrites, deletes, expiries, a flush-all, more than txIndexAt
// ops) gets the same answer as one that tracked it from the start, and the
// DB's LiveBytes after the commit agrees.
func TestLiveBytesComputedLate(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			clk := newTestClock()
			o := testOptions()
			o.Clock = clk.Now
			db := mustOpen(t, t.TempDir(), o)
			defer db.Close()
			rng := rand.New(rand.NewPCG(seed, 7))
			for i := 0; i < 30; i++ {
				mustPut(t, db, "k"+strconv.Itoa(i), strings.Repeat("v", rng.IntN(20)))
			}
			type op struct {
				kind int
				key  string
				val  string
			}
			var ops []op
			for i := 0; i < 60; i++ {
				o := op{kind: rng.IntN(10), key: "k" + strconv.Itoa(rng.IntN(40)), val: strings.Repeat("w", rng.IntN(30))}
				if o.kind == 9 && rng.IntN(4) != 0 {
					o.kind = 0 // flush-all now and then
				}
				ops = append(ops, o)
			}
			run := func(tx *Tx, askAt int) (int64, error) {
				var got int64
				for i, o := range ops {
					if i == askAt {
						got = tx.LiveBytes()
					}
					var err error
					switch {
					case o.kind < 5:
						err = tx.Put([]byte(o.key), []byte(o.val), 0)
					case o.kind < 7:
						_, err = tx.Delete([]byte(o.key))
					case o.kind < 9:
						_, err = tx.SetExpireAt([]byte(o.key), clk.Ms()+100000)
					default:
						err = tx.FlushAll()
					}
					if err != nil {
						return 0, err
					}
				}
				_ = got
				return tx.LiveBytes(), nil
			}
			var early, late int64
			errStop := errors.New("roll back")
			db.Update(func(tx *Tx) error { early, _ = run(tx, 0); return errStop })
			ask := rng.IntN(len(ops))
			if err := db.Update(func(tx *Tx) error {
				var err error
				late, err = run(tx, ask)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if early != late {
				t.Fatalf("LiveBytes tracked from the start %d, asked first after op %d %d", early, ask, late)
			}
			if db.LiveBytes() != late {
				t.Fatalf("DB LiveBytes %d after commit, Tx said %d", db.LiveBytes(), late)
			}
			var sum int64
			db.Range(func(k []byte, m Meta) bool { sum += int64(len(k)) + m.Len; return true })
			if sum != late {
				t.Fatalf("keys and values add up to %d, LiveBytes %d", sum, late)
			}
		})
	}
}

// TestTxSeesItsWritesPastIndex: with more writes than txIndexAt, lookups go
// through the hash index and still see the latest write of each key, and
// nothing from before a flush-all.
func TestTxSeesItsWritesPastIndex(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	mustPut(t, db, "old", "1")
	err := db.Update(func(tx *Tx) error {
		for round := 0; round < 3; round++ {
			for i := 0; i < 50; i++ {
				k := []byte("k" + strconv.Itoa(i%37))
				v := []byte(fmt.Sprintf("%d-%d", round, i))
				if err := tx.Put(k, v, 0); err != nil {
					return err
				}
				got, m, err := tx.Get(k)
				if err != nil || !bytes.Equal(got, v) || m.Len != int64(len(v)) {
					return fmt.Errorf("Get(%s) = %q %+v %v, want %q", k, got, m, err, v)
				}
			}
			if i := 5; true {
				k := []byte("k" + strconv.Itoa(i))
				if ok, err := tx.Delete(k); !ok || err != nil {
					return fmt.Errorf("Delete(%s) = %v %v", k, ok, err)
				}
				if _, ok := tx.Meta(k); ok {
					return fmt.Errorf("%s visible after delete", k)
				}
			}
			if round == 1 {
				if _, ok := tx.Meta([]byte("old")); !ok {
					return errors.New("old not visible before flush")
				}
				if err := tx.FlushAll(); err != nil {
					return err
				}
				if _, ok := tx.Meta([]byte("k1")); ok {
					return errors.New("k1 visible after flush")
				}
			}
		}
		if _, ok := tx.Meta([]byte("old")); ok {
			return errors.New("old visible after flush")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, db, "k1", "2-38")
	mustMissing(t, db, "k5")
	mustMissing(t, db, "old")
}

// TestMetaLen: Meta.Len is the value's length as written, for byte and
// integer values, from the DB and from a Tx.
func TestMetaLen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	vals := map[string]string{"b": "hello", "i": "-12345", "z": "0", "e": "", "lead": "007"}
	for k, v := range vals {
		mustPut(t, db, k, v)
	}
	check := func(db *DB) {
		t.Helper()
		for k, v := range vals {
			if m, ok := db.MetaOf([]byte(k)); !ok || m.Len != int64(len(v)) {
				t.Errorf("MetaOf(%s) = %+v %v, want Len %d", k, m, ok, len(v))
			}
			if _, m, err := db.Get([]byte(k)); err != nil || m.Len != int64(len(v)) {
				t.Errorf("Get(%s) meta %+v %v", k, m, err)
			}
		}
		db.Update(func(tx *Tx) error {
			for k, v := range vals {
				if m, ok := tx.Meta([]byte(k)); !ok || m.Len != int64(len(v)) {
					t.Errorf("tx.Meta(%s) = %+v %v", k, m, ok)
				}
			}
			tx.Put([]byte("i"), []byte("42"), 0)
			if m, _ := tx.Meta([]byte("i")); m.Len != 2 {
				t.Errorf("tx.Meta after put: %+v", m)
			}
			return errors.New("roll back")
		})
	}
	check(db)
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	check(db)
}

// TestHashedLookups: the ...Hashed methods with the right hash behave like
// the plain ones; with another key's hash (what a hash collision looks
// like to the key directory) they find nothing, never the other key's
// value, and report no corruption.
func TestHashedLookups(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	mustPut(t, db, "a", "value-of-a")
	mustPut(t, db, "big", strings.Repeat("x", maxLockedCopy+10))
	for _, k := range []string{"a", "big"} {
		v, _, err := db.GetAppendHashed(nil, Hash([]byte(k)), []byte(k), 0)
		if err != nil || len(v) == 0 {
			t.Fatalf("GetAppendHashed(%s): %q %v", k, v, err)
		}
		for _, other := range []string{"b", "", "a\x00", "bigger"} {
			if v, _, err := db.GetAppendHashed(nil, Hash([]byte(k)), []byte(other), 0); err != ErrNotFound {
				t.Fatalf("GetAppendHashed(%q) with the hash of %s = %q, %v; want ErrNotFound", other, k, v, err)
			}
			if _, ok := db.MetaOfHashed(Hash([]byte(k)), []byte(other), 0); ok {
				t.Fatalf("MetaOfHashed(%q) with the hash of %s found something", other, k)
			}
		}
	}
	if h := Hash([]byte("a")); h == Hash([]byte("b")) {
		t.Fatal("test keys collide")
	}
}

// TestGetUnverified drives getUnverified over a shard where many keys share
// hashes: it finds exactly what get finds, and skips the key comparison
// only for the one entry with its hash.
func TestGetUnverified(t *testing.T) {
	var s shard
	hashOf := func(k string) uint64 { return uint64(len(k)%5) * 0x9e3779b97f4a7c15 }
	keys := map[string]bool{}
	for i := 0; i < 500; i++ {
		k := strings.Repeat("k", 1+i%7) + strconv.Itoa(i)
		h := hashOf(k)
		ci, j, found := s.search(h, []byte(k))
		if !found {
			s.insertAt(ci, j, entry{hash: h, seq: uint64(i)}, []byte(k))
		}
		keys[k] = true
	}
	// A hash only one key has.
	lone := "lonely"
	ci, j, _ := s.search(12345, []byte(lone))
	s.insertAt(ci, j, entry{hash: 12345}, []byte(lone))
	for k := range keys {
		h := hashOf(k)
		e, verified := s.getUnverified(h, []byte(k))
		if e == nil || !bytes.Equal(s.keyOf(e), []byte(k)) {
			t.Fatalf("getUnverified(%q) = %v", k, e)
		}
		if !verified {
			t.Fatalf("getUnverified(%q): unverified though its hash is shared", k)
		}
	}
	e, verified := s.getUnverified(12345, []byte("someone else"))
	if e == nil || verified || string(s.keyOf(e)) != lone {
		t.Fatalf("lone hash: %v %v", e, verified)
	}
	if e, _ := s.getUnverified(999, []byte("x")); e != nil {
		t.Fatal("found an absent hash")
	}
}

// TestExpiringKeys: the count of keys with an expiry follows puts,
// expiries, persists, overwrites, deletes, removal of expired keys and a
// restart.
func TestExpiringKeys(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	now := clk.Ms()
	want := func(n int) {
		t.Helper()
		if got := db.ExpiringKeys(); got != n {
			t.Fatalf("ExpiringKeys = %d, want %d", got, n)
		}
		c := 0
		db.Range(func(_ []byte, m Meta) bool {
			if m.ExpireAt != 0 {
				c++
			}
			return true
		})
		if c > n {
			t.Fatalf("Range sees %d keys with an expiry, count says %d", c, n)
		}
	}
	for i := 0; i < 100; i++ {
		db.Put([]byte("e"+strconv.Itoa(i)), []byte("v"), now+int64(1000+i))
		db.Put([]byte("p"+strconv.Itoa(i)), []byte("v"), 0)
	}
	want(100)
	db.Update(func(tx *Tx) error {
		tx.SetExpireAt([]byte("p1"), now+5000)   // +1
		tx.SetExpireAt([]byte("e1"), 0)          // -1
		tx.Put([]byte("e2"), []byte("w"), 0)     // -1
		tx.Delete([]byte("e3"))                  // -1
		tx.Put([]byte("p2"), []byte("w"), now+9) // +1
		return nil
	})
	want(99)
	db.Close()
	db = mustOpen(t, dir, o)
	want(99)
	clk.Add(200 * time.Second)
	sweepAll(db)
	want(0)
	db.Close()
}

// TestUpdateNoWait: under SyncAlways UpdateNoWait returns what WaitDurable
// needs and WaitDurable fsyncs; otherwise there is nothing to wait for.
func TestUpdateNoWait(t *testing.T) {
	o := testOptions()
	o.Sync = SyncAlways
	db := mustOpen(t, t.TempDir(), o)
	defer db.Close()
	f0 := db.Stats().Fsyncs
	seq, err := db.UpdateNoWait(func(tx *Tx) error { return tx.Put([]byte("k"), []byte("v"), 0) })
	if err != nil || seq == 0 {
		t.Fatalf("UpdateNoWait = %d, %v", seq, err)
	}
	mustGet(t, db, "k", "v") // visible before it is durable, as in Redis
	if err := db.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	if db.Stats().Fsyncs == f0 {
		t.Fatal("WaitDurable did not fsync")
	}
	if seq, err := db.UpdateNoWait(func(tx *Tx) error { return nil }); seq != 0 || err != nil {
		t.Fatalf("empty update: %d %v", seq, err)
	}
	db.SetSyncPolicy(SyncEverySec)
	if seq, err := db.UpdateNoWait(func(tx *Tx) error { return tx.Put([]byte("k"), []byte("w"), 0) }); seq != 0 || err != nil {
		t.Fatalf("everysec: %d %v", seq, err)
	}
}

// TestReadsAcrossMappingAndPread: records inside a file's mapping and ones
// that end beyond it (read with pread), in rotated and active files, and
// after a merge, all read back; a flipped bit in a mapped record is an
// error, never the bytes.
func TestReadsAcrossMappingAndPread(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 4096
	db := mustOpen(t, dir, o)
	vals := map[string]string{}
	for i := 0; i < 200; i++ {
		k := "k" + strconv.Itoa(i)
		v := strings.Repeat(string(rune('a'+i%26)), 1+i*i%3000)
		if i%50 == 7 {
			v = strings.Repeat("L", 200<<10) // beyond a 64 KiB mapping
		}
		vals[k] = v
		mustPut(t, db, k, v)
	}
	check := func() {
		t.Helper()
		for k, v := range vals {
			mustGet(t, db, k, v)
		}
	}
	check()
	for i := 0; i < 200; i += 3 {
		k := "k" + strconv.Itoa(i)
		vals[k] = "new" + k
		mustPut(t, db, k, vals[k])
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	check()
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	check()
}

// TestPreallocatedTail: under SyncAlways the active file runs ahead of its
// data with zeros. A crash leaves them (a copy of the open directory is
// what a crash leaves): Open cuts them without counting torn records and
// loses nothing; a torn record in that space is counted and cut; rotation
// and Close leave files exactly as long as their data.
func TestPreallocatedTail(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.Sync = SyncAlways
	o.MaxFileSize = 8 << 20
	o.DisableHints = true
	db := mustOpen(t, dir, o)
	vals := map[string]string{}
	for i := 0; i < 300; i++ {
		k, v := "k"+strconv.Itoa(i), strings.Repeat("v", i%200)
		vals[k] = v
		mustPut(t, db, k, v)
	}
	path := newestDataFile(t, dir)
	logical := db.active.size.Load()
	fi, _ := os.Stat(path)
	if fi.Size() <= logical || fi.Size()%preallocChunk != 0 {
		t.Fatalf("active file is %d bytes for %d of data: not preallocated", fi.Size(), logical)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	torn := t.TempDir()
	copyDir(t, dir, torn)
	tp := filepath.Join(torn, filepath.Base(path))
	tf, err := os.OpenFile(tp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	tf.WriteAt([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, logical) // half a record
	tf.Close()

	check := func(dir string, wantTruncated int64) {
		t.Helper()
		db := mustOpen(t, dir, o)
		defer db.Close()
		for k, v := range vals {
			mustGet(t, db, k, v)
		}
		if st := db.Stats(); st.RecoveryTruncated != wantTruncated {
			t.Fatalf("%s: RecoveryTruncated %d, want %d", dir, st.RecoveryTruncated, wantTruncated)
		}
		if fi, _ := os.Stat(filepath.Join(dir, filepath.Base(path))); fi.Size() != logical {
			t.Fatalf("%s: newest file %d bytes after recovery, data %d", dir, fi.Size(), logical)
		}
		mustPut(t, db, "after", "x")
	}
	check(crashed, 0)
	check(torn, 1)

	// Rotation cuts the old active file to its data.
	big := strings.Repeat("B", 1<<20)
	for i := 0; i < 12; i++ {
		k := "big" + strconv.Itoa(i)
		vals[k] = big
		mustPut(t, db, k, big)
	}
	files := db.snapshotFiles()
	if len(files) < 2 {
		t.Fatalf("%d files: no rotation", len(files))
	}
	for _, f := range files[:len(files)-1] {
		fi, _ := os.Stat(f.path)
		if fi.Size() != f.size.Load() {
			t.Fatalf("rotated %s is %d bytes, data %d", f.path, fi.Size(), f.size.Load())
		}
	}
	db.Close()
	for _, f := range files {
		fi, _ := os.Stat(f.path)
		if fi.Size() != f.size.Load() {
			t.Fatalf("after Close %s is %d bytes, data %d", f.path, fi.Size(), f.size.Load())
		}
	}
	db = mustOpen(t, dir, o)
	defer db.Close()
	for k, v := range vals {
		mustGet(t, db, k, v)
	}
	if st := db.Stats(); st.RecoveryTruncated != 0 || st.RecoverySkipped != 0 {
		t.Fatalf("clean reopen: %+v", st)
	}
}

// TestReadsRaceMergeAndClose: Gets from mapped files while writers
// overwrite, merges delete the files the reads come from, and finally Close
// unmaps everything: every Get returns a value the key had or an error,
// never bytes of another record, and nothing faults.
func TestReadsRaceMergeAndClose(t *testing.T) {
	o := testOptions()
	o.MaxFileSize = 64 << 10
	db := mustOpen(t, t.TempDir(), o)
	const keys = 200
	val := func(k, gen int) string {
		return fmt.Sprintf("%d-%d-", k, gen) + strings.Repeat("x", (k*7+gen)%300)
	}
	for k := 0; k < keys; k++ {
		mustPut(t, db, strconv.Itoa(k), val(k, 0))
	}
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var buf []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(keys)
				v, _, err := db.GetAppend(buf[:0], []byte(strconv.Itoa(k)))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("Get(%d): %v", k, err)
					return
				}
				if !strings.HasPrefix(string(v), strconv.Itoa(k)+"-") {
					errs <- fmt.Errorf("Get(%d) = %.20q", k, v)
					return
				}
				buf = v
			}
		}(r)
	}
	for gen := 1; gen <= 15; gen++ {
		for k := 0; k < keys; k++ {
			if err := db.Put([]byte(strconv.Itoa(k)), []byte(val(k, gen)), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Merge(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	db.Close() // the readers see ErrClosed from here on
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
