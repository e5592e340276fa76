package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenSet pins the records of a set: a root, a member put (no value,
// even for a member that reads as an integer) and a member tombstone.
var goldenSet = []struct {
	name        string
	kind, flags byte
	seq         uint64
	key, member string // member "" for a root
	hex         string
}{
	{"set root", kindColl, flagBatchFirst, 9, "s", "",
		"23b756b2 7b68e5cf8b010000 0900000000000000 0000000000000000 01000000 00000000 05010200 73"},
	{"set member put", kindElemPut, flagBatchLast, 10, "s", "m",
		"cf8a235a 7b68e5cf8b010000 0a00000000000000 0000000000000000 03000000 00000000 06020200 01736d"},
	{"set member that looks like an integer", kindElemPut, flagSingle, 11, "s", "42",
		"2c0f5cd0 7b68e5cf8b010000 0b00000000000000 0000000000000000 04000000 00000000 06030200 01733432"},
	{"set member tombstone", kindElemDelete, flagSingle, 12, "s", "m",
		"c1f82fcb 7b68e5cf8b010000 0c00000000000000 0000000000000000 03000000 00000000 07030200 01736d"},
}

func TestSetRecordGolden(t *testing.T) {
	for _, g := range goldenSet {
		t.Run(g.name, func(t *testing.T) {
			key := []byte(g.key)
			if g.kind != kindColl {
				key = elemKey(nil, key, []byte(g.member))
			}
			got := appendRecordOf(nil, g.kind, g.flags, keyTypeSet, g.seq, goldenTime, 0, key, nil)
			want := goldenCollBytes(t, g.hex)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			h, k, v, err := decodeRecord(want)
			if err != nil {
				t.Fatal(err)
			}
			if h.kind != g.kind || h.keyType != keyTypeSet || h.seq != g.seq || !bytes.Equal(k, key) || len(v) != 0 {
				t.Fatalf("decoded %+v key %q value %q", h, k, v)
			}
			for i := 0; i < len(want)*8; i++ {
				b := append([]byte(nil), want...)
				b[i/8] ^= 1 << (i % 8)
				if _, _, _, err := decodeRecord(b); err == nil {
					t.Fatalf("bit %d flipped still decodes", i)
				}
			}
		})
	}
	b := appendRecordOf(nil, kindElemPut, flagSingle, keyTypeSet, 1, goldenTime, 0, elemKey(nil, []byte("s"), []byte("m")), []byte("v"))
	if _, _, _, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a set member with a value decodes (%v)", err)
	}
}

// TestMemberSetModel runs random adds and removes on a memberSet and a
// map side by side, through table growth, backward-shift deletion and
// compaction.
func TestMemberSetModel(t *testing.T) {
	ms := newMemberSet(0, false)
	model := map[string]elemLoc{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200_000; i++ {
		m := fmt.Sprintf("m%d", r.IntN(5000))
		if i > 100_000 {
			m = fmt.Sprintf("%0*d", r.IntN(300), r.IntN(3000)) // longer members, compaction
		}
		if r.IntN(3) == 0 {
			ms.remove([]byte(m))
			delete(model, m)
		} else {
			l := elemLoc{off: uint32(i), file: uint16(i % 7)}
			ms.put([]byte(m), l)
			model[m] = l
		}
		if i%20000 == 0 || i == 199_999 {
			if len(ms.mems) != len(model) {
				t.Fatalf("step %d: %d members, model %d", i, len(ms.mems), len(model))
			}
			for k, l := range model {
				if got, ok := ms.lookup([]byte(k)); !ok || got != l {
					t.Fatalf("step %d: %q: %+v %v, want %+v", i, k, got, ok, l)
				}
			}
			n := 0
			for _, s := range ms.slots {
				if s != 0 {
					n++
				}
			}
			if n != len(model) {
				t.Fatalf("step %d: %d slots used for %d members", i, n, len(model))
			}
		}
	}
	if ms.waste > len(ms.data)/2+4096 {
		t.Fatalf("waste %d of %d bytes: never compacted", ms.waste, len(ms.data))
	}
}

func sadd(t testing.TB, db *DB, key string, members ...string) {
	t.Helper()
	err := db.Update(func(tx *Tx) error {
		for _, m := range members {
			if _, err := tx.SetAdd([]byte(key), []byte(m)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SetAdd %q: %v", key, err)
	}
}

// setOfKey renders the set at key as "a,b,c" sorted, "" when absent.
func setOfKey(t testing.TB, db *DB, key string) string {
	t.Helper()
	ms, err := db.SetMembers(Hash([]byte(key)), []byte(key), 0)
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("SetMembers %q: %v", key, err)
	}
	var parts []string
	for _, m := range ms {
		parts = append(parts, string(m))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func TestSetBasics(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	sadd(t, db, "s", "a", "b", "c", "b", "7")
	if got := setOfKey(t, db, "s"); got != "7,a,b,c" {
		t.Fatalf("set %q", got)
	}
	if _, _, err := db.Get([]byte("s")); !errors.Is(err, ErrWrongType) {
		t.Fatalf("Get of a set: %v", err)
	}
	if _, err := db.HashLen(Hash([]byte("s")), []byte("s"), 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("HashLen of a set: %v", err)
	}
	if m, ok := db.MetaOf([]byte("s")); !ok || m.Type != TypeSet {
		t.Fatalf("meta %+v %v", m, ok)
	}
	if lb := db.LiveBytes(); lb != int64(len("s")+len("abc7")) {
		t.Fatalf("LiveBytes %d", lb)
	}
	before, _ := os.Stat(db.active.path)
	sadd(t, db, "s", "d")
	after, _ := os.Stat(db.active.path)
	if d := after.Size() - before.Size(); d != headerSize+int64(len(elemKey(nil, []byte("s"), []byte("d")))) {
		t.Fatalf("SADD of one member wrote %d bytes, want one element record", d)
	}
	err := db.Update(func(tx *Tx) error {
		if added, err := tx.SetAdd([]byte("s"), []byte("a")); err != nil || added {
			return fmt.Errorf("re-add: %v %v", added, err)
		}
		if ok, err := tx.SetRemove([]byte("s"), []byte("b")); err != nil || !ok {
			return fmt.Errorf("remove: %v %v", ok, err)
		}
		if ok, err := tx.SetIsMember([]byte("s"), []byte("b")); err != nil || ok {
			return fmt.Errorf("removed member still in: %v %v", ok, err)
		}
		if _, err := tx.SetAdd([]byte("s"), []byte("e")); err != nil {
			return err
		}
		if n, err := tx.SetCard([]byte("s")); err != nil || n != 5 {
			return fmt.Errorf("card %d %v", n, err)
		}
		ms, err := tx.SetMembers([]byte("s"))
		if err != nil || len(ms) != 5 {
			return fmt.Errorf("members %q %v", ms, err)
		}
		// Random picks see the Tx's writes: never b, sometimes e.
		for range 50 {
			ps, err := tx.SetRandom([]byte("s"), 3, true)
			if err != nil || len(ps) != 3 {
				return fmt.Errorf("random %q %v", ps, err)
			}
			for _, p := range ps {
				if string(p) == "b" {
					return fmt.Errorf("picked a removed member")
				}
			}
		}
		if ps, err := tx.SetRandom([]byte("s"), 100, false); err != nil || len(ps) != 100 {
			return fmt.Errorf("random with repeats %d %v", len(ps), err)
		}
		if ps, err := tx.SetRandom([]byte("s"), 100, true); err != nil || len(ps) != 5 {
			return fmt.Errorf("random distinct past the size %d %v", len(ps), err)
		}
		if err := tx.Put([]byte("str"), []byte("v"), 0); err != nil {
			return err
		}
		if _, err := tx.SetAdd([]byte("str"), []byte("m")); !errors.Is(err, ErrWrongType) {
			return fmt.Errorf("SetAdd on a string: %v", err)
		}
		if _, err := tx.HashSet([]byte("s"), []byte("f"), nil); !errors.Is(err, ErrWrongType) {
			return fmt.Errorf("HashSet on a set: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := setOfKey(t, db, "s"); got != "7,a,c,d,e" {
		t.Fatalf("set %q", got)
	}
	if ps, err := db.SetRandom(Hash([]byte("s")), []byte("s"), 2, true, 0); err != nil || len(ps) != 2 || bytes.Equal(ps[0], ps[1]) {
		t.Fatalf("SetRandom %q %v", ps, err)
	}
	err = db.Update(func(tx *Tx) error {
		for _, m := range []string{"7", "a", "c", "d", "e"} {
			if _, err := tx.SetRemove([]byte("s"), []byte(m)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || db.Exists([]byte("s")) {
		t.Fatalf("emptied set: exists %v, %v", db.Exists([]byte("s")), err)
	}
	sadd(t, db, "s", "x")
	sadd(t, db, "t", "1", "2")
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	if got := setOfKey(t, db, "s"); got != "x" {
		t.Fatalf("after reopen: %q", got)
	}
	if got := setOfKey(t, db, "t"); got != "1,2" {
		t.Fatalf("after reopen: %q", got)
	}
	if lb := db.LiveBytes(); lb != int64(len("sx")+len("t12")+len("strv")) {
		t.Fatalf("LiveBytes after reopen %d", lb)
	}
}

// TestSetTruncatedEveryByte cuts the newest file at every byte of the
// last set writes and reopens: each write is wholly there or gone.
func TestSetTruncatedEveryByte(t *testing.T) {
	checkTruncatedEveryByte(t, []func(db *DB){
		func(db *DB) { sadd(t, db, "s", "a", "b") }, // root + two members, one batch
		func(db *DB) { sadd(t, db, "s", "c") },
		func(db *DB) { sadd(t, db, "s", "123") },
		func(db *DB) {
			db.Update(func(tx *Tx) error { _, err := tx.SetRemove([]byte("s"), []byte("b")); return err })
		},
		func(db *DB) { db.Delete([]byte("s")) },
		func(db *DB) { sadd(t, db, "s", "z") },
	}, func(db *DB) string { return setOfKey(t, db, "s") })
}

// TestSetDeleteMergeReopen: a big set deleted with one record, merged
// and reopened: no member comes back.
func TestSetDeleteMergeReopen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 64 << 10
	db := mustOpen(t, dir, o)
	const n = 5000
	for i := 0; i < n; i += 250 {
		var ms []string
		for j := i; j < i+250; j++ {
			ms = append(ms, fmt.Sprintf("member:%06d", j))
		}
		sadd(t, db, "big", ms...)
	}
	sadd(t, db, "keep", "k")
	before, _ := os.Stat(db.active.path)
	if _, err := db.Delete([]byte("big")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(db.active.path)
	if d := after.Size() - before.Size(); d != headerSize+int64(len("big")) {
		t.Fatalf("DEL of a set wrote %d bytes, want one tombstone", d)
	}
	sadd(t, db, "big", "new")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := setOfKey(t, db, "big"); got != "new" {
		t.Fatalf("after merge: %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := setOfKey(t, db, "big"); got != "new" {
		t.Fatalf("after merge and reopen: %q", got)
	}
	// A string over the set, and a merge interrupted after its output.
	mustPut(t, db, "big", "string")
	db.mergeHook = func(step string) error {
		if step == "removed-0" {
			return errors.New("crash")
		}
		return nil
	}
	db.Merge()
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	mustGet(t, db, "big", "string")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := setOfKey(t, db, "keep"); got != "k" {
		t.Fatalf("other set after merges: %q", got)
	}
	if lb := db.LiveBytes(); lb != int64(len("bigstring")+len("keepk")) {
		t.Fatalf("LiveBytes %d", lb)
	}
}

// TestSetMergeKeepsMembers: merges move the members' records (several
// files, members removed in between) and a reopen finds them all.
func TestSetMergeKeepsMembers(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 32 << 10
	db := mustOpen(t, dir, o)
	want := map[string]bool{}
	for i := 0; i < 3000; i++ {
		m := fmt.Sprintf("m%05d-%s", i, strings.Repeat("p", i%40))
		sadd(t, db, "s", m)
		want[m] = true
		if i%3 == 0 {
			old := fmt.Sprintf("m%05d-%s", i/2, strings.Repeat("p", (i/2)%40))
			db.Update(func(tx *Tx) error { _, err := tx.SetRemove([]byte("s"), []byte(old)); return err })
			delete(want, old)
		}
		if i%1000 == 999 {
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string) {
		t.Helper()
		n, err := db.SetCard(Hash([]byte("s")), []byte("s"), 0)
		if err != nil || n != len(want) {
			t.Fatalf("%s: card %d %v, want %d", when, n, err, len(want))
		}
		for m := range want {
			if ok, err := db.SetIsMember(Hash([]byte("s")), []byte("s"), []byte(m), 0); !ok || err != nil {
				t.Fatalf("%s: %q missing (%v)", when, m, err)
			}
		}
	}
	check("after merges")
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	check("after reopen")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	check("after a merge of the reopened db")
}

// TestSetExpirySurvivesRestart: a set's expiry is its root's, kept by
// restarts and merges; once it passes, no member is left.
func TestSetExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	sadd(t, db, "s", "a", "b")
	exp := clk.Ms() + 10_000
	if err := db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("s"), exp); return err }); err != nil {
		t.Fatal(err)
	}
	sadd(t, db, "s", "c") // a member write keeps the expiry
	db.Close()
	db = mustOpen(t, dir, o)
	if m, ok := db.MetaOf([]byte("s")); !ok || m.ExpireAt != exp || m.Type != TypeSet {
		t.Fatalf("after reopen: %+v %v", m, ok)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := setOfKey(t, db, "s"); got != "a,b,c" {
		t.Fatalf("after merge and reopen: %q", got)
	}
	clk.Add(20 * time.Second)
	if got := setOfKey(t, db, "s"); got != "" {
		t.Fatalf("expired set reads %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := setOfKey(t, db, "s"); got != "" {
		t.Fatalf("expired set after reopen reads %q", got)
	}
	sadd(t, db, "s", "z")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := setOfKey(t, db, "s"); got != "z" {
		t.Fatalf("new set over an expired one: %q", got)
	}
}

const setKillChildEnv = "BITCASK_SET_KILL_CHILD"

// TestSetKillChild is the child of TestSetSIGKILL: it fills a big set,
// deletes it, merges, then adds members of another set (merging now and
// then) and prints each add that returned, until it is killed.
func TestSetKillChild(t *testing.T) {
	spec := os.Getenv(setKillChildEnv)
	if spec == "" {
		t.Skip("only runs as the child of TestSetSIGKILL")
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
	big := "big" + round
	for i := 0; i < 4000; i += 200 {
		var ms []string
		for j := i; j < i+200; j++ {
			ms = append(ms, fmt.Sprintf("m%d-%s", j, strings.Repeat("x", 30)))
		}
		sadd(t, db, big, ms...)
	}
	if _, err := db.Delete([]byte(big)); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if err := db.Merge(); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("merged")
	live := "live" + round
	for i := 0; ; i++ {
		m := fmt.Sprintf("f%d", i)
		if err := db.Update(func(tx *Tx) error { _, err := tx.SetAdd([]byte(live), []byte(m)); return err }); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(m)
		if i%200 == 199 {
			if err := db.Merge(); err != nil {
				fmt.Println("error:", err)
				os.Exit(2)
			}
		}
	}
}

// TestSetSIGKILL: DEL of a big set, a merge, then SIGKILL while another
// set is written and merged; after each restart no member of the deleted
// set is back and every acknowledged add is there.
func TestSetSIGKILL(t *testing.T) {
	if os.Getenv(setKillChildEnv) != "" {
		t.Skip()
	}
	killRounds(t, setKillChildEnv, "^TestSetKillChild$", func(db *DB, round int, acked []string) {
		for r := 0; r <= round; r++ {
			if got := setOfKey(t, db, fmt.Sprintf("big%d", r)); got != "" {
				t.Fatalf("round %d: the deleted set came back: %.80q", round, got)
			}
		}
		live := fmt.Sprintf("live%d", round)
		for _, m := range acked {
			if ok, err := db.SetIsMember(Hash([]byte(live)), []byte(live), []byte(m), 0); err != nil || !ok {
				t.Fatalf("round %d: acknowledged member %s: %v %v", round, m, ok, err)
			}
		}
	})
}
