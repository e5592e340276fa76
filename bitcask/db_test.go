package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

func TestBasicPutGetDeleteReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	mustPut(t, db, "a", "1")
	mustPut(t, db, "b", "hello")
	mustPut(t, db, "", "empty key")
	mustPut(t, db, "e", "")
	mustPut(t, db, "n", "-0")
	mustPut(t, db, "big", "9223372036854775807")
	mustPut(t, db, "small", "-9223372036854775808")
	mustPut(t, db, "over", "9223372036854775808")
	if ok, err := db.Delete([]byte("b")); !ok || err != nil {
		t.Fatalf("Delete(b) = %v, %v", ok, err)
	}
	if ok, _ := db.Delete([]byte("b")); ok {
		t.Fatal("second Delete(b) reported existed")
	}
	check := func(db *DB) {
		mustGet(t, db, "a", "1")
		mustMissing(t, db, "b")
		mustGet(t, db, "", "empty key")
		mustGet(t, db, "e", "")
		mustGet(t, db, "n", "-0")
		mustGet(t, db, "big", "9223372036854775807")
		mustGet(t, db, "small", "-9223372036854775808")
		mustGet(t, db, "over", "9223372036854775808")
		if db.Len() != 7 {
			t.Fatalf("Len = %d, want 7", db.Len())
		}
		want := int64(len("a1") + len("empty key") + len("e") + len("n-0") + len("big9223372036854775807") + len("small-9223372036854775808") + len("over9223372036854775808"))
		if db.LiveBytes() != want {
			t.Fatalf("LiveBytes = %d, want %d", db.LiveBytes(), want)
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, dir, testOptions())
	check(db)
	if st := db.Stats(); st.HintFilesLoaded != 1 {
		t.Fatalf("after a clean close the active file's hint should be used: %+v", st)
	}
	db.Close()
	if _, _, err := db.Get([]byte("a")); err != ErrClosed {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	defer db.Close()
	if _, err := Open(dir, testOptions()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestSizeLimits(t *testing.T) {
	o := testOptions()
	o.MaxKeySize = 4
	o.MaxValueSize = 8
	db := mustOpen(t, t.TempDir(), o)
	defer db.Close()
	if err := db.Put([]byte("12345"), nil, 0); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatal(err)
	}
	if err := db.Put([]byte("k"), []byte("123456789"), 0); !errors.Is(err, ErrValueTooLarge) {
		t.Fatal(err)
	}
	if err := db.Put([]byte("1234"), []byte("12345678"), 0); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateAtomicAndRollback(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	mustPut(t, db, "x", "old")
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if err := tx.Put([]byte("x"), []byte("new"), 0); err != nil {
			return err
		}
		v, _, err := tx.Get([]byte("x"))
		if err != nil || string(v) != "new" {
			t.Errorf("tx.Get = %q, %v", v, err)
		}
		tx.Put([]byte("y"), []byte("1"), 0)
		return boom
	})
	if err != boom {
		t.Fatalf("Update = %v", err)
	}
	mustGet(t, db, "x", "old")
	mustMissing(t, db, "y")
	seq0, _ := db.MetaOf([]byte("x"))

	var stale *Tx
	err = db.Update(func(tx *Tx) error {
		stale = tx
		for i := 0; i < 40; i++ { // past txIndexAt
			if err := tx.Put([]byte(fmt.Sprintf("k%d", i)), []byte(strconv.Itoa(i)), 0); err != nil {
				return err
			}
		}
		tx.Put([]byte("k3"), []byte("three"), 0)
		if ok, _ := tx.Delete([]byte("k4")); !ok {
			t.Error("tx.Delete(k4) of the tx's own write: not existed")
		}
		if _, ok := tx.Meta([]byte("k4")); ok {
			t.Error("k4 visible after tx delete")
		}
		if ok, _ := tx.SetExpireAt([]byte("x"), time.Now().Add(time.Hour).UnixMilli()); !ok {
			t.Error("SetExpireAt(x) not existed")
		}
		v, m, err := tx.Get([]byte("x"))
		if err != nil || string(v) != "old" || m.ExpireAt == 0 {
			t.Errorf("tx.Get(x) = %q %+v %v", v, m, err)
		}
		v, _, _ = tx.Get([]byte("k7"))
		if string(v) != "7" {
			t.Errorf("tx.Get(k7) = %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Delete([]byte("x")); err != ErrTxDone {
		t.Fatalf("stale tx: %v", err)
	}
	mustGet(t, db, "k3", "three")
	mustMissing(t, db, "k4")
	mustGet(t, db, "k39", "39")
	m, ok := db.MetaOf([]byte("x"))
	if !ok || m.ExpireAt == 0 || m.Seq == seq0.Seq {
		t.Fatalf("MetaOf(x) = %+v %v (before %+v)", m, ok, seq0)
	}
	if db.Len() != 40 {
		t.Fatalf("Len = %d", db.Len())
	}
}

func TestTxFlushAllAndLiveBytes(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	mustPut(t, db, "a", "12345")
	mustPut(t, db, "b", "1")
	err := db.Update(func(tx *Tx) error {
		if got := tx.LiveBytes(); got != 8 {
			t.Errorf("LiveBytes = %d, want 8", got)
		}
		tx.Put([]byte("a"), []byte("1"), 0)
		if got := tx.LiveBytes(); got != 4 {
			t.Errorf("LiveBytes after overwrite = %d, want 4", got)
		}
		tx.FlushAll()
		if got := tx.LiveBytes(); got != 0 {
			t.Errorf("LiveBytes after flush = %d", got)
		}
		if _, ok := tx.Meta([]byte("b")); ok {
			t.Error("b visible after FlushAll in tx")
		}
		tx.Put([]byte("c"), []byte("xy"), 0)
		if got := tx.LiveBytes(); got != 3 {
			t.Errorf("LiveBytes = %d, want 3", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustMissing(t, db, "a")
	mustMissing(t, db, "b")
	mustGet(t, db, "c", "xy")
	if db.Len() != 1 || db.LiveBytes() != 3 {
		t.Fatalf("Len %d LiveBytes %d", db.Len(), db.LiveBytes())
	}
}

func TestScanVisitsEveryKeyInHashOrder(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	const n = 3000
	for i := 0; i < n; i++ {
		mustPut(t, db, fmt.Sprintf("key:%d", i), "v")
	}
	seen := map[string]int{}
	var last uint64
	cursor := uint64(0)
	calls := 0
	for {
		next := db.Scan(cursor, 100, func(k []byte) {
			h := xxhash.Sum64(k)
			if h < cursor || h < last {
				t.Fatalf("key %q hash %x out of order (cursor %x, last %x)", k, h, cursor, last)
			}
			last = h
			seen[string(k)]++
		})
		calls++
		if next == 0 {
			break
		}
		if next <= cursor {
			t.Fatalf("cursor went back: %x -> %x", cursor, next)
		}
		cursor = next
	}
	if len(seen) != n {
		t.Fatalf("scan saw %d keys, want %d", len(seen), n)
	}
	if calls < n/100 || calls > n/100+2 {
		t.Fatalf("%d calls", calls)
	}
	var all []string
	db.Range(func(k []byte, m Meta) bool { all = append(all, string(k)); return true })
	if len(all) != n {
		t.Fatalf("Range saw %d", len(all))
	}
	if k, ok := db.RandomKey(); !ok || !bytes.HasPrefix(k, []byte("key:")) {
		t.Fatalf("RandomKey = %q %v", k, ok)
	}
}

func TestNamespaceStats(t *testing.T) {
	opts := testOptions()
	// The caller's rule; the engine knows no namespaces of its own.
	opts.Namespace = func(key []byte) []byte {
		if i := bytes.IndexByte(key, ':'); i >= 0 {
			return key[:i]
		}
		return nil
	}
	db := mustOpen(t, t.TempDir(), opts)
	defer db.Close()
	mustPut(t, db, "users:1", "abc")
	mustPut(t, db, "users:2", "d")
	mustPut(t, db, "orders:1:x", "12")
	mustPut(t, db, "plain", "z")
	db.Delete([]byte("users:2"))
	got := db.NamespaceStats()
	want := map[string]NamespaceStat{
		"users":  {Keys: 1, Bytes: 10},
		"orders": {Keys: 1, Bytes: 12},
		"":       {Keys: 1, Bytes: 6},
	}
	if fmt.Sprint(sortedStats(got)) != fmt.Sprint(sortedStats(want)) {
		t.Fatalf("NamespaceStats = %v, want %v", got, want)
	}
}

func sortedStats(m map[string]NamespaceStat) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%q=%d/%d", k, v.Keys, v.Bytes))
	}
	sort.Strings(out)
	return out
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	now := clk.Ms()
	db.Put([]byte("short"), []byte("v"), now+1000)
	db.Put([]byte("long"), []byte("v"), now+100000)
	db.Put([]byte("extended"), []byte("v"), now+1000)
	db.Put([]byte("persisted"), []byte("v"), now+1000)
	db.Update(func(tx *Tx) error {
		tx.SetExpireAt([]byte("extended"), now+100000)
		tx.SetExpireAt([]byte("persisted"), 0)
		return nil
	})
	clk.Add(2 * time.Second)
	mustMissing(t, db, "short")
	if db.Exists([]byte("short")) {
		t.Fatal("expired key exists")
	}
	mustGet(t, db, "long", "v")
	mustGet(t, db, "extended", "v")
	mustGet(t, db, "persisted", "v")
	if m, _ := db.MetaOf([]byte("persisted")); m.ExpireAt != 0 {
		t.Fatalf("persisted has expiry %d", m.ExpireAt)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	mustMissing(t, db, "short")
	mustGet(t, db, "extended", "v")
	mustGet(t, db, "persisted", "v")
	if db.Len() != 3 {
		t.Fatalf("Len after reopen = %d", db.Len())
	}
	clk.Add(200 * time.Second)
	// The sweep removes what nobody reads.
	sweepAll(db)
	if db.Len() != 1 {
		t.Fatalf("Len after sweep = %d", db.Len())
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	mustMissing(t, db, "long")
	mustMissing(t, db, "extended")
	mustGet(t, db, "persisted", "v")
}

func TestUpdatePanicReleasesLock(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	func() {
		defer func() { recover() }()
		db.Update(func(tx *Tx) error {
			tx.Put([]byte("p"), []byte("1"), 0)
			panic("boom")
		})
	}()
	mustMissing(t, db, "p")
	mustPut(t, db, "q", "1") // the write lock was released
	mustGet(t, db, "q", "1")
}
