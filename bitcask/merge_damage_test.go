package bitcask

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// dirBytes is what the DB's directory holds on disk: data, hint and
// temporary files.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, de := range des {
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// dataBytes is the size of the data files in dir (hint files are written
// for rotated files in the background, whenever).
func dataBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range dataFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// lastPut returns the data file and offset of the newest put record of key
// in dir, and the record's size, by scanning every data file.
func lastPut(t testing.TB, dir, key string) (path string, off, size int64) {
	t.Helper()
	var seq uint64
	for _, p := range dataFiles(t, dir) {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := fh.Stat()
		sc := newScanner()
		sc.reset(fh, fi.Size())
		scanFile(sc, func(r *scanRec) {
			if r.h.kind == kindPut && string(r.key) == key && r.h.seq > seq {
				path, off, size, seq = p, r.off, r.h.size(), r.h.seq
			}
		})
		fh.Close()
	}
	if path == "" {
		t.Fatalf("no put record of %q", key)
	}
	return path, off, size
}

// flipByte flips one byte of a data file, as bit rot on the disk would.
func flipByte(t testing.TB, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x5a
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// logLines collects what the DB logs at or above a level.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logLines) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

func (l *logLines) logger(level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: level})
}

// TestCorruptLiveRecordMergeLoop is issue 19's case: one flipped byte in a
// live record of an old data file that has a hint file (so Open points the
// key at the damaged record), then background merges at a short interval
// for a while, under writes that keep giving them dead bytes. The merges
// succeed, disk use stays within a small bound of the live data, the DB
// serves, the damage is counted once, and the key serves its older value.
func TestCorruptLiveRecordMergeLoop(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 16 << 10
	db := mustOpen(t, dir, o)
	val := func(i int) string { return fmt.Sprintf("%04d-%s", i, strings.Repeat("v", 1000)) }
	mustPut(t, db, "victim", "older-value")
	for i := 0; i < 100; i++ {
		mustPut(t, db, fmt.Sprintf("k%03d", i), val(i))
	}
	mustPut(t, db, "victim", "newer-value")
	for i := 100; i < 200; i++ {
		mustPut(t, db, fmt.Sprintf("k%03d", i), val(i))
	}
	db.Close() // every file gets its hint
	path, off, size := lastPut(t, dir, "victim")
	if path == newestDataFile(t, dir) {
		t.Fatal("the damaged record should be in an old file")
	}
	if _, err := os.Stat(filepath.Join(dir, hintName(mustID(t, path)))); err != nil {
		t.Fatalf("the damaged file has no hint: %v", err)
	}
	flipByte(t, path, off+size-3) // inside the value

	var logs logLines
	o.MergeCheckInterval = 2 * time.Millisecond
	o.MergeMinDeadBytes = 1
	o.MergeDeadRatio = 0.01
	o.Logger = logs.logger(hclog.Info)
	db = mustOpen(t, dir, o)
	defer func() { db.Close() }()
	if _, _, err := db.Get([]byte("victim")); err == nil {
		t.Fatal("the damaged record was served")
	}
	live := db.LiveBytes()
	start := dirBytes(t, dir)

	// Paced overwrites keep the merge triggers firing without writing
	// dead bytes faster than merges reclaim them.
	var maxDisk int64
	stop := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(stop); i++ {
		mustPut(t, db, fmt.Sprintf("hot%d", i%10), val(i))
		maxDisk = max(maxDisk, dirBytes(t, dir))
		time.Sleep(2 * time.Millisecond)
	}
	st := db.Stats()
	end := dirBytes(t, dir)
	t.Logf("live %d bytes; disk %d at start, %d at most, %d at the end; %d merges, %d failed, %d damaged records",
		live, start, maxDisk, end, st.Merges, st.MergeErrors, st.MergeDamagedRecords)
	if st.Merges < 5 {
		t.Fatalf("only %d merges ran: %+v", st.Merges, st)
	}
	if st.MergeErrors != 0 || st.MergeDamagedRecords != 1 {
		t.Fatalf("want no failed merge and the damage counted once: %+v", st)
	}
	// One merge's inputs and outputs side by side (twice the live data),
	// plus what the writer overwrote during a merge, the active file and
	// the hints. Before the fix every merge failed and left a full copy.
	if bound := 3*live + 8*o.MaxFileSize; maxDisk > bound || end > bound {
		t.Fatalf("disk use %d at most, %d at the end; bound %d for %d live bytes", maxDisk, end, bound, live)
	}
	mustGet(t, db, "victim", "older-value")
	for i := 0; i < 200; i++ {
		mustGet(t, db, fmt.Sprintf("k%03d", i), val(i))
	}
	if ls := logs.matching("victim"); len(ls) != 1 || !strings.Contains(ls[0], "[WARN]") {
		t.Fatalf("want one warning naming the damaged key, got %q", ls)
	}
	db.Close()
	o.MergeCheckInterval = 0
	db = mustOpen(t, dir, o)
	mustGet(t, db, "victim", "older-value")
	for i := 0; i < 200; i++ {
		mustGet(t, db, fmt.Sprintf("k%03d", i), val(i))
	}
	if st := db.Stats(); st.RecoverySkipped != 0 {
		t.Fatalf("the damaged record is still on disk: %+v", st)
	}
}

// checkCounts asserts that Len, LiveBytes and NamespaceStats agree with
// the keys Range visits.
func checkCounts(t testing.TB, db *DB, what string) {
	t.Helper()
	var keys, live int64
	db.Range(func(k []byte, m Meta) bool {
		keys++
		live += int64(len(k)) + m.Len
		return true
	})
	ns := db.NamespaceStats()[""]
	if int64(db.Len()) != keys || db.LiveBytes() != live || ns.Keys != keys || ns.Bytes != live {
		t.Fatalf("%s: Len %d LiveBytes %d namespace %+v; Range has %d keys of %d bytes", what, db.Len(), db.LiveBytes(), ns, keys, live)
	}
}

// TestMergeDamagedRecordState: the key of a damaged live record gets the
// state a scan of the merged files without that record gives it, live and
// after a reopen, and the damage is counted once.
func TestMergeDamagedRecordState(t *testing.T) {
	const hour = int64(time.Hour / time.Millisecond)
	type env struct {
		t   *testing.T
		db  *DB
		clk *testClock
		n   int
	}
	filler := func(e *env) {
		for i := 0; i < 8; i++ {
			e.n++
			mustPut(e.t, e.db, fmt.Sprintf("f%03d", e.n), strings.Repeat("f", 40))
		}
	}
	put := func(e *env, v string, exp int64) {
		if err := e.db.Put([]byte("k"), []byte(v), exp); err != nil {
			e.t.Fatal(err)
		}
	}
	expire := func(e *env, at int64) {
		err := e.db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("k"), at); return err })
		if err != nil {
			e.t.Fatal(err)
		}
	}
	t0 := newTestClock().Ms()
	for _, tc := range []struct {
		name    string
		history func(e *env) // ends with the put of "k" that gets damaged, then filler
		reopen  func(e *env) // after the reopen that loads the damaged file's hint
		partial bool         // merge the immutable files only (else Merge)
		want    string       // "" = the key is gone
		wantExp int64
	}{
		{name: "older value", history: func(e *env) { put(e, "v1", 0); filler(e); put(e, "damaged", 0) }, want: "v1"},
		{name: "older value in the same file", history: func(e *env) { put(e, "v1", 0); put(e, "damaged", 0) }, want: "v1"},
		{name: "no older value", history: func(e *env) { filler(e); put(e, "damaged", 0) }},
		{name: "older value deleted", history: func(e *env) {
			put(e, "v1", 0)
			filler(e)
			e.db.Delete([]byte("k"))
			put(e, "damaged", 0)
		}},
		{name: "older value flushed", history: func(e *env) {
			put(e, "v1", 0)
			e.db.FlushAll()
			filler(e)
			put(e, "damaged", 0)
		}},
		{name: "older value expired", history: func(e *env) {
			put(e, "v1", e.clk.Ms()+1000)
			filler(e)
			put(e, "damaged", 0)
			e.clk.Add(2 * time.Second)
		}},
		{name: "older integer value", history: func(e *env) { put(e, "12345", 0); filler(e); put(e, "damaged", 0) }, want: "12345"},
		{name: "older value with a later expire record", history: func(e *env) {
			put(e, "v1", 0)
			expire(e, t0+hour)
			filler(e)
			put(e, "damaged", 0)
		}, want: "v1", wantExp: t0 + hour},
		{name: "expire record after the damage, outside the merge", history: func(e *env) {
			put(e, "v1", t0+hour)
			filler(e)
			put(e, "damaged", 0)
		}, reopen: func(e *env) { expire(e, t0+2*hour) }, partial: true, want: "v1", wantExp: t0 + 2*hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newTestClock()
			o := testOptions()
			o.MaxFileSize = 1024
			o.Clock = clk.Now
			e := &env{t: t, clk: clk, db: mustOpen(t, dir, o)}
			tc.history(e)
			filler(e) // the damaged record is not in the newest file
			fillers := e.n
			e.db.Close()
			path, off, size := lastPut(t, dir, "k")
			flipByte(t, path, off+size-1)
			e.db = mustOpen(t, dir, o)
			db := e.db
			defer func() { db.Close() }()
			if _, _, err := db.Get([]byte("k")); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("before the merge Get = %v, want ErrCorrupt", err)
			}
			if tc.reopen != nil {
				tc.reopen(e)
			}
			var err error
			if tc.partial {
				err = db.mergeFiles(db.mergePrefix(0))
			} else {
				err = db.Merge()
			}
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string) {
				t.Helper()
				v, m, err := db.Get([]byte("k"))
				switch {
				case tc.want == "" && err != ErrNotFound:
					t.Fatalf("%s: Get = %q, %v; want the key gone", what, v, err)
				case tc.want != "" && (err != nil || string(v) != tc.want || m.ExpireAt != tc.wantExp):
					t.Fatalf("%s: Get = %q %+v, %v; want %q expiring at %d", what, v, m, err, tc.want, tc.wantExp)
				}
				for i := 1; i <= fillers; i++ {
					if _, _, err := db.Get([]byte(fmt.Sprintf("f%03d", i))); err != nil && err != ErrNotFound {
						t.Fatalf("%s: filler %d: %v", what, i, err)
					}
				}
				checkCounts(t, db, what)
			}
			check("after the merge")
			if st := db.Stats(); st.MergeDamagedRecords != 1 || st.MergeErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
			if st := db.Stats(); st.MergeDamagedRecords != 1 {
				t.Fatalf("damage counted again: %+v", st)
			}
			db.Close()
			db = mustOpen(t, dir, o)
			check("after a reopen")
			if st := db.Stats(); st.RecoverySkipped != 0 {
				t.Fatalf("damage still on disk: %+v", st)
			}
		})
	}
}

// listing is a directory's file names and sizes.
func listing(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	for _, de := range des {
		if fi, err := de.Info(); err == nil && de.Name() != lockFileName {
			out[de.Name()] = fi.Size()
		}
	}
	return out
}

// TestMergeFailureRemovesOutput fails a merge, as an I/O error would, at
// each of its steps. Before the commit point the directory is left exactly
// as it was (the outputs are gone, the entries back on the inputs, a
// damaged key still unresolved); after it the merge's work stands. Either
// way the data is intact, live and after a reopen, and a later merge
// completes.
func TestMergeFailureRemovesOutput(t *testing.T) {
	base := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.MaxFileSize = 2048
	o.Clock = clk.Now
	o.Sync = SyncNo
	db := mustOpen(t, base, o)
	model := buildHistory(t, db, clk)
	mustPut(t, db, "dmg", "old")
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("pad%d", i)
		mustPut(t, db, k, strings.Repeat("p", 60))
		model[k] = strings.Repeat("p", 60)
	}
	mustPut(t, db, "dmg", "new")
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("tail%d", i)
		mustPut(t, db, k, "t")
		model[k] = "t"
	}
	db.Close()
	path, off, size := lastPut(t, base, "dmg")
	flipByte(t, path, off+size-1)
	withDmg := func(want string) map[string]string {
		m := make(map[string]string, len(model)+1)
		for k, v := range model {
			m[k] = v
		}
		m["dmg"] = want
		return m
	}

	var steps []string
	{
		dir := t.TempDir()
		copyDir(t, base, dir)
		db := mustOpen(t, dir, o)
		db.mergeHook = func(s string) error { steps = append(steps, s); return nil }
		if err := db.mergeFiles(db.mergePrefix(0)); err != nil {
			t.Fatal(err)
		}
		checkModel(t, db, withDmg("old"), "after full merge")
		db.Close()
	}
	commit := slicesIndex(steps, "installed")
	if commit < 0 || slicesIndex(steps, "output-hinted") > commit-3 {
		t.Fatalf("want several outputs before the commit point: %v", steps)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%d-%s", i, step), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, base, dir)
			db := mustOpen(t, dir, o)
			defer func() { db.Close() }()
			before := listing(t, dir)
			n := 0
			db.mergeHook = func(s string) error {
				if n++; n-1 == i {
					return errMergeFault
				}
				return nil
			}
			err := db.mergeFiles(db.mergePrefix(0))
			if !errors.Is(err, errMergeFault) {
				t.Fatalf("merge returned %v", err)
			}
			if st := db.Stats(); st.MergeErrors != 1 {
				t.Fatalf("stats %+v", st)
			}
			if i < commit {
				if after := listing(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("a failed merge changed the directory:\nbefore %v\nafter  %v", before, after)
				}
				checkUnresolved(t, db, model, "after the failed merge")
			} else {
				checkModel(t, db, withDmg("old"), "after the merge failed past its commit point")
			}
			db.mergeHook = nil
			db.Close()
			db = mustOpen(t, dir, o)
			if i < commit {
				checkUnresolved(t, db, model, "reopened")
			} else {
				checkModel(t, db, withDmg("old"), "reopened")
			}
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
			checkModel(t, db, withDmg("old"), "merged again")
			db.Close()
			db = mustOpen(t, dir, o)
			checkModel(t, db, withDmg("old"), "reopened after the second merge")
		})
	}
}

// checkUnresolved is checkModel for a DB that also holds the key "dmg"
// whose record ("new") is damaged.
func checkUnresolved(t testing.TB, db *DB, model map[string]string, what string) {
	t.Helper()
	if _, _, err := db.Get([]byte("dmg")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: Get(dmg) = %v, want ErrCorrupt", what, err)
	}
	live := int64(len("dmg") + len("new"))
	for k, v := range model {
		mustGet(t, db, k, v)
		live += int64(len(k) + len(v))
	}
	n := 0
	db.Range(func(k []byte, _ Meta) bool {
		if _, ok := model[string(k)]; !ok && string(k) != "dmg" {
			t.Fatalf("%s: unexpected key %q", what, k)
		}
		n++
		return true
	})
	if n != len(model)+1 || db.Len() != n || db.LiveBytes() != live {
		t.Fatalf("%s: %d keys in Range, Len %d, LiveBytes %d; want %d keys, %d bytes", what, n, db.Len(), db.LiveBytes(), len(model)+1, live)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestBackgroundMergeBacksOff: a background merge that fails every time
// removes its output each time and is retried after longer and longer
// pauses, not at every check.
func TestBackgroundMergeBacksOff(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 1024
	db := mustOpen(t, dir, o)
	for i := 0; i < 300; i++ {
		mustPut(t, db, fmt.Sprintf("k%d", i%50), fmt.Sprintf("value-%d", i))
	}
	db.Close()
	var logs logLines
	o.MergeMinDeadBytes = 1
	o.MergeDeadRatio = 0.1
	o.Logger = logs.logger(hclog.Warn)
	db = mustOpen(t, dir, o)
	defer db.Close()
	var attempts atomic.Int64
	db.mergeHook = func(s string) error {
		if s == "output-hinted" {
			attempts.Add(1)
			return errMergeFault
		}
		return nil
	}
	before := dataBytes(t, dir)
	// The loop starts only now, so that no merge runs without the hook.
	db.opts.MergeCheckInterval = time.Millisecond
	db.wg.Add(1)
	go db.mergeLoop()
	time.Sleep(500 * time.Millisecond)
	db.mergeMu.Lock() // no merge in flight
	n := attempts.Load()
	after := dataBytes(t, dir)
	db.mergeMu.Unlock()
	// Without a pause the 1ms checks would try about 500 times; with
	// pauses of 2, 4, ... 64ms, about 12.
	if n < 2 || n > 40 {
		t.Fatalf("%d merge attempts in 500ms of 1ms checks", n)
	}
	if after != before {
		t.Fatalf("failed merges left data behind: %d bytes before, %d after", before, after)
	}
	pauses := logs.matching("pausing merges")
	if int64(len(pauses)) != n || !strings.Contains(pauses[len(pauses)-1], "pause=64ms") {
		t.Fatalf("%d attempts, pause logs %q", n, pauses)
	}
	for i := 0; i < 50; i++ {
		if _, _, err := db.Get([]byte(fmt.Sprintf("k%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMergeBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {6, 64 * time.Second}, {7, 64 * time.Second}, {1000, 64 * time.Second}} {
		if got := mergeBackoff(time.Second, tc.failures); got != tc.want {
			t.Errorf("mergeBackoff(1s, %d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// TestMergeReadErrorIsNotDamage: bytes a merge cannot read (an I/O error)
// fail the merge; they are never taken for damaged records and skipped.
func TestMergeReadErrorIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	defer db.Close()
	mustPut(t, db, "a", "1")
	fh, err := os.Open(newestDataFile(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	fh.Close() // every read fails
	in := &dataFile{path: fh.Name(), f: fh}
	in.size.Store(4096)
	m := &merger{db: db, now: db.nowMs()}
	if err := m.copyLive(in); err == nil || len(m.bad) != 0 {
		t.Fatalf("copyLive = %v with %d bad regions; want an error and none", err, len(m.bad))
	}
}
