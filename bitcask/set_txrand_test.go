package bitcask

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSetTxRandomMatchesModel pops, removes and adds (back) members of a
// committed set in one Tx and checks that every draw of the Tx is a
// member it sees, and that drawing more than there are gives each
// member once.
func TestSetTxRandomMatchesModel(t *testing.T) {
	db := mustOpen(t, t.TempDir(), testOptions())
	defer db.Close()
	k := []byte("s")
	model := map[string]bool{}
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 300; i++ {
			m := fmt.Sprintf("m%03d", i)
			model[m] = true
			if _, err := tx.SetAdd(k, []byte(m)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	if err := db.Update(func(tx *Tx) error {
		for step := 0; step < 1500; step++ {
			switch r := rng.IntN(10); {
			case r < 4: // SPOP
				ms, err := tx.SetRandom(k, 1, true)
				if err != nil {
					return err
				}
				for _, m := range ms {
					if !model[string(m)] {
						t.Fatalf("step %d: drew %s, not a member", step, m)
					}
					if _, err := tx.SetRemove(k, m); err != nil {
						return err
					}
					delete(model, string(m))
				}
			case r < 7: // add an old member back, or a new one
				m := fmt.Sprintf("m%03d", rng.IntN(300))
				if r == 6 {
					m = fmt.Sprintf("n%04d", step)
				}
				buf := []byte(m)
				if _, err := tx.SetAdd(k, buf); err != nil {
					return err
				}
				copy(buf, "xxxx") // the caller's buffer is its own again
				model[m] = true
			default: // SREM of anything
				m := fmt.Sprintf("m%03d", rng.IntN(300))
				if _, err := tx.SetRemove(k, []byte(m)); err != nil {
					return err
				}
				delete(model, m)
			}
			if step%50 == 0 && len(model) > 0 {
				got, err := tx.SetRandom(k, len(model)+5, true)
				if err != nil {
					return err
				}
				var names []string
				for _, m := range got {
					names = append(names, string(m))
				}
				slices.Sort(names)
				var want []string
				for m := range model {
					want = append(want, m)
				}
				slices.Sort(want)
				if !slices.Equal(names, want) {
					t.Fatalf("step %d: SRANDMEMBER %d gave %d members, want %d", step, len(model)+5, len(names), len(want))
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
