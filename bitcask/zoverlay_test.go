package bitcask

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestZoverlayMatchesCopy drives an overlay and a copy of the same base
// with the same random removes, re-adds and rescorings (pops from the
// ends among them) and checks that both give the same length, the same
// ranks and the same walk from every rank.
func TestZoverlayMatchesCopy(t *testing.T) {
	for _, n := range []int{0, 1, 5, 200, 3000} {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("n=%d/seed=%d", n, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(n)))
				base := &zindex{}
				var live []zitem
				for i := 0; i < n; i++ {
					it := zitem{float64(rng.IntN(n/4 + 1)), fmt.Sprintf("m%05d", i)}
					base.insert(it)
					live = append(live, it)
				}
				o, ref := newZoverlay(base), base.clone()
				for step := 0; step < 300; step++ {
					switch r := rng.IntN(10); {
					case r < 4 && len(live) > 0: // remove: the lowest, the highest or any
						i := 0
						switch rng.IntN(3) {
						case 1:
							i = len(live) - 1
						case 2:
							i = rng.IntN(len(live))
						}
						sorted := slices.Clone(live)
						slices.SortFunc(sorted, func(a, b zitem) int { return zcmp(&a, &b) })
						it := sorted[i]
						o.remove(it)
						ref.remove(it)
						live = slices.DeleteFunc(live, func(x zitem) bool { return x == it })
					case r < 7 && len(live) > 0: // rescore, maybe to the same score
						j := rng.IntN(len(live))
						old := live[j]
						nw := zitem{float64(rng.IntN(n/4 + 2)), old.member}
						o.remove(old)
						ref.remove(old)
						o.insert(nw)
						ref.insert(nw)
						live[j] = nw
					default: // a new member, or an old one back at its old score
						it := zitem{float64(rng.IntN(n/4 + 2)), fmt.Sprintf("n%05d", step)}
						if rng.IntN(2) == 0 && n > 0 {
							k := rng.IntN(n)
							cand := zitem{}
							base.walk(k, false, func(x *zitem) bool { cand = *x; return false })
							if !slices.ContainsFunc(live, func(x zitem) bool { return x.member == cand.member }) {
								it = cand
							}
						}
						if slices.ContainsFunc(live, func(x zitem) bool { return x.member == it.member }) {
							continue
						}
						o.insert(it)
						ref.insert(it)
						live = append(live, it)
					}
					checkZviewSame(t, o, ref)
				}
				checkZviewSame(t, o.full(), ref)
			})
		}
	}
}

func checkZviewSame(t *testing.T, got zview, want *zindex) {
	t.Helper()
	if got.len() != want.len() {
		t.Fatalf("len %d, want %d", got.len(), want.len())
	}
	var all []zitem
	want.walk(0, false, func(it *zitem) bool { all = append(all, *it); return true })
	for r := 0; r <= len(all); r++ {
		var w []zitem
		got.walkUp(r, func(it *zitem) bool { w = append(w, *it); return len(w) < 3 })
		wantW := all[r:min(r+3, len(all))]
		if !slices.Equal(w, wantW) {
			t.Fatalf("walk from %d: %v, want %v", r, w, wantW)
		}
		if r < len(all) {
			if k := zrank(got, all[r]); k != r {
				t.Fatalf("rank of %v: %d, want %d", all[r], k, r)
			}
		}
	}
}

// TestZSetTxViewMatchesModel writes a committed sorted set, then in one Tx
// pops, removes, rescores and adds members (past zoverlayMax, so that the
// Tx's view goes from overlay to copy) and checks every read of the Tx
// against a model, and the committed set after it.
func TestZSetTxViewMatchesModel(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	k := []byte("z")
	model := map[string]float64{}
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 2000; i++ {
			m := fmt.Sprintf("m%04d", i)
			model[m] = float64(i % 97)
			if _, err := tx.ZSetAdd(k, []byte(m), model[m]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sortedModel := func() []ZMember {
		var out []ZMember
		for m, s := range model {
			out = append(out, ZMember{Member: []byte(m), Score: s})
		}
		slices.SortFunc(out, func(a, b ZMember) int {
			x, y := zitem{a.Score, string(a.Member)}, zitem{b.Score, string(b.Member)}
			return zcmp(&x, &y)
		})
		return out
	}
	check := func(tx *Tx, full bool) {
		t.Helper()
		want := sortedModel()
		if full {
			got, err := tx.ZSetRange(k, &ZRange{Start: 0, Stop: -1, Count: -1})
			if err != nil || !zmembersEqual(got, want) {
				t.Fatalf("ZRANGE 0 -1: %d members (err %v), want %d", len(got), err, len(want))
			}
		}
		if len(want) == 0 {
			return
		}
		for _, r := range []int{0, len(want) / 3, len(want) - 1} {
			got, err := tx.ZSetRange(k, &ZRange{Start: int64(r), Stop: int64(r) + 2, Count: -1})
			if err != nil || !zmembersEqual(got, want[r:min(r+3, len(want))]) {
				t.Fatalf("ZRANGE %d %d: %v (err %v)", r, r+2, got, err)
			}
			rank, _, ok, err := tx.ZSetRank(k, want[r].Member)
			if err != nil || !ok || rank != r {
				t.Fatalf("ZRANK %s: %d %v %v, want %d", want[r].Member, rank, ok, err, r)
			}
		}
		rev, err := tx.ZSetRange(k, &ZRange{Start: 0, Stop: 1, Rev: true, Count: -1})
		if err != nil || len(rev) == 0 || string(rev[0].Member) != string(want[len(want)-1].Member) {
			t.Fatalf("ZREVRANGE 0 1: %v (err %v)", rev, err)
		}
		n, err := tx.ZSetCount(k, &ZRange{By: ZByScore, Min: ZBound{Score: 10}, Max: ZBound{Score: 20, Excl: true}})
		wantN := 0
		for _, m := range want {
			if m.Score >= 10 && m.Score < 20 {
				wantN++
			}
		}
		if err != nil || n != wantN {
			t.Fatalf("ZCOUNT 10 (20: %d (err %v), want %d", n, err, wantN)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	if err := db.Update(func(tx *Tx) error {
		for step := 0; step < 6000; step++ {
			switch r := rng.IntN(10); {
			case r < 3: // ZPOPMIN / ZPOPMAX
				ms, err := tx.ZSetRange(k, &ZRange{Start: 0, Stop: 0, Rev: r == 0, Count: -1})
				if err != nil {
					return err
				}
				for _, m := range ms {
					if _, err := tx.ZSetRemove(k, m.Member); err != nil {
						return err
					}
					delete(model, string(m.Member))
				}
			case r < 5: // rescore an old member (maybe back to its old score)
				m := fmt.Sprintf("m%04d", rng.IntN(2000))
				s := float64(rng.IntN(97))
				if _, err := tx.ZSetAdd(k, []byte(m), s); err != nil {
					return err
				}
				model[m] = s
			default: // a new member
				m := fmt.Sprintf("n%05d", step)
				s := float64(rng.IntN(97))
				if _, err := tx.ZSetAdd(k, []byte(m), s); err != nil {
					return err
				}
				model[m] = s
			}
			if step%5 == 0 {
				check(tx, step%500 == 0)
			}
		}
		check(tx, true)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ZSetRange(Hash(k), k, &ZRange{Start: 0, Stop: -1, Count: -1}, 0)
	if err != nil || !zmembersEqual(got, sortedModel()) {
		t.Fatalf("committed: %d members (err %v), want %d", len(got), err, len(model))
	}
}

func zmembersEqual(a, b []ZMember) bool {
	return slices.EqualFunc(a, b, func(x, y ZMember) bool { return string(x.Member) == string(y.Member) && x.Score == y.Score })
}
