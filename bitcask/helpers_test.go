package bitcask

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// killRounds runs the test child (a -test.run pattern) twice with env set
// to "dir|round", SIGKILLs it once it has acknowledged 300 writes (lines
// starting with "f") after a merge ("merged"), reopens dir and calls
// check with the writes acknowledged, then merges. The kill waits for the
// child's progress, not a time: a loaded machine may take long.
func killRounds(t *testing.T, env, child string, check func(db *DB, round int, acked []string)) {
	t.Helper()
	dir := t.TempDir()
	for round := 0; round < 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run="+child, "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", env, dir, round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		var acked []string
		merged := false
		deadline := time.Now().Add(2 * time.Minute)
		for len(acked) < 300 && time.Now().Before(deadline) && sc.Scan() {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "error") || strings.HasPrefix(l, "open failed"):
				t.Fatalf("child: %s", l)
			case l == "merged":
				merged = true
			case strings.HasPrefix(l, "f"):
				acked = append(acked, l)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "f") {
				acked = append(acked, l)
			}
		}
		cmd.Wait()
		if !merged || len(acked) < 50 {
			t.Fatalf("round %d: merged %v, %d acks", round, merged, len(acked))
		}
		db := mustOpen(t, dir, testOptions())
		check(db, round, acked)
		if err := db.Merge(); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
}
