package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func lpush(t testing.TB, db *DB, key string, left bool, vals ...string) int {
	t.Helper()
	var n int
	if err := db.Update(func(tx *Tx) error {
		var err error
		n, err = tx.ListPush([]byte(key), toBs(vals), left, false)
		return err
	}); err != nil {
		t.Fatalf("push %q: %v", key, err)
	}
	return n
}

func toBs(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// listOf is the list at key as "a,b,c" read outside a Tx, checked
// against the same walk backwards and a Tx's view.
func listOf(t testing.TB, db *DB, key string) string {
	t.Helper()
	h := Hash([]byte(key))
	var fw, bw []string
	err := db.ListWalk(h, []byte(key), 0, false, 0, func(i int, v []byte) bool {
		if i != len(fw) {
			t.Fatalf("walk index %d at %d", i, len(fw))
		}
		fw = append(fw, string(v))
		return true
	})
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := db.ListLen(h, []byte(key), 0)
	if n != len(fw) {
		t.Fatalf("ListLen %d, walked %d", n, len(fw))
	}
	if n > 0 {
		db.ListWalk(h, []byte(key), n-1, true, 0, func(i int, v []byte) bool { bw = append(bw, string(v)); return true })
	}
	slices.Reverse(bw)
	if !slices.Equal(fw, bw) {
		t.Fatalf("forward %q, backward %q", fw, bw)
	}
	return strings.Join(fw, ",")
}

func TestBetween(t *testing.T) {
	a, b := ordKey(listStart), ordKey(listStart+listStep)
	for i := 0; i < 200; i++ {
		m, err := between(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if i < 19 && len(m) != 8 {
			t.Fatalf("halving %d made a %d-byte key", i, len(m))
		}
		if i%2 == 0 {
			b = m
		} else {
			a = m
		}
	}
	if len(a) > 8+200/7 {
		t.Fatalf("200 halvings made a %d-byte key", len(a))
	}
}

func FuzzBetween(f *testing.F) {
	f.Add(ordKey(listStart), ordKey(listStart+listStep), uint8(10))
	f.Add(ordKey(listStart), append(ordKey(listStart), 1), uint8(3))
	f.Fuzz(func(t *testing.T, a, b []byte, n uint8) {
		if len(a) < 8 || len(b) < 8 || bytes.Compare(a, b) >= 0 || a[len(a)-1] == 0 && len(a) > 8 || b[len(b)-1] == 0 && len(b) > 8 {
			return
		}
		for i := 0; i < int(n); i++ {
			m, err := between(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Compare(a, m) >= 0 || bytes.Compare(m, b) >= 0 || len(m) > 8 && m[len(m)-1] == 0 {
				t.Fatalf("between(%x, %x) = %x", a, b, m)
			}
			if i%2 == 0 {
				a = m
			} else {
				b = m
			}
		}
	})
}

// listModel runs random list operations, several per Tx, against a
// slice.
func listModel(t *testing.T, db *DB, key string, rng *rand.Rand, ops int, model []string) []string {
	t.Helper()
	k := []byte(key)
	for op := 0; op < ops; {
		per := 1 + rng.IntN(6)
		if rng.IntN(3) == 0 {
			per = 1 + rng.IntN(60) // a pipeline's batch
		}
		want := slices.Clone(model)
		err := db.Update(func(tx *Tx) error {
			for j := 0; j < per; j++ {
				op++
				v := strconv.Itoa(rng.IntN(50))
				switch r := rng.IntN(10); {
				case r < 3:
					left := r == 0
					n, err := tx.ListPush(k, [][]byte{[]byte(v), []byte(v + "x")}, left, false)
					if err != nil {
						return err
					}
					if left {
						want = append([]string{v + "x", v}, want...)
					} else {
						want = append(want, v, v+"x")
					}
					if n != len(want) {
						return fmt.Errorf("push: %d, want %d", n, len(want))
					}
				case r < 5:
					left := r == 3
					cnt := 1 + rng.IntN(3)
					got, err := tx.ListPop(k, left, cnt)
					if err != nil {
						return err
					}
					var exp []string
					for c := 0; c < cnt && len(want) > 0; c++ {
						if left {
							exp, want = append(exp, want[0]), want[1:]
						} else {
							exp, want = append(exp, want[len(want)-1]), want[:len(want)-1]
						}
					}
					if s := string(bytes.Join(got, []byte(","))); s != strings.Join(exp, ",") {
						return fmt.Errorf("pop: %q, want %q", s, exp)
					}
				case r == 5:
					before := rng.IntN(2) == 0
					n, err := tx.ListInsert(k, before, []byte(v), []byte("i"+v))
					if err != nil {
						return err
					}
					at := slices.Index(want, v)
					switch {
					case len(want) == 0:
						if n != 0 {
							return fmt.Errorf("linsert on none: %d", n)
						}
					case at < 0:
						if n != -1 {
							return fmt.Errorf("linsert no pivot: %d", n)
						}
					default:
						if !before {
							at++
						}
						want = slices.Insert(want, at, "i"+v)
						if n != len(want) {
							return fmt.Errorf("linsert: %d want %d", n, len(want))
						}
					}
				case r == 6:
					cnt := rng.IntN(5) - 2
					n, err := tx.ListRemove(k, cnt, []byte(v))
					if err != nil {
						return err
					}
					removed := 0
					if cnt >= 0 {
						for i := 0; i < len(want); {
							if want[i] == v && (cnt == 0 || removed < cnt) {
								want = slices.Delete(want, i, i+1)
								removed++
							} else {
								i++
							}
						}
					} else {
						for i := len(want) - 1; i >= 0; i-- {
							if want[i] == v && removed < -cnt {
								want = slices.Delete(want, i, i+1)
								removed++
							}
						}
					}
					if n != removed {
						return fmt.Errorf("lrem: %d want %d", n, removed)
					}
				case r == 7:
					if len(want) == 0 {
						continue
					}
					i := rng.IntN(len(want))
					if err := tx.ListSet(k, i, []byte("s"+v)); err != nil {
						return err
					}
					want[i] = "s" + v
				case r == 8:
					if len(want) < 6 || rng.IntN(4) != 0 {
						continue
					}
					lo := rng.IntN(3)
					hi := len(want) - rng.IntN(3)
					if err := tx.ListTrim(k, lo, hi); err != nil {
						return err
					}
					want = slices.Clone(want[lo:hi])
				default:
					var got []string
					from := 0
					if len(want) > 0 {
						from = rng.IntN(len(want))
					}
					if err := tx.ListWalk(k, from, false, func(_ int, v []byte) bool { got = append(got, string(v)); return true }); err != nil {
						return err
					}
					var exp []string
					if len(want) > 0 {
						exp = want[from:]
					}
					if !slices.Equal(got, exp) {
						return fmt.Errorf("walk from %d: %q want %q", from, got, exp)
					}
					if n, _ := tx.ListLen(k); n != len(want) {
						return fmt.Errorf("len %d want %d", n, len(want))
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		model = want
		if got := listOf(t, db, key); got != strings.Join(model, ",") {
			t.Fatalf("after op %d: %q\nwant %q", op, got, strings.Join(model, ","))
		}
	}
	return model
}

func TestListModel(t *testing.T) {
	t.Run("heap", func(t *testing.T) { listModelReopens(t) })
	t.Run("slab", func(t *testing.T) {
		// Every leaf's array from the slab, from the first split on.
		defer func(n int) { slabMin = n }(slabMin)
		slabMin = 1
		listModelReopens(t)
	})
}

func listModelReopens(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 32 << 10
	db := mustOpen(t, dir, o)
	rng := rand.New(rand.NewPCG(1, 2))
	var model []string
	for round := 0; round < 4; round++ {
		model = listModel(t, db, "l", rng, 3000, model)
		if round%2 == 1 {
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		db = mustOpen(t, dir, o)
		if got := listOf(t, db, "l"); got != strings.Join(model, ",") {
			t.Fatalf("round %d after reopen: %q\nwant %q", round, got, strings.Join(model, ","))
		}
	}
	db.Close()
}

// TestListMiddleWritesMergeRestart: LINSERT, LREM and LSET in the middle
// of a long list, many LINSERTs at one spot (long order keys), then
// merge, reopen from hints and reopen without them: the same list.
func TestListMiddleWritesMergeRestart(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 64 << 10
	db := mustOpen(t, dir, o)
	var model []string
	for i := 0; i < 5000; i += 500 {
		var vs []string
		for j := i; j < i+500; j++ {
			vs = append(vs, "e"+strconv.Itoa(j))
		}
		lpush(t, db, "big", false, vs...)
		model = append(model, vs...)
	}
	upd := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	// 60 inserts at one spot: after 20 the keys grow.
	for i := 0; i < 60; i++ {
		upd(func(tx *Tx) error {
			_, err := tx.ListInsert([]byte("big"), false, []byte("e2500"), []byte("a"+strconv.Itoa(i)))
			return err
		})
		at := slices.Index(model, "e2500")
		model = slices.Insert(model, at+1, "a"+strconv.Itoa(i))
	}
	upd(func(tx *Tx) error { _, err := tx.ListRemove([]byte("big"), 0, []byte("e1000")); return err })
	model = slices.DeleteFunc(model, func(s string) bool { return s == "e1000" })
	upd(func(tx *Tx) error { return tx.ListSet([]byte("big"), 3000, []byte("set")) })
	model[3000] = "set"
	upd(func(tx *Tx) error { return tx.ListTrim([]byte("big"), 10, len(model)-10) })
	model = model[10 : len(model)-10]
	want := strings.Join(model, ",")
	if got := listOf(t, db, "big"); got != want {
		t.Fatalf("before merge differs")
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := listOf(t, db, "big"); got != want {
		t.Fatalf("after merge differs")
	}
	db.Close()
	hints, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
	if len(hints) == 0 {
		t.Fatal("no hint files after merge")
	}
	db = mustOpen(t, dir, o)
	if got := listOf(t, db, "big"); got != want {
		t.Fatalf("after reopen from hints differs")
	}
	db.Close()
	for _, h := range hints {
		os.Remove(h)
	}
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := listOf(t, db, "big"); got != want {
		t.Fatalf("after reopen without hints differs")
	}
}

func TestListTruncatedEveryByte(t *testing.T) {
	upd := func(db *DB, fn func(tx *Tx) error) {
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	k := []byte("l")
	checkTruncatedEveryByte(t, []func(db *DB){
		func(db *DB) { lpush(t, db, "l", false, "a", "b", "c") },
		func(db *DB) { lpush(t, db, "l", true, "z") },
		func(db *DB) {
			upd(db, func(tx *Tx) error { _, err := tx.ListInsert(k, true, []byte("b"), []byte("ab")); return err })
		},
		func(db *DB) { upd(db, func(tx *Tx) error { return tx.ListSet(k, 1, []byte("A")) }) },
		func(db *DB) { upd(db, func(tx *Tx) error { _, err := tx.ListPop(k, false, 1); return err }) },
		func(db *DB) {
			upd(db, func(tx *Tx) error { _, err := tx.ListRemove(k, 1, []byte("ab")); return err })
		},
		func(db *DB) { db.Delete(k) },
		func(db *DB) { lpush(t, db, "l", true, "n") },
	}, func(db *DB) string { return listOf(t, db, "l") })
}

// TestListDeleteMergeReopen: DEL of a long list is one record, and no
// element comes back after merge and reopen.
func TestListDeleteMergeReopen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 64 << 10
	db := mustOpen(t, dir, o)
	for i := 0; i < 3000; i += 100 {
		var vs []string
		for j := i; j < i+100; j++ {
			vs = append(vs, fmt.Sprintf("v%05d", j))
		}
		lpush(t, db, "big", false, vs...)
	}
	before, _ := os.Stat(db.active.path)
	if _, err := db.Delete([]byte("big")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(db.active.path)
	if d := after.Size() - before.Size(); d != headerSize+int64(len("big")) {
		t.Fatalf("DEL of a list wrote %d bytes, want one tombstone", d)
	}
	lpush(t, db, "big", false, "new")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := listOf(t, db, "big"); got != "new" {
		t.Fatalf("after merge: %.80q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := listOf(t, db, "big"); got != "new" {
		t.Fatalf("after merge and reopen: %.80q", got)
	}
	if m, ok := db.MetaOf([]byte("big")); !ok || m.Type != TypeList {
		t.Fatalf("meta %+v %v", m, ok)
	}
}

func TestListExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	lpush(t, db, "l", false, "a", "b")
	exp := clk.Ms() + 10_000
	if err := db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("l"), exp); return err }); err != nil {
		t.Fatal(err)
	}
	lpush(t, db, "l", true, "c")
	db.Close()
	db = mustOpen(t, dir, o)
	if m, ok := db.MetaOf([]byte("l")); !ok || m.ExpireAt != exp || m.Type != TypeList {
		t.Fatalf("after reopen: %+v %v", m, ok)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := listOf(t, db, "l"); got != "c,a,b" {
		t.Fatalf("list %q", got)
	}
	clk.Add(20 * time.Second)
	if got := listOf(t, db, "l"); got != "" {
		t.Fatalf("expired list reads %q", got)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := listOf(t, db, "l"); got != "" {
		t.Fatalf("expired list after reopen reads %q", got)
	}
	lpush(t, db, "l", false, "n")
	if got := listOf(t, db, "l"); got != "n" {
		t.Fatalf("new list over an expired one: %q", got)
	}
}

const listKillChildEnv = "BITCASK_LIST_KILL_CHILD"

func TestListKillChild(t *testing.T) {
	spec := os.Getenv(listKillChildEnv)
	if spec == "" {
		t.Skip("only runs as the child of TestListSIGKILL")
	}
	dir, round, _ := strings.Cut(spec, "|")
	o := testOptions()
	o.Sync = SyncAlways
	o.MaxFileSize = 64 << 10
	db, err := Open(dir, o)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	big := "big" + round
	for i := 0; i < 2000; i += 100 {
		var vs []string
		for j := i; j < i+100; j++ {
			vs = append(vs, fmt.Sprintf("m%d", j))
		}
		lpush(t, db, big, false, vs...)
	}
	if _, err := db.Delete([]byte(big)); err != nil {
		fail(err)
	}
	if err := db.Merge(); err != nil {
		fail(err)
	}
	fmt.Println("merged")
	// The live list: each acknowledged fN is pushed at the tail after a
	// marker that is then removed from the middle, so the list is f0..fN
	// with LINSERT and LREM records between.
	live := []byte("live" + round)
	for i := 0; ; i++ {
		m := fmt.Sprintf("f%d", i)
		err := db.Update(func(tx *Tx) error {
			if _, err := tx.ListPush(live, [][]byte{[]byte("mark")}, false, false); err != nil {
				return err
			}
			if _, err := tx.ListInsert(live, true, []byte("mark"), []byte(m)); err != nil {
				return err
			}
			_, err := tx.ListRemove(live, 0, []byte("mark"))
			return err
		})
		if err != nil {
			fail(err)
		}
		fmt.Println(m)
		if i%200 == 199 {
			if err := db.Merge(); err != nil {
				fail(err)
			}
		}
	}
}

// TestListSIGKILL: DEL of a long list and a merge, then SIGKILL while
// another is written (push, LINSERT, LREM per element) and merged: after
// each restart the deleted list stays gone and every acknowledged element
// is there, in order.
func TestListSIGKILL(t *testing.T) {
	if os.Getenv(listKillChildEnv) != "" {
		t.Skip()
	}
	killRounds(t, listKillChildEnv, "^TestListKillChild$", func(db *DB, round int, acked []string) {
		for r := 0; r <= round; r++ {
			if got := listOf(t, db, fmt.Sprintf("big%d", r)); got != "" {
				t.Fatalf("round %d: the deleted list came back: %.80q", round, got)
			}
		}
		got := strings.Split(listOf(t, db, fmt.Sprintf("live%d", round)), ",")
		if len(got) < len(acked) {
			t.Fatalf("round %d: %d elements, %d acknowledged", round, len(got), len(acked))
		}
		for i, m := range got {
			if m != "f"+strconv.Itoa(i) {
				t.Fatalf("round %d: element %d is %q", round, i, m)
			}
		}
	})
}

// TestListsInEveryDatabase: the same key is a different list in each
// database, through Tx.Select, across a merge and a reopen; FLUSHDB of one
// database leaves the others' lists.
func TestListsInEveryDatabase(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 32 << 10
	db := mustOpen(t, dir, o)
	for n := range NumDBs {
		if err := db.Update(func(tx *Tx) error {
			t := tx.Select(n)
			for i := 0; i <= n; i++ {
				if _, err := t.ListPush([]byte("l"), [][]byte{[]byte(fmt.Sprintf("d%d-%d", n, i))}, false, false); err != nil {
					return err
				}
			}
			_, err := t.ListInsert([]byte("l"), true, []byte(fmt.Sprintf("d%d-0", n)), []byte("head"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(n int) string {
		s := "head"
		for i := 0; i <= n; i++ {
			s += fmt.Sprintf(",d%d-%d", n, i)
		}
		return s
	}
	check := func(when string, flushed int) {
		t.Helper()
		for n := range NumDBs {
			got := listOf(t, db.Select(n), "l")
			if n == flushed {
				if got != "" {
					t.Fatalf("%s: flushed database %d has %q", when, n, got)
				}
				continue
			}
			if got != want(n) {
				t.Fatalf("%s: database %d: %q, want %q", when, n, got, want(n))
			}
		}
	}
	check("written", -1)
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	check("merged", -1)
	if err := db.Update(func(tx *Tx) error { return tx.Select(5).FlushDB() }); err != nil {
		t.Fatal(err)
	}
	check("flushed 5", 5)
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	check("reopened", 5)
}

// TestListEndsInOneTx: one Tx of many single pushes and pops at both ends
// of a long list (a pipeline's batch) reads each end from that end.
func TestListEndsInOneTx(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	var vs []string
	for i := 0; i < 20000; i++ {
		vs = append(vs, strconv.Itoa(i))
	}
	lpush(t, db, "l", false, vs...)
	k := []byte("l")
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 20000; i++ {
			if _, err := tx.ListPush(k, [][]byte{[]byte("r" + strconv.Itoa(i))}, false, false); err != nil {
				return err
			}
			if _, err := tx.ListPush(k, [][]byte{[]byte("l" + strconv.Itoa(i))}, true, false); err != nil {
				return err
			}
			if i%2 == 0 {
				if _, err := tx.ListPop(k, false, 1); err != nil {
					return err
				}
			}
		}
		v, err := tx.ListPop(k, true, 1)
		if err != nil || string(v[0]) != "l19999" {
			return fmt.Errorf("LPOP in the Tx: %q %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n, _ := db.ListLen(Hash(k), k, 0)
	if n != 20000+20000+10000-1 {
		t.Fatalf("length %d", n)
	}
}
