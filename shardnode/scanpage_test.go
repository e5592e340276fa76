package shardnode

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestScanPageCoversEveryHash pages through random hashes (with repeats)
// and checks that each page is exactly the hashes from its cursor to the
// next, at least as many as asked for but the last, and that the pages
// together are every element once.
func TestScanPageCoversEveryHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 10, 11, 1000, 5000} {
		for _, count := range []int64{1, 10, 100000} {
			hs := make([]uint64, n)
			for i := range hs {
				hs[i] = rng.Uint64()
				if i > 0 && rng.IntN(10) == 0 {
					hs[i] = hs[rng.IntN(i)] // a repeated hash
				}
			}
			if n > 2 {
				hs[0], hs[1] = 0, ^uint64(0)
			}
			seen := make([]int, n)
			cursor, pages := uint64(0), 0
			for {
				picked, next := scanPage(n, func(i int) uint64 { return hs[i] }, cursor, count)
				pages++
				for _, i := range picked {
					seen[i]++
					if hs[i] < cursor || next != 0 && hs[i] >= next {
						t.Fatalf("n=%d count=%d: hash %x on the page [%x, %x)", n, count, hs[i], cursor, next)
					}
				}
				want := max(int(count), (n+scanMaxPages-1)/scanMaxPages)
				if next != 0 && len(picked) < want {
					t.Fatalf("n=%d count=%d: a page of %d before the end, want %d", n, count, len(picked), want)
				}
				if next == 0 {
					break
				}
				cursor = next
			}
			for i, k := range seen {
				if k != 1 {
					t.Fatalf("n=%d count=%d: element %d returned %d times in %d pages", n, count, i, k, pages)
				}
			}
		}
	}
}

// TestCollectionScanUnderWrites scans a hash, a set and a sorted set too
// big for Redis's one-reply encodings, COUNT 20, while every page is
// followed by writes (new elements, removed ones, changed values and
// scores): every element there for the whole scan is returned, no
// element that never was is, and the scan takes many pages.
func TestCollectionScanUnderWrites(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	rc := n.client(2)
	for _, typ := range []string{"hash", "set", "zset"} {
		t.Run(typ, func(t *testing.T) {
			key := "k:" + typ
			add := func(m string, i int) {
				var err error
				switch typ {
				case "hash":
					err = rc.HSet(ctx, key, m, "v"+strconv.Itoa(i)).Err()
				case "set":
					err = rc.SAdd(ctx, key, m).Err()
				default:
					err = rc.ZAdd(ctx, key, redis.Z{Score: float64(i % 50), Member: m}).Err()
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			del := func(m string) {
				var err error
				switch typ {
				case "hash":
					err = rc.HDel(ctx, key, m).Err()
				case "set":
					err = rc.SRem(ctx, key, m).Err()
				default:
					err = rc.ZRem(ctx, key, m).Err()
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 1000; i++ {
				add(fmt.Sprintf("keep:%d", i), i)
				add(fmt.Sprintf("tmp:%d", i), i)
			}
			ever := map[string]bool{}
			for i := 0; i < 1000; i++ {
				ever[fmt.Sprintf("keep:%d", i)], ever[fmt.Sprintf("tmp:%d", i)] = true, true
			}
			got := map[string]bool{}
			cursor, pages := uint64(0), 0
			for {
				var page []string
				var next uint64
				var err error
				switch typ {
				case "hash":
					page, next, err = rc.HScan(ctx, key, cursor, "", 20).Result()
				case "set":
					page, next, err = rc.SScan(ctx, key, cursor, "", 20).Result()
				default:
					page, next, err = rc.ZScan(ctx, key, cursor, "", 20).Result()
				}
				if err != nil {
					t.Fatal(err)
				}
				step := 1
				if typ == "set" {
					step = 0
				}
				for i := 0; i < len(page); i += 1 + step {
					if !ever[page[i]] {
						t.Fatalf("page %d: %q was never an element", pages, page[i])
					}
					got[page[i]] = true
				}
				pages++
				if next == 0 {
					break
				}
				cursor = next
				for j := 0; j < 10; j++ { // writes between pages
					m := fmt.Sprintf("new:%d:%d", pages, j)
					ever[m] = true
					add(m, j)
					del(fmt.Sprintf("tmp:%d", (pages*10+j)%1000))
					add(fmt.Sprintf("keep:%d", (pages*37+j)%1000), pages+j) // a new value or score
				}
			}
			for i := 0; i < 1000; i++ {
				if m := fmt.Sprintf("keep:%d", i); !got[m] {
					t.Fatalf("%s never returned (%d pages)", m, pages)
				}
			}
			if pages < 50 {
				t.Fatalf("%d pages for 2000 elements at COUNT 20", pages)
			}
		})
	}
}

// TestCollectionScanMatch: MATCH over pages returns just the matching
// elements, all of them.
func TestCollectionScanMatch(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	rc := n.client(3)
	for i := 0; i < 500; i++ {
		if err := rc.SAdd(ctx, "s", fmt.Sprintf("m%d", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	cursor := uint64(0)
	for {
		page, next, err := rc.SScan(ctx, "s", cursor, "m1*", 10).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			if m[:2] != "m1" {
				t.Fatalf("%q does not match m1*", m)
			}
			got[m] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	// m1, m10-m19, m100-m199
	if len(got) != 111 {
		t.Fatalf("%d members match m1*, want 111", len(got))
	}
}
