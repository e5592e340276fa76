package etcdmap

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/shardkv/shardkv/rangemap"
)

// MoveRange returns m with [lo,hi) owned by the node at addr: the entries
// that straddle lo or hi are split there (the part inside gets a new name,
// as Split names it), and every entry inside gets addr. The map's rules
// decide what is allowed (rangemap.Map.Validate): the error says which
// rule a move would break.
func MoveRange(m *rangemap.Map, lo, hi float64, addr string) (*rangemap.Map, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || lo < 0 || hi > 1 || lo >= hi {
		return nil, fmt.Errorf("range [%s,%s) is not inside [0,1) with lo < hi", rangemap.FormatPosition(lo), rangemap.FormatPosition(hi))
	}
	host, port, err := hostPort(addr)
	if err != nil {
		return nil, err
	}
	out := cloneMap(m)
	for _, at := range []float64{lo, hi} {
		i := out.Find(at)
		if at < 1 && out.Shards[i].Start < at {
			if out, err = Split(out, out.Shards[i].Name, at, ""); err != nil {
				return nil, err
			}
		}
	}
	for i := range out.Shards {
		if s := &out.Shards[i]; s.Start >= lo && s.End <= hi {
			s.Host, s.Port = host, port
		}
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

func cloneMap(m *rangemap.Map) *rangemap.Map {
	out := *m
	out.Shards = append([]rangemap.Shard(nil), m.Shards...)
	return &out
}

// ownerOf returns the address that owns all of [lo,hi) under m, or an
// error naming why there is none.
func ownerOf(m *rangemap.Map, lo, hi float64) (string, error) {
	addr := ""
	for _, s := range m.Shards {
		if s.End <= lo || s.Start >= hi {
			continue
		}
		if addr != "" && s.Addr() != addr {
			return "", fmt.Errorf("[%s,%s) spans two nodes (%s and %s): move each part on its own",
				rangemap.FormatPosition(lo), rangemap.FormatPosition(hi), addr, s.Addr())
		}
		addr = s.Addr()
	}
	return addr, nil
}

// span is one node's place on the key space for the rebalance planner.
type span struct {
	addr       string
	start, end float64
	bytes      float64
}

// planRebalance picks the next move that evens out live bytes
// (docs/RESHARDING.md, "Rebalance"): the nodes in the order of their
// ranges, empty nodes after them at 1.0, each node's bytes taken as spread
// evenly over its range. It returns the range and the source and target
// addresses; errBalanced when the nodes are balanced enough, errSplitNode
// when a node owns ranges that are not adjacent.
func planRebalance(m *rangemap.Map, active []string, live map[string]int64) (lo, hi float64, from, to string, err error) {
	var spans []span
	seen := map[string]bool{}
	for _, s := range m.Shards {
		if n := len(spans); n > 0 && spans[n-1].addr == s.Addr() {
			spans[n-1].end = s.End
			continue
		}
		if seen[s.Addr()] {
			return 0, 0, "", "", errSplitNode
		}
		seen[s.Addr()] = true
		spans = append(spans, span{addr: s.Addr(), start: s.Start, end: s.End})
	}
	empty := []string{}
	for _, a := range active {
		if !seen[a] {
			empty = append(empty, a)
		}
	}
	sort.Strings(empty)
	for _, a := range empty {
		spans = append(spans, span{addr: a, start: 1, end: 1})
	}
	if len(spans) < 2 {
		return 0, 0, "", "", errBalanced
	}
	total := 0.0
	for i := range spans {
		spans[i].bytes = float64(live[spans[i].addr])
		total += spans[i].bytes
	}
	if total <= 0 {
		// No data: balance the widths instead.
		for i := range spans {
			spans[i].bytes = spans[i].end - spans[i].start
		}
		total = 1
	}
	target := total / float64(len(spans))
	// cumAt is the bytes below position p; posAt its inverse.
	cumAt := func(p float64) float64 {
		c := 0.0
		for _, s := range spans {
			switch {
			case p >= s.end:
				c += s.bytes
			case p > s.start:
				c += s.bytes * (p - s.start) / (s.end - s.start)
			}
		}
		return c
	}
	posAt := func(c float64) float64 {
		for _, s := range spans {
			if s.end > s.start && c <= s.bytes {
				return s.start + (s.end-s.start)*c/s.bytes
			}
			c -= s.bytes
		}
		return 1
	}
	best, bestGap, bestGives := -1, 0.0, false
	var bestLo, bestHi float64
	for k := 0; k+1 < len(spans); k++ {
		cur := spans[k].end // the boundary between spans k and k+1
		want := roundPos(posAt(target * float64(k+1)))
		gap := math.Abs(cumAt(cur) - target*float64(k+1))
		if gap <= 0.05*target || math.Abs(cur-want) < 0.001 {
			continue
		}
		var l, h float64
		gives := want < cur // node k gives to node k+1
		if gives {
			// Node k gives [want,cur) to node k+1; it keeps [start,want).
			l, h = max(want, spans[k].start), cur
			if l <= spans[k].start {
				continue
			}
		} else {
			// Node k+1 gives [cur,want) to node k.
			l, h = cur, min(want, spans[k+1].end)
			if h >= spans[k+1].end || spans[k+1].end <= spans[k+1].start {
				continue
			}
		}
		if gap > bestGap {
			best, bestGap, bestGives, bestLo, bestHi = k, gap, gives, l, h
		}
	}
	if best < 0 {
		return 0, 0, "", "", errBalanced
	}
	from, to = spans[best].addr, spans[best+1].addr
	if !bestGives {
		from, to = to, from
	}
	return bestLo, bestHi, from, to, nil
}

// errBalanced is planRebalance's "no move left".
var errBalanced = errors.New("balanced")

// errSplitNode is planRebalance's refusal of a node owning ranges that
// are not adjacent.
var errSplitNode = errors.New("a node owns ranges that are not adjacent: rebalance moves edges between neighbouring nodes only (move such ranges with shardkv move)")

// roundPos keeps positions short in the map and in logs (1/2^20 of the
// key space), leaving 0 and 1 as they are.
func roundPos(p float64) float64 {
	if p <= 0 || p >= 1 {
		return p
	}
	r := math.Round(p*(1<<20)) / (1 << 20)
	if r <= 0 || r >= 1 {
		return p
	}
	return r
}
