package bitcask

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for expiry tests.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *testClock) Ms() int64 { return c.Now().UnixMilli() }

// testOptions are quiet options: no background merge or sweep unless a
// test turns them on.
func testOptions() Options {
	o := DefaultOptions()
	o.MergeCheckInterval = 0
	o.ExpirySweepInterval = 0
	return o
}

func mustOpen(t testing.TB, dir string, o Options) *DB {
	t.Helper()
	db, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func mustPut(t testing.TB, db *DB, k, v string) {
	t.Helper()
	if err := db.Put([]byte(k), []byte(v), 0); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func mustGet(t testing.TB, db *DB, k, want string) {
	t.Helper()
	v, _, err := db.Get([]byte(k))
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	if string(v) != want {
		t.Fatalf("Get(%q) = %q, want %q", k, v, want)
	}
}

func mustMissing(t testing.TB, db *DB, k string) {
	t.Helper()
	v, _, err := db.Get([]byte(k))
	if err != ErrNotFound {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", k, v, err)
	}
}

// sweepAll runs the expiry sweep over every shard once.
func sweepAll(db *DB) {
	db.sweep = sweepState{}
	for {
		prev := db.sweep.shard
		db.sweepStep() // covers fewer than numShards shards per step
		if db.sweep.shard < prev {
			return
		}
	}
}

// checkTruncatedEveryByte runs writes against a new DB holding "base",
// then cuts its newest file at every byte from before the first write to
// after the last and reopens it (without hints): state(db) must be what it
// was after the last write wholly within the cut, and base must be there.
func checkTruncatedEveryByte(t *testing.T, writes []func(db *DB), state func(db *DB) string) {
	t.Helper()
	src := t.TempDir()
	db := mustOpen(t, src, testOptions())
	mustPut(t, db, "base", "v")
	var sizes []int64
	states := []string{state(db)}
	active := func() string { return db.active.path }
	for _, w := range writes {
		fi, _ := os.Stat(active())
		sizes = append(sizes, fi.Size())
		w(db)
		states = append(states, state(db))
	}
	fi, _ := os.Stat(active())
	sizes = append(sizes, fi.Size())
	name := filepath.Base(active())
	db.Close()
	os.Remove(filepath.Join(src, strings.TrimSuffix(name, ".data")+".hint"))
	data, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		t.Fatal(err)
	}
	data = data[:sizes[len(sizes)-1]]
	for cut := sizes[0]; cut <= sizes[len(sizes)-1]; cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		db := mustOpen(t, dir, testOptions())
		n := 0
		for n+1 < len(sizes) && sizes[n+1] <= cut {
			n++
		}
		if got := state(db); got != states[n] {
			t.Fatalf("cut at %d: %q, want %q (after write %d)", cut, got, states[n], n)
		}
		mustGet(t, db, "base", "v")
		db.Close()
	}
}
