package bitcask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"unsafe"
)

func TestEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(entry{}); s != 40 {
		t.Fatalf("entry is %d bytes, want 40", s)
	}
}

// TestShardModel drives one shard with random inserts, overwrites and
// removals, with hashes drawn from a small set so that many keys share a
// hash (and straddle chunks), and compares it with a sorted model.
func TestShardModel(t *testing.T) {
	for _, hashes := range []int{3, 50, 1 << 30} {
		t.Run(fmt.Sprint(hashes), func(t *testing.T) {
			var s shard
			rng := rand.New(rand.NewPCG(uint64(hashes), 1))
			type kv struct {
				h   uint64
				key string
				seq uint64
			}
			model := map[string]kv{}
			hashOf := func(k string) uint64 {
				return uint64(len(k)*7919+int(k[len(k)-1])) % uint64(hashes) * 0x9e3779b97f4a7c15
			}
			for op := 0; op < 20000; op++ {
				k := fmt.Sprintf("k%d%s", rng.IntN(3000), bytes.Repeat([]byte("x"), rng.IntN(4)))
				if op%5000 == 0 {
					k = string(bytes.Repeat([]byte("B"), arenaBigKey+10)) // a big key
				}
				h := hashOf(k)
				ci, i, found := s.search(h, []byte(k))
				_, inModel := model[k]
				if found != inModel {
					t.Fatalf("op %d: search(%q) found=%v, model %v", op, k, found, inModel)
				}
				if rng.IntN(3) == 0 {
					if found {
						s.removeAt(ci, i)
						delete(model, k)
					}
					continue
				}
				if found {
					s.chunks[ci].e[i].seq = uint64(op)
				} else {
					s.insertAt(ci, i, entry{hash: h, seq: uint64(op)}, []byte(k))
				}
				model[k] = kv{h, k, uint64(op)}
			}
			var want []kv
			for _, v := range model {
				want = append(want, v)
			}
			sort.Slice(want, func(i, j int) bool {
				return want[i].h < want[j].h || want[i].h == want[j].h && want[i].key < want[j].key
			})
			var got []kv
			s.ascend(0, func(e *entry) bool {
				got = append(got, kv{e.hash, string(s.keyOf(e)), e.seq})
				return true
			})
			if len(got) != len(want) || s.n != len(want) {
				t.Fatalf("%d entries (n=%d), want %d", len(got), s.n, len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			for ci, c := range s.chunks {
				if len(c.e) == 0 || c.first != c.e[0].hash || c.last != c.e[len(c.e)-1].hash || len(c.e) > maxChunk {
					t.Fatalf("chunk %d bad: first %x len %d", ci, c.first, len(c.e))
				}
			}
			if s.arena.dead > s.arena.used+4096+int64(arenaBigKey) {
				t.Fatalf("arena not compacted: used %d dead %d", s.arena.used, s.arena.dead)
			}
		})
	}
}
