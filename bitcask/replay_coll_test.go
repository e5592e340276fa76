package bitcask

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReplayDedupOrder: replay keeps, per element, the record with the
// highest sequence number whatever the file order (a merge's output
// comes before newer files but holds records of any age), an equal
// sequence number going to the later record (a merge's copy); records
// not newer than the root are dropped, and tombstones only at the end.
// Both ways: a list's records deduplicated in passes, and the others'
// one per element as they come.
func TestReplayDedupOrder(t *testing.T) {
	for _, byHash := range []bool{false, true} {
		rc := &replayColl{gen: 10, limit: 1 << 30, byHash: byHash}
		add := func(f string, seq uint64, off uint32, dead bool) {
			f = fmt.Sprintf("%-8s", f) // a list's order keys are at least 8 bytes
			rc.add(&elemRec{seq: seq, off: off, flen: uint32(len(f)), dead: dead}, []byte(f))
		}
		add("a", 20, 1, true)  // tombstone first in file order...
		add("a", 15, 2, false) // ...then an older put: stays deleted
		add("b", 12, 3, false)
		add("b", 12, 4, false) // a copy with the same number: the later wins
		add("c", 9, 5, false)  // older than the root
		add("d", 30, 6, false)
		add("d", 31, 7, true)
		add("d", 32, 8, false) // put again after its tombstone
		add("e", 11, 9, false)
		add("e", 13, 10, true) // deleted
		for i := 0; i < 100; i++ {
			add(fmt.Sprintf("x%d", i%7), uint64(100+i), uint32(100+i), false)
		}
		want := []string{"b@4", "d@8", "x0@198", "x1@199", "x2@193", "x3@194", "x4@195", "x5@196", "x6@197"}
		var got []string
		if !byHash {
			rc.dedup()
			for i := range rc.recs {
				if r := &rc.recs[i]; rc.field(r)[0] != 'x' {
					got = append(got, fmt.Sprintf("%s@%d/%v", bytes.TrimSpace(rc.field(r)), r.off, r.dead))
				}
			}
			if want := []string{"a@1/true", "b@4/false", "d@8/false", "e@10/true"}; !slices.Equal(got, want) {
				t.Fatalf("after dedup: %q, want %q", got, want)
			}
			rc.live()
			c := newColl(rc.gen, TypeList, 0)
			buildList(c, rc)
			got = got[:0]
			c.each(func(f string, l elemLoc) { got = append(got, fmt.Sprintf("%s@%d", strings.TrimSpace(f), l.off)) })
		} else {
			rc.live()
			for i := range rc.recs {
				r := &rc.recs[i]
				got = append(got, fmt.Sprintf("%s@%d", bytes.TrimSpace(rc.field(r)), r.off))
			}
			slices.Sort(got)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("byHash=%v: %q, want %q", byHash, got, want)
		}
	}
}

// TestReplayCollectionsModel: hashes, sets and sorted sets written with
// overwrites, deletes, whole-key deletes and re-creations, across small
// files, reopened from hints and by scanning, with replay's dedup
// running often (a small dedupMin): each collection is its model after
// every reopen, and the sorted set's index answers ranks and ranges.
func TestReplayCollectionsModel(t *testing.T) {
	defer func(n, m int) { dedupMin, slabMin = n, m }(dedupMin, slabMin)
	dedupMin = 16
	slabMin = 40 // the list's leaves in the slab most of the time
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 16 << 10
	db := mustOpen(t, dir, o)
	rng := rand.New(rand.NewPCG(3, 4))
	hash := map[string]string{}
	set := map[string]bool{}
	zset := map[string]float64{}
	var list []string
	hk, sk, zk, lk := []byte("h"), []byte("s"), []byte("z"), []byte("l")
	for round := 0; round < 6; round++ {
		for b := 0; b < 40; b++ {
			if err := db.Update(func(tx *Tx) error {
				for i := 0; i < 25; i++ {
					m := fmt.Sprintf("m%03d", rng.IntN(300))
					switch r := rng.IntN(3); {
					case r == 0 || len(list) < 20:
						left := rng.IntN(2) == 0
						if _, err := tx.ListPush(lk, [][]byte{[]byte(m)}, left, false); err != nil {
							return err
						}
						if left {
							list = append([]string{m}, list...)
						} else {
							list = append(list, m)
						}
					case r == 1:
						i := rng.IntN(len(list))
						if err := tx.ListSet(lk, i, []byte(m)); err != nil {
							return err
						}
						list[i] = m
					default:
						if _, err := tx.ListPop(lk, true, 1); err != nil {
							return err
						}
						list = list[1:]
					}
					switch r := rng.IntN(10); {
					case r < 5:
						v := fmt.Sprintf("v%d", rng.IntN(1000))
						if _, err := tx.HashSet(hk, []byte(m), []byte(v)); err != nil {
							return err
						}
						hash[m] = v
						if _, err := tx.SetAdd(sk, []byte(m)); err != nil {
							return err
						}
						set[m] = true
						sc := float64(rng.IntN(50))
						if _, err := tx.ZSetAdd(zk, []byte(m), sc); err != nil {
							return err
						}
						zset[m] = sc
					case r < 9:
						if _, err := tx.HashDelete(hk, []byte(m)); err != nil {
							return err
						}
						delete(hash, m)
						if _, err := tx.SetRemove(sk, []byte(m)); err != nil {
							return err
						}
						delete(set, m)
						if _, err := tx.ZSetRemove(zk, []byte(m)); err != nil {
							return err
						}
						delete(zset, m)
					case rng.IntN(8) == 0:
						// The whole of each: a new generation follows.
						for _, k := range [][]byte{hk, sk, zk, lk} {
							if _, err := tx.Delete(k); err != nil {
								return err
							}
						}
						list = nil
						clear(hash)
						clear(set)
						clear(zset)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if round%3 == 2 {
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		if round%2 == 1 {
			hs, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
			for _, h := range hs {
				os.Remove(h)
			}
		}
		db = mustOpen(t, dir, o)
		checkCollModels(t, db, round, hash, set, zset)
		var got []string
		if err := db.ListWalk(Hash(lk), lk, 0, false, 0, func(_ int, v []byte) bool { got = append(got, string(v)); return true }); err != nil && len(list) > 0 {
			t.Fatal(err)
		}
		if !slices.Equal(got, list) {
			t.Fatalf("round %d: list %q\nwant %q", round, got, list)
		}
	}
	db.Close()
}

func checkCollModels(t *testing.T, db *DB, round int, hash map[string]string, set map[string]bool, zset map[string]float64) {
	t.Helper()
	var got, want []string
	fs, err := db.HashGetAll(Hash([]byte("h")), []byte("h"), true, 0)
	if err != nil && len(hash) > 0 {
		t.Fatal(err)
	}
	for _, f := range fs {
		got = append(got, string(f.Field)+"="+string(f.Value))
	}
	for f, v := range hash {
		want = append(want, f+"="+v)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("round %d: hash %q\nwant %q", round, got, want)
	}
	got, want = got[:0], want[:0]
	ms, err := db.SetMembers(Hash([]byte("s")), []byte("s"), 0)
	if err != nil && len(set) > 0 {
		t.Fatal(err)
	}
	for _, m := range ms {
		got = append(got, string(m))
	}
	for m := range set {
		want = append(want, m)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("round %d: set %q\nwant %q", round, got, want)
	}
	got, want = got[:0], want[:0]
	zh := Hash([]byte("z"))
	zs, err := db.ZSetRange(zh, []byte("z"), &ZRange{Start: 0, Stop: -1, Count: -1}, 0)
	if err != nil && len(zset) > 0 {
		t.Fatal(err)
	}
	for _, m := range zs {
		got = append(got, fmt.Sprintf("%s:%g", m.Member, m.Score))
	}
	type zm struct {
		m string
		s float64
	}
	var all []zm
	for m, s := range zset {
		all = append(all, zm{m, s})
	}
	slices.SortFunc(all, func(a, b zm) int {
		if a.s != b.s {
			if a.s < b.s {
				return -1
			}
			return 1
		}
		return strings.Compare(a.m, b.m)
	})
	for _, x := range all {
		want = append(want, fmt.Sprintf("%s:%g", x.m, x.s))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("round %d: sorted set %q\nwant %q", round, got, want)
	}
	for i, x := range all {
		rank, _, ok, err := db.ZSetRank(zh, []byte("z"), []byte(x.m), 0)
		if err != nil || !ok || rank != i {
			t.Fatalf("round %d: rank of %s %d %v %v, want %d", round, x.m, rank, ok, err, i)
		}
	}
	if n, err := db.ZSetCount(zh, []byte("z"), &ZRange{By: ZByScore, Min: ZBound{Score: 10}, Max: ZBound{Score: 20, Excl: true}, Count: -1}, 0); err == nil {
		c := 0
		for _, x := range all {
			if x.s >= 10 && x.s < 20 {
				c++
			}
		}
		if n != c {
			t.Fatalf("round %d: count [10, 20) %d, want %d", round, n, c)
		}
	} else if len(zset) > 0 {
		t.Fatal(err)
	}
}

// TestTreeBuild: the bottom-up builds give trees whose every index,
// rank and walk agrees with the items, and that take inserts and
// deletes afterwards, at sizes around the node capacities.
func TestTreeBuild(t *testing.T) {
	for _, n := range []int{1, 2, lmax - 1, lmax, lmax + 1, 3*lmax + 7, lmax*lmax + 1, 40000} {
		lt := &ltree{}
		items := make([]litem, n)
		for i := range items {
			items[i] = lt.newItem(ordKey(uint64(i+1)<<21), elemLoc{off: uint32(i)})
		}
		lt.build(items)
		if lt.len() != n {
			t.Fatalf("ltree of %d: len %d", n, lt.len())
		}
		for _, i := range []int{0, n / 3, n / 2, n - 1} {
			if it := lt.item(i); it.off != uint32(i) {
				t.Fatalf("ltree of %d: item %d has %d", n, i, it.off)
			}
			if j, ok := lt.search(ordKey(uint64(i+1) << 21)); !ok || j != i {
				t.Fatalf("ltree of %d: search of %d: %d %v", n, i, j, ok)
			}
		}
		k := 0
		lt.walk(0, false, func(it *litem) bool {
			if it.off != uint32(k) {
				t.Fatalf("ltree of %d: walk at %d found %d", n, k, it.off)
			}
			k++
			return true
		})
		lt.insertAt(n/2, lt.newItem(ordKey(uint64(n/2)<<21|1<<20), elemLoc{off: 1 << 30}))
		lt.deleteAt(n)
		if lt.len() != n || lt.item(n/2).off != 1<<30 {
			t.Fatalf("ltree of %d after an insert and a delete: len %d", n, lt.len())
		}

		z := &zindex{}
		zs := make([]zitem, n)
		for i := range zs {
			zs[i] = zitem{float64(i / 3), fmt.Sprintf("m%07d", i)}
		}
		z.build(zs)
		if z.len() != n {
			t.Fatalf("zindex of %d: len %d", n, z.len())
		}
		for _, i := range []int{0, n / 3, n / 2, n - 1} {
			if r := z.rank(zs[i]); r != i {
				t.Fatalf("zindex of %d: rank of %d is %d", n, i, r)
			}
			if nd, j := z.at(i); nd.items[j] != zs[i] {
				t.Fatalf("zindex of %d: item %d is %v", n, i, nd.items[j])
			}
		}
		if _, ok := z.remove(zs[n/2]); !ok {
			t.Fatalf("zindex of %d: remove failed", n)
		}
		z.insert(zitem{-1, "first"})
		if z.len() != n || z.rank(zitem{-1, "first"}) != 0 {
			t.Fatalf("zindex of %d after a remove and an insert: len %d", n, z.len())
		}
		if n/2 < n-1 {
			if r := z.rank(zs[n-1]); r != n-1 {
				t.Fatalf("zindex of %d: rank of the last %d", n, r)
			}
		}
	}
}

// TestHintScoreEntryGolden: the bytes of a hint entry that carries a
// sorted set member's score (hint.go's layout, "bchint02").
func TestHintScoreEntryGolden(t *testing.T) {
	dir := t.TempDir()
	hw, err := createHint(dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	key := elemKey(nil, []byte("z"), []byte("m"))
	h := header{seq: 0x0102030405060708, kind: kindElemPut, keyType: keyTypeZSet, valType: valTypeBytes, valLen: 8, flags: flagSingle | dbFlags(2)}
	hw.add(0x1234, &h, key, 8, encodeScore(nil, 1.5))
	h2 := header{seq: 9, kind: kindElemPut, keyType: keyTypeHash, valType: valTypeBytes, valLen: 1, flags: flagSingle}
	hw.add(0x40, &h2, elemKey(nil, []byte("h"), []byte("f")), 1, []byte("v"))
	if err := hw.finish(0x2000); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, hintName(7)))
	if err != nil {
		t.Fatal(err)
	}
	want := "626368696e743032" + // bchint02
		"0807060504030201" + "000000000000f83f" + // seq, the score 1.5 where the expiry goes
		"34120000" + "03000000" + "08000000" + "06" + "00" + "03" + "82" + "017a6d" + // offset, key length, value length, kind, value type, key type, database 2 | the score's flag, key
		"0900000000000000" + "0000000000000000" + // a hash's field: no score, its expiry 0
		"40000000" + "03000000" + "01000000" + "06" + "00" + "01" + "00" + "016866" +
		"0020000000000000" + "0200000000000000" // data size, entries
	if hex := fmt.Sprintf("%x", got[:len(got)-8]); hex != want {
		t.Fatalf("hint bytes\n%s\nwant\n%s", hex, want)
	}
}

// TestHintWithoutScores: a sorted set's hints written before they
// carried scores ("bchint01", as TestOpenBeforeDatabases' testdata) still
// load, the scores read from the data file, and a hint carrying scores
// gives the same set.
func TestHintWithoutScores(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 8 << 10
	db := mustOpen(t, dir, o)
	zk := []byte("z")
	want := map[string]float64{}
	for i := 0; i < 600; i += 50 {
		if err := db.Update(func(tx *Tx) error {
			for j := i; j < i+50; j++ {
				m := fmt.Sprintf("m%04d", j)
				sc := float64((j*7919)%1000) / 8
				if j%5 == 0 {
					// 8 bytes that read as a decimal integer: stored as one.
					sc = math.Float64frombits(binary.LittleEndian.Uint64([]byte("12345678")))
				}
				if _, err := tx.ZSetAdd(zk, []byte(m), sc); err != nil {
					return err
				}
				want[m] = sc
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for _, v1 := range []bool{false, true} {
		if v1 {
			hs, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
			for _, p := range hs {
				toHintV1(t, p)
			}
		}
		db = mustOpen(t, dir, o)
		if st := db.Stats(); st.DataFilesScanned != 0 || st.HintFilesLoaded == 0 {
			t.Fatalf("v1=%v: stats %+v", v1, st)
		}
		checkCollModels(t, db, 0, nil, nil, want)
		db.Close()
	}
}

// toHintV1 rewrites the hint at p in the layout before scores: magic
// "bchint01", no flag and no score.
func toHintV1(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	body := slices.Clone(b[:len(b)-hintTrailerSize])
	copy(body, hintMagicV1)
	for at := hintHeaderSize; at < len(body); {
		e := body[at : at+hintEntrySize]
		if e[31]&hintValueFlag != 0 {
			e[31] &^= hintValueFlag
			clear(e[8:16])
		}
		at += hintEntrySize + int(binary.LittleEndian.Uint32(e[20:]))
	}
	tr := slices.Clone(b[len(b)-hintTrailerSize:])
	crc := crc32.Update(0, castagnoli, body)
	crc = crc32.Update(crc, castagnoli, tr[:16])
	binary.LittleEndian.PutUint32(tr[16:], crc)
	if err := os.WriteFile(p, append(body, tr...), 0o644); err != nil {
		t.Fatal(err)
	}
}
