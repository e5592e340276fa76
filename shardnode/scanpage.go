package shardnode

import (
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Paging of HSCAN, SSCAN and ZSCAN over a collection too big for Redis's
// one-reply encodings. The cursor is the next element hash (xxhash64 of
// the field or member) to visit, as SCAN's is the next key hash: a page
// returns every element whose hash is from the cursor up to where the
// page ends, so an element there for the whole scan is returned (once,
// unless the scan is restarted), whatever is written meanwhile.
// Elements with the same hash are never split between pages.
//
// A page costs one pass over the collection (the key directory keeps no
// order by hash), so a page is at least 1/scanMaxPages of the collection,
// whatever COUNT says: a whole scan costs at most scanMaxPages passes.
// COUNT is a hint in Redis too ("the amount of work"); it may return more.
const scanMaxPages = 256

// scanPage picks, of n elements whose hashes hashOf gives, the page from
// cursor: their indexes, in no particular order, and the cursor after
// them (0 once the page reaches the last hash).
func scanPage(n int, hashOf func(i int) uint64, cursor uint64, count int64) (picked []int, next uint64) {
	want := max(int(min(count, 1<<20)), (n+scanMaxPages-1)/scanMaxPages, 1)
	type hi struct {
		h uint64
		i int
	}
	cand := make([]hi, 0, min(n, 2*want+16))
	hs := make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		if h := hashOf(i); h >= cursor {
			cand = append(cand, hi{h, i})
			hs = append(hs, h)
		}
	}
	if len(hs) <= want {
		picked = make([]int, len(cand))
		for j, c := range cand {
			picked[j] = c.i
		}
		return picked, 0
	}
	last := selectNth(hs, want-1)
	for _, c := range cand {
		if c.h <= last {
			picked = append(picked, c.i)
		}
	}
	if last == ^uint64(0) {
		return picked, 0
	}
	return picked, last + 1
}

// selectNth returns the k-th smallest of s (0-based), reordering s.
func selectNth(s []uint64, k int) uint64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		// Median of three as the pivot; hashes are random, so this
		// rarely degrades.
		mid := int(uint(lo+hi) >> 1)
		p := median3(s[lo], s[mid], s[hi])
		i, j := lo, hi
		for i <= j {
			for s[i] < p {
				i++
			}
			for s[j] > p {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}

func median3(a, b, c uint64) uint64 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	if a > b {
		return a
	}
	return b
}

func elemHash(b []byte) uint64 { return xxhash.Sum64(b) }

// scanCursorReply starts a *SCAN reply: the cursor, then an array of n.
func (c *client) scanCursorReply(next uint64, n int) {
	c.array(2)
	var buf [20]byte
	c.bulk(strconv.AppendUint(buf[:0], next, 10))
	c.array(n)
}
