package bitcask

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkModel asserts that db holds exactly model.
func checkModel(t testing.TB, db *DB, model map[string]string, what string) {
	t.Helper()
	sweepAll(db) // Len and LiveBytes count expired keys until they are removed
	for k, v := range model {
		got, _, err := db.Get([]byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("%s: Get(%q) = %q, %v; want %q", what, k, got, err, v)
		}
	}
	n := 0
	db.Range(func(k []byte, _ Meta) bool {
		if _, ok := model[string(k)]; !ok {
			t.Fatalf("%s: unexpected key %q", what, k)
		}
		n++
		return true
	})
	if n != len(model) || db.Len() != len(model) {
		t.Fatalf("%s: %d keys in Range, Len %d, want %d", what, n, db.Len(), len(model))
	}
	var live int64
	for k, v := range model {
		live += int64(len(k) + len(v))
	}
	if db.LiveBytes() != live {
		t.Fatalf("%s: LiveBytes %d, want %d", what, db.LiveBytes(), live)
	}
}

func dataFiles(t testing.TB, dir string) []string {
	ms, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	return ms
}

// TestDeletePartialMergeRestart: a key written in the oldest file and
// deleted in a newer one stays deleted whichever prefix is merged and after
// restarts, the case that lost deletes in Basho's bitcask.
func TestDeletePartialMergeRestart(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 512
	db := mustOpen(t, dir, o)
	filler := func(tag string) {
		for i := 0; i < 8; i++ {
			mustPut(t, db, fmt.Sprintf("%s-%d", tag, i), "0123456789012345678901234567890123456789")
		}
	}
	mustPut(t, db, "victim", "old-value")
	filler("f1")
	db.Delete([]byte("victim"))
	filler("f2")
	filler("f3")
	if n := len(db.snapshotFiles()); n < 4 {
		t.Fatalf("want several files, have %d", n)
	}
	// Merge only the oldest file: the old value is dead and dropped, the
	// tombstone in a newer file is kept.
	if err := db.mergeFiles(db.mergePrefix(1)); err != nil {
		t.Fatal(err)
	}
	mustMissing(t, db, "victim")
	db.Close()
	db = mustOpen(t, dir, o)
	mustMissing(t, db, "victim")
	// Now the prefix holding the tombstone.
	if err := db.mergeFiles(db.mergePrefix(2)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	mustMissing(t, db, "victim")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.Merges != 1 {
		t.Fatalf("stats %+v", st)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	mustMissing(t, db, "victim")
	mustGet(t, db, "f1-3", "0123456789012345678901234567890123456789")
}

// buildHistory writes a history with overwrites, deletes, expiries, expire
// records, a flush-all and batches over many small files; it returns the
// expected final state.
func buildHistory(t testing.TB, db *DB, clk *testClock) map[string]string {
	model := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	put := func(k, v string, exp int64) {
		if err := db.Put([]byte(k), []byte(v), exp); err != nil {
			t.Fatal(err)
		}
		if exp == 0 || exp > clk.Ms()+10_000 {
			model[k] = v
		} else {
			delete(model, k)
		}
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < 300; i++ {
			k := fmt.Sprintf("k%d", rng.IntN(120))
			switch r := rng.IntN(10); {
			case r < 5:
				put(k, fmt.Sprintf("v%d-%d", i, rng.IntN(1000)), 0)
			case r < 6:
				put(k, fmt.Sprint(rng.Int64()-rng.Int64()), 0) // integers
			case r < 7:
				put(k, "soon-gone", clk.Ms()+1000) // expires below
			case r < 8:
				db.Delete([]byte(k))
				delete(model, k)
			case r < 9:
				if _, ok := model[k]; ok {
					db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte(k), 0); return err })
				}
			default:
				err := db.Update(func(tx *Tx) error {
					tx.Put([]byte(k+"-b1"), []byte("batch"), 0)
					tx.Put([]byte(k+"-b2"), []byte(""), 0)
					_, err := tx.Delete([]byte(k))
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				model[k+"-b1"], model[k+"-b2"] = "batch", ""
				delete(model, k)
			}
		}
		if round == 0 {
			// Keys that expire by extension survive; a flush-all in the middle.
			put("extended", "e", clk.Ms()+1000)
			db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("extended"), clk.Ms()+1<<40); return err })
			model["extended"] = "e"
			clk.Add(5 * time.Second)
			for k, v := range model {
				if v == "soon-gone" {
					delete(model, k)
				}
			}
			if err := db.FlushAll(); err != nil {
				t.Fatal(err)
			}
			clear(model)
			put("after-flush", "1", 0)
		}
	}
	clk.Add(5 * time.Second) // the second round's "soon-gone" keys expire
	for k, v := range model {
		if v == "soon-gone" {
			delete(model, k)
		}
	}
	return model
}

// TestMergeCrashAtEveryStep stops a merge at each of its steps, as a crash
// would, and checks that the directory opens with the right data, and that
// a later merge completes.
func TestMergeCrashAtEveryStep(t *testing.T) {
	base := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.MaxFileSize = 2048
	o.Clock = clk.Now
	o.Sync = SyncNo
	db := mustOpen(t, base, o)
	model := buildHistory(t, db, clk)
	checkModel(t, db, model, "before merge")
	db.Close()

	// Learn the steps of a full merge.
	var steps []string
	{
		dir := t.TempDir()
		copyDir(t, base, dir)
		db := mustOpen(t, dir, o)
		db.mergeHook = func(s string) error { steps = append(steps, s); return nil }
		if err := db.mergeFiles(db.mergePrefix(0)); err != nil {
			t.Fatal(err)
		}
		checkModel(t, db, model, "after full merge")
		db.Close()
		db = mustOpen(t, dir, o)
		checkModel(t, db, model, "after full merge and reopen")
		db.Close()
	}
	if len(steps) < 5 {
		t.Fatalf("steps %v", steps)
	}
	for i, step := range steps {
		dir := t.TempDir()
		copyDir(t, base, dir)
		db := mustOpen(t, dir, o)
		n := 0
		db.mergeHook = func(s string) error {
			if n++; n-1 == i {
				return errors.New("crash")
			}
			return nil
		}
		err := db.mergeFiles(db.mergePrefix(0))
		if !errors.Is(err, errMergeStopped) {
			t.Fatalf("step %d %s: merge returned %v", i, step, err)
		}
		checkModel(t, db, model, "stopped at "+step)
		db.Close()
		db = mustOpen(t, dir, o)
		checkModel(t, db, model, "reopened after stop at "+step)
		if ms, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix+tmpSuffix)); len(ms) > 0 {
			t.Fatalf("leftovers after Open: %v", ms)
		}
		if err := db.Merge(); err != nil {
			t.Fatal(err)
		}
		checkModel(t, db, model, "merged after stop at "+step)
		db.Close()
		db = mustOpen(t, dir, o)
		checkModel(t, db, model, "reopened after merge after stop at "+step)
		db.Close()
	}
}

// TestMergeConcurrentWithWrites runs merges while writers and readers work
// and checks the result against a model, live and after reopen.
func TestMergeConcurrentWithWrites(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 4096
	o.Sync = SyncNo
	db := mustOpen(t, dir, o)
	const writers, keysPer = 4, 50
	var wg sync.WaitGroup
	var stop atomic.Bool
	models := make([]map[string]string, writers)
	for w := 0; w < writers; w++ {
		models[w] = map[string]string{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 1500; i++ {
				k := fmt.Sprintf("w%d-k%d", w, rng.IntN(keysPer))
				if rng.IntN(4) == 0 {
					if _, err := db.Delete([]byte(k)); err != nil {
						t.Error(err)
						return
					}
					delete(models[w], k)
				} else {
					v := fmt.Sprintf("v%d", i)
					if err := db.Put([]byte(k), []byte(v), 0); err != nil {
						t.Error(err)
						return
					}
					models[w][k] = v
				}
				if v, ok := models[w][k]; ok {
					got, _, err := db.Get([]byte(k))
					if err != nil || string(got) != v {
						t.Errorf("Get(%q) = %q, %v; want %q", k, got, err, v)
						return
					}
				}
			}
		}(w)
	}
	var merges int
	var mwg sync.WaitGroup
	mwg.Add(1)
	go func() {
		defer mwg.Done()
		for !stop.Load() {
			if err := db.Merge(); err != nil {
				t.Error(err)
				return
			}
			merges++
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	mwg.Wait()
	model := map[string]string{}
	for _, m := range models {
		for k, v := range m {
			model[k] = v
		}
	}
	checkModel(t, db, model, "live")
	if merges == 0 || db.Stats().Merges == 0 {
		t.Fatal("no merge ran")
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	checkModel(t, db, model, "reopened")
}

func TestBackgroundMergeAndSweep(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.MaxFileSize = 1024
	o.MergeCheckInterval = 5 * time.Millisecond
	o.MergeMinDeadBytes = 1
	o.MergeDeadRatio = 0.3
	o.ExpirySweepInterval = 5 * time.Millisecond
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	defer db.Close()
	for i := 0; i < 400; i++ {
		mustPut(t, db, fmt.Sprintf("k%d", i%20), fmt.Sprintf("value-%d", i))
	}
	for i := 0; i < 50; i++ {
		db.Put([]byte(fmt.Sprintf("e%d", i)), []byte("x"), clk.Ms()+1000)
	}
	clk.Add(2 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for (db.Stats().Merges == 0 || db.Stats().DataFiles > 4 || db.Len() != 20) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := db.Stats()
	if st.Merges == 0 || db.Len() != 20 || st.ExpiredRemoved < 50 {
		t.Fatalf("stats %+v len %d", st, db.Len())
	}
	for i := 380; i < 400; i++ {
		mustGet(t, db, fmt.Sprintf("k%d", i%20), fmt.Sprintf("value-%d", i))
	}
	if st.DataFiles > 4 {
		t.Fatalf("merge did not reclaim files: %+v", st)
	}
	_ = os.Remove
}

// TestReplayFoldsEarly reopens a rich history with the replay buffer
// folded into the key directory after every couple of records (instead of
// once at the end), from hints and from scans: the same state either way.
func TestReplayFoldsEarly(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.MaxFileSize = 2048
	o.Clock = clk.Now
	o.Sync = SyncNo
	db := mustOpen(t, dir, o)
	model := buildHistory(t, db, clk)
	db.Close()
	defer func(v int) { foldMin = v }(foldMin)
	for _, fm := range []int{1, 2, 7, 4096} {
		foldMin = fm
		db = mustOpen(t, dir, o)
		checkModel(t, db, model, fmt.Sprintf("foldMin %d with hints", fm))
		db.Close()
		o2 := o
		o2.DisableHints = true
		hints, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
		for _, h := range hints {
			os.Remove(h)
		}
		db = mustOpen(t, dir, o2)
		if db.Stats().HintFilesLoaded != 0 {
			t.Fatal("hints loaded")
		}
		checkModel(t, db, model, fmt.Sprintf("foldMin %d scanning", fm))
		db.Close()
		db = mustOpen(t, dir, o) // writes the hints again at Close
		db.Close()
	}
}

// TestMergeReclaimsDeadSpace is issue 12's case: with the default file
// size all the data sits in the active file, and after a FLUSHALL or
// deleting most keys background merges bring the directory down to about
// the size of the live records, without a manual merge; below the
// dead-bytes thresholds they leave it alone.
func TestMergeReclaimsDeadSpace(t *testing.T) {
	const keys = 2000
	value := strings.Repeat("v", 4000) // 8 MB in all
	for _, tc := range []struct {
		name    string
		drop    func(t *testing.T, db *DB) // what makes data dead
		keep    func(i int) bool           // which keys survive it
		reopen  bool                       // restart after it, before the merges
		reclaim bool
	}{
		{name: "flushall", drop: func(t *testing.T, db *DB) { db.FlushAll() }, keep: func(int) bool { return false }, reclaim: true},
		{name: "flushall then restart", drop: func(t *testing.T, db *DB) { db.FlushAll() }, keep: func(int) bool { return false }, reopen: true, reclaim: true},
		{name: "most keys deleted", keep: func(i int) bool { return i%10 == 0 }, reclaim: true},
		{name: "below the thresholds", keep: func(i int) bool { return i%20 != 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions() // the default 256 MiB files
			db := mustOpen(t, dir, o)
			for i := 0; i < keys; i++ {
				mustPut(t, db, fmt.Sprintf("k%04d", i), value)
			}
			if tc.drop != nil {
				tc.drop(t, db)
			} else {
				for i := 0; i < keys; i++ {
					if !tc.keep(i) {
						db.Delete([]byte(fmt.Sprintf("k%04d", i)))
					}
				}
			}
			var liveRecords int64
			for i := 0; i < keys; i++ {
				if tc.keep(i) {
					liveRecords += headerSize + int64(len(fmt.Sprintf("k%04d", i))+len(value))
				}
			}
			full := dirBytes(t, dir)
			if tc.reopen {
				db.Close()
			} else {
				db.opts.MergeCheckInterval = 5 * time.Millisecond
			}
			o.MergeCheckInterval = 5 * time.Millisecond
			o.MergeMinDeadBytes = 1 << 20
			o.MergeDeadRatio = 0.5
			if tc.reopen {
				db = mustOpen(t, dir, o)
			} else {
				db.opts = o
				db.wg.Add(1)
				go db.mergeLoop()
			}
			defer func() { db.Close() }()
			// The records left, their hints and some slack.
			bound := liveRecords + liveRecords/10 + 64<<10
			deadline := time.Now().Add(30 * time.Second)
			if !tc.reclaim {
				deadline = time.Now().Add(200 * time.Millisecond)
			}
			for (dirBytes(t, dir) > bound || tc.reclaim && db.Stats().Merges == 0) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			st := db.Stats()
			after := dirBytes(t, dir)
			t.Logf("%d bytes on disk before the merges, %d after (%d in live records); %d merges", full, after, liveRecords, st.Merges)
			if tc.reclaim && (after > bound || st.Merges == 0) {
				t.Fatalf("%d bytes on disk, want at most %d: %+v", after, bound, st)
			}
			if !tc.reclaim && st.Merges != 0 {
				t.Fatalf("a merge ran below the thresholds: %+v", st)
			}
			for i := 0; i < keys; i++ {
				k := fmt.Sprintf("k%04d", i)
				if tc.keep(i) {
					mustGet(t, db, k, value)
				} else {
					mustMissing(t, db, k)
				}
			}
		})
	}
}
