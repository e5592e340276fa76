package bitcask

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenColl pins the records of a hash: a root (the first of a batch),
// a field put (its last), an integer field, a field tombstone and a root
// with an expiry. Written field by field as goldenRecords, the key of an
// element being uvarint(len(hash key)) | hash key | field.
var goldenColl = []struct {
	name       string
	kind       byte
	flags      byte
	seq        uint64
	expireAt   int64
	key, field string // field "" for a root
	value      string
	hex        string
}{
	{"hash root", kindColl, flagBatchFirst, 9, 0, "h", "", "",
		"041bafd1 7b68e5cf8b010000 0900000000000000 0000000000000000 01000000 00000000 05010100 68"},
	{"hash field put", kindElemPut, flagBatchLast, 10, 0, "h", "f", "v",
		"292e6396 7b68e5cf8b010000 0a00000000000000 0000000000000000 03000000 01000000 06020100 016866 76"},
	{"hash field integer", kindElemPut, flagSingle, 11, 0, "h", "n", "-42",
		"706a974a 7b68e5cf8b010000 0b00000000000000 0000000000000000 03000000 08000000 06030101 01686e d6ffffffffffffff"},
	{"hash field tombstone", kindElemDelete, flagSingle, 12, 0, "h", "f", "",
		"ae79a38c 7b68e5cf8b010000 0c00000000000000 0000000000000000 03000000 00000000 07030100 016866"},
	{"hash root with expiry", kindColl, flagSingle, 13, 1700000060000, "h", "", "",
		"f63bbba2 7b68e5cf8b010000 0d00000000000000 6052e6cf8b010000 01000000 00000000 05030100 68"},
}

func goldenCollBytes(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCollectionRecordGolden(t *testing.T) {
	for _, g := range goldenColl {
		t.Run(g.name, func(t *testing.T) {
			want := goldenCollBytes(t, g.hex)
			key := []byte(g.key)
			if g.kind != kindColl {
				key = elemKey(nil, key, []byte(g.field))
			}
			got := appendRecordOf(nil, g.kind, g.flags, keyTypeHash, g.seq, goldenTime, g.expireAt, key, []byte(g.value))
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			h, k, v, err := decodeRecord(want)
			if err != nil {
				t.Fatal(err)
			}
			if h.kind != g.kind || h.keyType != keyTypeHash || h.seq != g.seq || h.expireAt != g.expireAt || !bytes.Equal(k, key) {
				t.Fatalf("decoded %+v key %q", h, k)
			}
			if got := string(renderValue(h.valType, v)); got != g.value {
				t.Fatalf("value %q, want %q", got, g.value)
			}
			if isElem(g.kind) {
				ck, f, ok := splitElemKey(k)
				if !ok || string(ck) != g.key || string(f) != g.field {
					t.Fatalf("element key splits into %q %q %v", ck, f, ok)
				}
			}
			for n := 0; n < len(want); n++ {
				if _, _, _, err := decodeRecord(want[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decoding %d of %d bytes: %v", n, len(want), err)
				}
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
	// The rules check() adds for the new kinds, each on a record whose CRC
	// matches.
	for _, c := range []struct {
		name          string
		kind, keyType byte
		expireAt      int64
		key, value    []byte
	}{
		{"element of key type 0", kindElemPut, keyTypeBytes, 0, elemKey(nil, []byte("h"), []byte("f")), []byte("v")},
		{"string of key type hash", kindPut, keyTypeHash, 0, []byte("k"), []byte("v")},
		{"element with an expiry", kindElemPut, keyTypeHash, 5, elemKey(nil, []byte("h"), []byte("f")), []byte("v")},
		{"root with a value", kindColl, keyTypeHash, 0, []byte("h"), []byte("v")},
		{"element key longer than its record", kindElemPut, keyTypeHash, 0, []byte{9, 'h'}, []byte("v")},
		{"element key without a length", kindElemDelete, keyTypeHash, 0, nil, nil},
		{"unknown key type", kindColl, 9, 0, []byte("h"), nil},
	} {
		b := appendRecordOf(nil, c.kind, flagSingle, c.keyType, 1, goldenTime, c.expireAt, c.key, c.value)
		if _, _, _, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodes (%v)", c.name, err)
		}
	}
}

func hset(t testing.TB, db *DB, key string, fv ...string) {
	t.Helper()
	err := db.Update(func(tx *Tx) error {
		for i := 0; i < len(fv); i += 2 {
			if _, err := tx.HashSet([]byte(key), []byte(fv[i]), []byte(fv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("HashSet %q: %v", key, err)
	}
}

// hashOf renders the hash at key as "f=v,f=v" sorted, "" when absent.
func hashOf(t testing.TB, db *DB, key string) string {
	t.Helper()
	fs, err := db.HashGetAll(Hash([]byte(key)), []byte(key), true, 0)
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("HashGetAll %q: %v", key, err)
	}
	var parts []string
	for _, f := range fs {
		parts = append(parts, string(f.Field)+"="+string(f.Value))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func TestHashBasics(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	hset(t, db, "h", "a", "1", "b", "two", "c", "")
	if got := hashOf(t, db, "h"); got != "a=1,b=two,c=" {
		t.Fatalf("hash %q", got)
	}
	if _, _, err := db.Get([]byte("h")); !errors.Is(err, ErrWrongType) {
		t.Fatalf("Get of a hash: %v", err)
	}
	if m, ok := db.MetaOf([]byte("h")); !ok || m.Type != TypeHash {
		t.Fatalf("meta %+v %v", m, ok)
	}
	if db.Len() != 1 {
		t.Fatalf("Len %d: a hash is one key", db.Len())
	}
	if lb := db.LiveBytes(); lb != int64(len("h")+len("a1")+len("btwo")+len("c")) {
		t.Fatalf("LiveBytes %d", lb)
	}
	err := db.Update(func(tx *Tx) error {
		if created, err := tx.HashSet([]byte("h"), []byte("a"), []byte("11")); err != nil || created {
			return fmt.Errorf("overwrite: created %v, %v", created, err)
		}
		if v, ok, err := tx.HashGet([]byte("h"), []byte("a")); err != nil || !ok || string(v) != "11" {
			return fmt.Errorf("tx read of its own write: %q %v %v", v, ok, err)
		}
		if ok, err := tx.HashDelete([]byte("h"), []byte("b")); err != nil || !ok {
			return fmt.Errorf("delete: %v %v", ok, err)
		}
		if n, err := tx.HashLen([]byte("h")); err != nil || n != 2 {
			return fmt.Errorf("len %d %v", n, err)
		}
		if _, err := tx.HashSet([]byte("s"), []byte("f"), nil); err != nil {
			return err
		}
		if err := tx.Put([]byte("str"), []byte("v"), 0); err != nil {
			return err
		}
		if _, err := tx.HashSet([]byte("str"), []byte("f"), nil); !errors.Is(err, ErrWrongType) {
			return fmt.Errorf("HashSet on a string: %v", err)
		}
		if _, _, err := tx.Get([]byte("s")); !errors.Is(err, ErrWrongType) {
			return fmt.Errorf("Get of a hash in a Tx: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := hashOf(t, db, "h"); got != "a=11,c=" {
		t.Fatalf("hash %q", got)
	}
	// Deleting the last fields deletes the key.
	err = db.Update(func(tx *Tx) error {
		for _, f := range []string{"a", "c"} {
			if _, err := tx.HashDelete([]byte("h"), []byte(f)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || db.Exists([]byte("h")) {
		t.Fatalf("emptied hash: exists %v, %v", db.Exists([]byte("h")), err)
	}
	hset(t, db, "h", "x", "1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	if got := hashOf(t, db, "h"); got != "x=1" {
		t.Fatalf("after reopen: %q", got)
	}
	if got := hashOf(t, db, "s"); got != "f=" {
		t.Fatalf("after reopen: %q", got)
	}
	if st := db.Stats(); st.HintFilesLoaded == 0 {
		t.Fatalf("no hint loaded: %+v", st)
	}
	if lb := db.LiveBytes(); lb != int64(len("h")+len("x1")+len("s")+len("f")+len("str")+len("v")) {
		t.Fatalf("LiveBytes after reopen %d", lb)
	}
}

// TestHashTruncatedEveryByte cuts the newest file at every byte of the
// last collection writes and reopens: each write is wholly there or
// wholly gone, and so is the hash the first of them made.
func TestHashTruncatedEveryByte(t *testing.T) {
	checkTruncatedEveryByte(t, []func(db *DB){
		func(db *DB) { hset(t, db, "h", "a", "1", "b", "2") }, // root + two fields, one batch
		func(db *DB) { hset(t, db, "h", "a", "100") },
		func(db *DB) {
			db.Update(func(tx *Tx) error { _, err := tx.HashDelete([]byte("h"), []byte("b")); return err })
		},
		func(db *DB) { db.Delete([]byte("h")) },
		func(db *DB) { hset(t, db, "h", "z", "9") },
	}, func(db *DB) string { return hashOf(t, db, "h") })
}

// TestHashDeleteMergeReopen: a big hash deleted with one record, merged
// and reopened: no field comes back, neither when the key is a hash
// again nor when it is a string.
func TestHashDeleteMergeReopen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 64 << 10 // the hash spans several files
	db := mustOpen(t, dir, o)
	const n = 3000
	for i := 0; i < n; i += 100 {
		var fv []string
		for j := i; j < i+100; j++ {
			fv = append(fv, fmt.Sprintf("f%05d", j), strings.Repeat("v", 40))
		}
		hset(t, db, "big", fv...)
	}
	hset(t, db, "keep", "k", "1")
	before, _ := os.Stat(db.active.path)
	if _, err := db.Delete([]byte("big")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(db.active.path)
	if d := after.Size() - before.Size(); d != headerSize+int64(len("big")) {
		t.Fatalf("DEL of a hash wrote %d bytes, want one tombstone", d)
	}
	hset(t, db, "big", "new", "1") // a new hash under the same key
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := hashOf(t, db, "big"); got != "new=1" {
		t.Fatalf("after merge: %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := hashOf(t, db, "big"); got != "new=1" {
		t.Fatalf("after merge and reopen: %q", got)
	}
	if got := hashOf(t, db, "keep"); got != "k=1" {
		t.Fatalf("other hash: %q", got)
	}
	// The same once more with a string over the hash, and the merge
	// interrupted between its output and the deletion of its inputs
	// (a crash: the replay sees both copies).
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
	if _, err := db.HashGetAll(Hash([]byte("big")), []byte("big"), false, 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("hash read of a string: %v", err)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := hashOf(t, db, "keep"); got != "k=1" {
		t.Fatalf("other hash after merges: %q", got)
	}
	if lb := db.LiveBytes(); lb != int64(len("bigstring")+len("keep")+len("k1")) {
		t.Fatalf("LiveBytes %d", lb)
	}
}

// TestHashExpirySurvivesRestart: a hash's expiry is its root's, kept by
// expire records, restarts and merges; once it passes, no field is left,
// and a new hash under the key starts empty.
func TestHashExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	hset(t, db, "h", "a", "1", "b", "2")
	hset(t, db, "p", "a", "1")
	exp := clk.Ms() + 10_000
	err := db.Update(func(tx *Tx) error {
		if _, err := tx.SetExpireAt([]byte("h"), exp); err != nil {
			return err
		}
		_, err := tx.SetExpireAt([]byte("p"), exp)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("p"), 0); return err }); err != nil {
		t.Fatal(err)
	}
	hset(t, db, "h", "c", "3") // a field write keeps the expiry
	db.Close()
	db = mustOpen(t, dir, o)
	if m, ok := db.MetaOf([]byte("h")); !ok || m.ExpireAt != exp || m.Type != TypeHash {
		t.Fatalf("after reopen: %+v %v", m, ok)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if m, ok := db.MetaOf([]byte("h")); !ok || m.ExpireAt != exp {
		t.Fatalf("after merge and reopen: %+v %v", m, ok)
	}
	if m, ok := db.MetaOf([]byte("p")); !ok || m.ExpireAt != 0 {
		t.Fatalf("persisted hash after merge and reopen: %+v %v", m, ok)
	}
	if got := hashOf(t, db, "h"); got != "a=1,b=2,c=3" {
		t.Fatalf("hash %q", got)
	}
	clk.Add(20 * time.Second)
	if got := hashOf(t, db, "h"); got != "" {
		t.Fatalf("expired hash reads %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := hashOf(t, db, "h"); got != "" {
		t.Fatalf("expired hash after reopen reads %q", got)
	}
	hset(t, db, "h", "z", "1")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := hashOf(t, db, "h"); got != "z=1" {
		t.Fatalf("new hash over an expired one: %q", got)
	}
	if got := hashOf(t, db, "p"); got != "a=1" {
		t.Fatalf("persisted hash: %q", got)
	}
}

// TestHashFlushAllAndRollback: a flush-all hides every field written
// before it, and a failed Update writes nothing of a hash.
func TestHashFlushAllAndRollback(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	hset(t, db, "h", "a", "1")
	err := db.Update(func(tx *Tx) error {
		tx.HashSet([]byte("h"), []byte("b"), []byte("2"))
		tx.HashSet([]byte("n"), []byte("b"), []byte("2"))
		return errors.New("abort")
	})
	if err == nil || hashOf(t, db, "h") != "a=1" || hashOf(t, db, "n") != "" {
		t.Fatalf("rolled back Update left %q %q", hashOf(t, db, "h"), hashOf(t, db, "n"))
	}
	err = db.Update(func(tx *Tx) error {
		if err := tx.FlushAll(); err != nil {
			return err
		}
		if n, err := tx.HashLen([]byte("h")); n != 0 || err != nil {
			return fmt.Errorf("len after flush %d %v", n, err)
		}
		_, err := tx.HashSet([]byte("h"), []byte("c"), []byte("3"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	if got := hashOf(t, db, "h"); got != "c=3" {
		t.Fatalf("after flush and reopen: %q", got)
	}
	if db.Len() != 1 {
		t.Fatalf("Len %d", db.Len())
	}
}

const hashKillChildEnv = "BITCASK_HASH_KILL_CHILD"

// TestHashKillChild is the child of TestHashSIGKILL: it fills a big hash,
// deletes it, merges, then writes fields of another hash (merging now and
// then) and prints each write that returned, until it is killed.
func TestHashKillChild(t *testing.T) {
	spec := os.Getenv(hashKillChildEnv)
	if spec == "" {
		t.Skip("only runs as the child of TestHashSIGKILL")
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
	for i := 0; i < 2000; i += 100 {
		var fv []string
		for j := i; j < i+100; j++ {
			fv = append(fv, fmt.Sprintf("f%d", j), strings.Repeat("x", 50))
		}
		hset(t, db, big, fv...)
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
		f := fmt.Sprintf("f%d", i)
		if err := db.Update(func(tx *Tx) error { _, err := tx.HashSet([]byte(live), []byte(f), []byte(killValue(f))); return err }); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(f)
		if i%200 == 199 {
			if err := db.Merge(); err != nil {
				fmt.Println("error:", err)
				os.Exit(2)
			}
		}
	}
}

// TestHashSIGKILL: DEL of a big hash, a merge, then SIGKILL while another
// hash is written and merged; after each restart no field of the deleted
// hash is back and every acknowledged field write is there.
func TestHashSIGKILL(t *testing.T) {
	if os.Getenv(hashKillChildEnv) != "" {
		t.Skip()
	}
	killRounds(t, hashKillChildEnv, "^TestHashKillChild$", func(db *DB, round int, acked []string) {
		for r := 0; r <= round; r++ {
			if got := hashOf(t, db, fmt.Sprintf("big%d", r)); got != "" {
				t.Fatalf("round %d: the deleted hash came back: %.80q", round, got)
			}
		}
		live := fmt.Sprintf("live%d", round)
		for _, f := range acked {
			v, err := db.HashGet(nil, Hash([]byte(live)), []byte(live), []byte(f), 0)
			if err != nil || string(v) != killValue(f) {
				t.Fatalf("round %d: acknowledged field %s: %q %v", round, f, v, err)
			}
		}
	})
}
