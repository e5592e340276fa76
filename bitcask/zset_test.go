package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// zadd adds member score pairs ("m", "1.5", ...) to the sorted set at key
// in one Update.
func zadd(t testing.TB, db *DB, key string, ms ...string) {
	t.Helper()
	err := db.Update(func(tx *Tx) error {
		for i := 0; i < len(ms); i += 2 {
			f, err := strconv.ParseFloat(ms[i+1], 64)
			if err != nil {
				return err
			}
			if _, err := tx.ZSetAdd([]byte(key), []byte(ms[i]), f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ZSetAdd %q: %v", key, err)
	}
}

// zsetOf renders the sorted set at key in order as "m=score,m=score",
// checking that ranks, scores read from disk and the count agree with the
// order; "" when absent.
func zsetOf(t testing.TB, db *DB, key string) string {
	t.Helper()
	h := Hash([]byte(key))
	ms, err := db.ZSetRange(h, []byte(key), &ZRange{Start: 0, Stop: -1, Count: -1}, 0)
	if err != nil {
		t.Fatalf("ZSetRange %q: %v", key, err)
	}
	n, err := db.ZSetCard(h, []byte(key), 0)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("%q: card %d, range %d", key, n, len(ms))
	}
	var parts []string
	for i, m := range ms {
		r, sc, ok, err := db.ZSetRank(h, []byte(key), m.Member, 0)
		if err != nil || !ok || r != i || sc != m.Score {
			t.Fatalf("%q: member %q rank %d score %v (%v %v), want %d %v", key, m.Member, r, sc, ok, err, i, m.Score)
		}
		parts = append(parts, string(m.Member)+"="+strconv.FormatFloat(m.Score, 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

func zrem(t testing.TB, db *DB, key, member string) {
	t.Helper()
	if err := db.Update(func(tx *Tx) error { _, err := tx.ZSetRemove([]byte(key), []byte(member)); return err }); err != nil {
		t.Fatal(err)
	}
}

// TestZSetRecordGolden pins a sorted set's records: its root and a
// member whose score is 1.5 (8 bytes of float64 bits).
func TestZSetRecordGolden(t *testing.T) {
	for _, g := range []struct {
		name       string
		kind       byte
		key, field string
		value      []byte
		hex        string
	}{
		{"zset root", kindColl, "z", "", nil,
			"91fea56f 7b68e5cf8b010000 0900000000000000 0000000000000000 01000000 00000000 05010300 7a"},
		{"zset member", kindElemPut, "z", "m", encodeScore(nil, 1.5),
			"0e40dc81 7b68e5cf8b010000 0900000000000000 0000000000000000 03000000 08000000 06010300 017a6d 000000000000f83f"},
	} {
		key := []byte(g.key)
		if g.kind != kindColl {
			key = elemKey(nil, key, []byte(g.field))
		}
		got := appendRecordOf(nil, g.kind, flagBatchFirst, keyTypeZSet, 9, goldenTime, 0, key, g.value)
		if want := goldenCollBytes(t, g.hex); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded\n got %x\nwant %x", g.name, got, want)
		}
		if _, _, _, err := decodeRecord(got); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
	}
	// A member whose score is not 8 bytes is corrupt.
	b := appendRecordOf(nil, kindElemPut, flagSingle, keyTypeZSet, 1, goldenTime, 0, elemKey(nil, []byte("z"), []byte("m")), []byte("abc"))
	if _, _, _, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("3-byte score decodes: %v", err)
	}
	// Score bytes that read as a decimal integer are stored as one and
	// still give the score back.
	sc := math.Float64frombits(0x3132333435363738) // "87654321" little endian
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	zadd(t, db, "z", "m", strconv.FormatFloat(sc, 'g', -1, 64))
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	if got, ok, err := db.ZSetScore(Hash([]byte("z")), []byte("z"), []byte("m"), 0); !ok || err != nil || got != sc {
		t.Fatalf("score %v %v %v, want %v", got, ok, err, sc)
	}
}

func TestZSetBasics(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	zadd(t, db, "z", "c", "3", "a", "1", "b", "2", "inf", "+Inf", "ninf", "-Inf")
	zadd(t, db, "z", "a", "5") // moves a
	zrem(t, db, "z", "b")
	want := "ninf=-Inf,c=3,a=5,inf=+Inf"
	if got := zsetOf(t, db, "z"); got != want {
		t.Fatalf("got %q", got)
	}
	mustPut(t, db, "s", "v")
	if _, err := db.ZSetRange(Hash([]byte("s")), []byte("s"), &ZRange{Stop: -1, Count: -1}, 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("range of a string: %v", err)
	}
	if err := db.Update(func(tx *Tx) error { _, err := tx.ZSetAdd([]byte("s"), []byte("m"), 1); return err }); !errors.Is(err, ErrWrongType) {
		t.Fatalf("add to a string: %v", err)
	}
	// A Tx sees its own writes in ranges and ranks.
	err := db.Update(func(tx *Tx) error {
		tx.ZSetAdd([]byte("z"), []byte("b"), 4)
		tx.ZSetRemove([]byte("z"), []byte("c"))
		ms, err := tx.ZSetRange([]byte("z"), &ZRange{Stop: -1, Count: -1})
		if err != nil {
			return err
		}
		var got []string
		for _, m := range ms {
			got = append(got, string(m.Member))
		}
		if strings.Join(got, ",") != "ninf,b,a,inf" {
			return fmt.Errorf("tx range %v", got)
		}
		tx.ZSetAdd([]byte("z"), []byte("a"), -100)
		if r, _, ok, err := tx.ZSetRank([]byte("z"), []byte("a")); r != 1 || !ok || err != nil {
			return fmt.Errorf("tx rank %d %v %v", r, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := zsetOf(t, db, "z"); got != "ninf=-Inf,a=-100,b=4,inf=+Inf" {
		t.Fatalf("after tx: %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, testOptions())
	defer db.Close()
	if got := zsetOf(t, db, "z"); got != "ninf=-Inf,a=-100,b=4,inf=+Inf" {
		t.Fatalf("after reopen: %q", got)
	}
}

// TestZSetTruncatedEveryByte: the newest file cut at every byte of a
// run of sorted-set writes; reopened, each write is wholly there or gone,
// with the order and scores of the writes before it.
func TestZSetTruncatedEveryByte(t *testing.T) {
	checkTruncatedEveryByte(t, []func(db *DB){
		func(db *DB) { zadd(t, db, "z", "a", "1", "b", "2") },
		func(db *DB) { zadd(t, db, "z", "a", "3") },
		func(db *DB) { zadd(t, db, "z", "c", "-1.5") },
		func(db *DB) { zrem(t, db, "z", "b") },
		func(db *DB) { db.Delete([]byte("z")) },
		func(db *DB) { zadd(t, db, "z", "y", "9") },
	}, func(db *DB) string { return zsetOf(t, db, "z") })
}

// TestZSetDeleteMergeReopen: a big sorted set deleted with one record,
// merged and reopened (from hints): no member comes back, and a new set
// under the key has its own order.
func TestZSetDeleteMergeReopen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 64 << 10
	db := mustOpen(t, dir, o)
	const n = 3000
	for i := 0; i < n; i += 100 {
		var ms []string
		for j := i; j < i+100; j++ {
			ms = append(ms, fmt.Sprintf("m%05d", j), strconv.Itoa(n-j))
		}
		zadd(t, db, "big", ms...)
	}
	zadd(t, db, "keep", "k", "1", "j", "2")
	before, _ := os.Stat(db.active.path)
	if _, err := db.Delete([]byte("big")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(db.active.path)
	if d := after.Size() - before.Size(); d != headerSize+int64(len("big")) {
		t.Fatalf("DEL of a zset wrote %d bytes, want one tombstone", d)
	}
	zadd(t, db, "big", "new", "1")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := zsetOf(t, db, "big"); got != "new=1" {
		t.Fatalf("after merge: %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := zsetOf(t, db, "big"); got != "new=1" {
		t.Fatalf("after merge and reopen: %q", got)
	}
	if got := zsetOf(t, db, "keep"); got != "k=1,j=2" {
		t.Fatalf("other zset: %q", got)
	}
	// A large set survives merge and reopen in order.
	var ms []string
	for j := 0; j < 1000; j++ {
		ms = append(ms, fmt.Sprintf("x%04d", j), strconv.Itoa(j%7))
	}
	zadd(t, db, "order", ms...)
	want := zsetOf(t, db, "order")
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := zsetOf(t, db, "order"); got != want {
		t.Fatalf("order after merge and reopen differs")
	}
}

// TestZSetExpirySurvivesRestart: a sorted set's expiry is its root's.
func TestZSetExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, dir, o)
	zadd(t, db, "z", "a", "1", "b", "2")
	exp := clk.Ms() + 10_000
	if err := db.Update(func(tx *Tx) error { _, err := tx.SetExpireAt([]byte("z"), exp); return err }); err != nil {
		t.Fatal(err)
	}
	zadd(t, db, "z", "c", "0")
	db.Close()
	db = mustOpen(t, dir, o)
	if m, ok := db.MetaOf([]byte("z")); !ok || m.ExpireAt != exp || m.Type != TypeZSet {
		t.Fatalf("after reopen: %+v %v", m, ok)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	if got := zsetOf(t, db, "z"); got != "c=0,a=1,b=2" {
		t.Fatalf("zset %q", got)
	}
	clk.Add(20 * time.Second)
	if got := zsetOf(t, db, "z"); got != "" {
		t.Fatalf("expired zset reads %q", got)
	}
	db.Close()
	db = mustOpen(t, dir, o)
	defer db.Close()
	if got := zsetOf(t, db, "z"); got != "" {
		t.Fatalf("expired zset after reopen reads %q", got)
	}
	zadd(t, db, "z", "n", "1")
	if got := zsetOf(t, db, "z"); got != "n=1" {
		t.Fatalf("new zset over an expired one: %q", got)
	}
}

const zsetKillChildEnv = "BITCASK_ZSET_KILL_CHILD"

func TestZSetKillChild(t *testing.T) {
	spec := os.Getenv(zsetKillChildEnv)
	if spec == "" {
		t.Skip("only runs as the child of TestZSetSIGKILL")
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
		var ms []string
		for j := i; j < i+100; j++ {
			ms = append(ms, fmt.Sprintf("m%d", j), strconv.Itoa(j))
		}
		zadd(t, db, big, ms...)
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
		if err := db.Update(func(tx *Tx) error { _, err := tx.ZSetAdd([]byte(live), []byte(m), float64(-i)); return err }); err != nil {
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

// TestZSetSIGKILL: DEL of a big sorted set, a merge, then SIGKILL while
// another is written and merged; after each restart no member of the
// deleted set is back, and every acknowledged member is there with its
// score and rank.
func TestZSetSIGKILL(t *testing.T) {
	if os.Getenv(zsetKillChildEnv) != "" {
		t.Skip()
	}
	killRounds(t, zsetKillChildEnv, "^TestZSetKillChild$", func(db *DB, round int, acked []string) {
		for r := 0; r <= round; r++ {
			if got := zsetOf(t, db, fmt.Sprintf("big%d", r)); got != "" {
				t.Fatalf("round %d: the deleted zset came back: %.80q", round, got)
			}
		}
		live := fmt.Sprintf("live%d", round)
		card, _ := db.ZSetCard(Hash([]byte(live)), []byte(live), 0)
		for _, m := range acked {
			i, _ := strconv.Atoi(m[1:])
			r, s, ok, err := db.ZSetRank(Hash([]byte(live)), []byte(live), []byte(m), 0)
			if !ok || err != nil || s != float64(-i) || r != card-1-i {
				t.Fatalf("round %d: acknowledged member %s: rank %d of %d, score %v, %v %v", round, m, r, card, s, ok, err)
			}
		}
	})
}
