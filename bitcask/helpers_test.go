package bitcask

import (
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

// sweepAll runs the expiry sweep over every shard of every database once.
func sweepAll(db *DB) {
	db.sweep = sweepState{}
	for {
		prev := db.sweep.db*numShards + db.sweep.shard
		db.sweepStep() // covers fewer than numShards shards per step
		if db.sweep.db*numShards+db.sweep.shard < prev {
			return
		}
	}
}
