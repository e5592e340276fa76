package bitcask

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestZindexMatchesSortedSlice drives the ordered index with random inserts
// and removes (in order, in reverse and at random) and checks every rank,
// item and walk against a sorted slice.
func TestZindexMatchesSortedSlice(t *testing.T) {
	for _, mode := range []string{"random", "ascending", "descending"} {
		t.Run(mode, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			z := &zindex{}
			var ref []zitem
			for step := 0; step < 20000; step++ {
				var it zitem
				switch mode {
				case "ascending":
					it = zitem{float64(step), "m"}
				case "descending":
					it = zitem{float64(-step), "m"}
				default:
					it = zitem{float64(rng.IntN(300)), strconv.Itoa(rng.IntN(50))}
				}
				i, found := slices.BinarySearchFunc(ref, it, func(a, b zitem) int { return zcmp(&a, &b) })
				if rng.IntN(3) == 0 && len(ref) > 0 {
					// remove something present
					j := rng.IntN(len(ref))
					if _, ok := z.remove(ref[j]); !ok {
						t.Fatalf("step %d: remove of present %v failed", step, ref[j])
					}
					ref = slices.Delete(ref, j, j+1)
				} else if found {
					continue
				} else {
					z.insert(it)
					ref = slices.Insert(ref, i, it)
				}
				if step%500 == 0 || step > 19900 {
					check(t, z, ref)
				}
			}
			for len(ref) > 0 {
				j := rng.IntN(len(ref))
				if _, ok := z.remove(ref[j]); !ok {
					t.Fatalf("remove of present %v failed", ref[j])
				}
				ref = slices.Delete(ref, j, j+1)
				if len(ref)%97 == 0 {
					check(t, z, ref)
				}
			}
			if _, ok := z.remove(zitem{1, "x"}); z.len() != 0 || ok {
				t.Fatal("not empty")
			}
		})
	}
}

func check(t *testing.T, z *zindex, ref []zitem) {
	t.Helper()
	if z.len() != len(ref) {
		t.Fatalf("len %d, want %d", z.len(), len(ref))
	}
	var got []zitem
	z.walk(0, false, func(it *zitem) bool { got = append(got, *it); return true })
	if !slices.Equal(got, ref) {
		t.Fatalf("walk differs: %d vs %d items", len(got), len(ref))
	}
	got = got[:0]
	z.walk(len(ref)-1, true, func(it *zitem) bool { got = append(got, *it); return true })
	slices.Reverse(got)
	if !slices.Equal(got, ref) {
		t.Fatal("reverse walk differs")
	}
	for i := range ref {
		if r := z.rank(ref[i]); r != i {
			t.Fatalf("rank of %v: %d, want %d", ref[i], r, i)
		}
		nd, j := z.at(i)
		if nd.items[j] != ref[i] {
			t.Fatalf("at %d: %v, want %v", i, nd.items[j], ref[i])
		}
	}
	c := z.clone()
	got = got[:0]
	c.walk(0, false, func(it *zitem) bool { got = append(got, *it); return true })
	if c.len() != len(ref) || !slices.Equal(got, ref) {
		t.Fatal("clone differs")
	}
	if len(ref) > 0 {
		c.remove(ref[0]) // the copy shares no node
		if z.len() != len(ref) {
			t.Fatal("removing from the clone changed the original")
		}
	}
}

// TestZmembersMatchesMap drives the packed element map with random sets
// and deletes against a Go map.
func TestZmembersMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	zm := newZmembers(0)
	ref := map[string]elemLoc{}
	for step := 0; step < 200000; step++ {
		m := strconv.Itoa(rng.IntN(5000))
		if step%7 == 0 {
			m = "" // the empty member is a member
		}
		if rng.IntN(2) == 0 {
			l := elemLoc{off: uint32(step), vlen: 8} // no sequence number: the map keeps none
			zm.set(m, l)
			ref[m] = l
		} else {
			zm.del(m)
			delete(ref, m)
		}
		if step%10000 == 0 || step > 199000 {
			if zm.n != len(ref) {
				t.Fatalf("step %d: %d entries, want %d", step, zm.n, len(ref))
			}
			for k, want := range ref {
				if got, ok := zm.get(k); !ok || got != want {
					t.Fatalf("step %d: %q: %v %v, want %v", step, k, got, ok, want)
				}
			}
			n := 0
			zm.each(func(m string, l elemLoc) {
				n++
				if ref[m] != l {
					t.Fatalf("entry %q stale", m)
				}
			})
			if n != len(ref) {
				t.Fatalf("%d live entries, want %d", n, len(ref))
			}
		}
	}
}
