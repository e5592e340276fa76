package bitcask

import (
	"fmt"
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
func TestReplayDedupOrder(t *testing.T) {
	rc := &replayColl{gen: 10, limit: dedupMin}
	add := func(f string, seq uint64, off uint32, dead bool) {
		rc.recs = append(rc.recs, elemRec{seq: seq, at: len(rc.fields), off: off, flen: uint32(len(f)), dead: dead})
		rc.fields = append(rc.fields, f...)
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
	rc.dedup(false)
	var got []string
	for i := range rc.recs {
		r := &rc.recs[i]
		got = append(got, fmt.Sprintf("%s@%d/%v", rc.field(r), r.off, r.dead))
	}
	if want := []string{"a@1/true", "b@4/false", "d@8/false", "e@10/true"}; !slices.Equal(got, want) {
		t.Fatalf("after dedup: %q, want %q", got, want)
	}
	rc.dedup(true)
	got = got[:0]
	for i := range rc.recs {
		r := &rc.recs[i]
		got = append(got, fmt.Sprintf("%s@%d", rc.field(r), r.off))
	}
	if want := []string{"b@4", "d@8"}; !slices.Equal(got, want) {
		t.Fatalf("after the final dedup: %q, want %q", got, want)
	}
}

// TestReplayCollectionsModel: hashes, sets and sorted sets written with
// overwrites, deletes, whole-key deletes and re-creations, across small
// files, reopened from hints and by scanning, with replay's dedup
// running often (a small dedupMin): each collection is its model after
// every reopen, and the sorted set's index answers ranks and ranges.
func TestReplayCollectionsModel(t *testing.T) {
	defer func(n int) { dedupMin = n }(dedupMin)
	dedupMin = 16
	dir := t.TempDir()
	o := testOptions()
	o.MaxFileSize = 16 << 10
	db := mustOpen(t, dir, o)
	rng := rand.New(rand.NewPCG(3, 4))
	hash := map[string]string{}
	set := map[string]bool{}
	zset := map[string]float64{}
	hk, sk, zk := []byte("h"), []byte("s"), []byte("z")
	for round := 0; round < 6; round++ {
		for b := 0; b < 40; b++ {
			if err := db.Update(func(tx *Tx) error {
				for i := 0; i < 25; i++ {
					m := fmt.Sprintf("m%03d", rng.IntN(300))
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
						for _, k := range [][]byte{hk, sk, zk} {
							if _, err := tx.Delete(k); err != nil {
								return err
							}
						}
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
