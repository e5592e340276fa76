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

// load is one node's share of the key space for the rebalance planner.
type load struct {
	addr   string
	ranges [][2]float64 // adjacent entries joined, in order
	width  float64
	bytes  float64
}

// planRebalance picks the next move that evens out live bytes
// (docs/RESHARDING.md, "Rebalance"): from the most loaded node to the
// least loaded, the bytes the first has over the mean or the second lacks
// under it, whichever is less. A node's bytes are taken as spread evenly
// over its ranges (keys are placed by a hash; a node reports its live
// bytes, not a count per range), so the bytes become a width of its key
// space, cut from the end of one of its ranges: the one that touches a
// range of the target if there is one (the target's ranges join), else
// its widest. A range narrower than the width moves whole, and the next
// step goes on. A node's ranges need not be adjacent, and any range may go
// to any node. It returns the range and the source and target addresses;
// errBalanced when every node is within 5% of the mean (or the move would
// be under 1/1000 of the key space).
func planRebalance(m *rangemap.Map, active []string, live map[string]int64) (lo, hi float64, from, to string, err error) {
	nodes := make([]load, 0, len(active))
	total := 0.0
	for _, a := range active {
		n := load{addr: a, ranges: nodeRanges(m, a)}
		for _, r := range n.ranges {
			n.width += r[1] - r[0]
		}
		if n.width > 0 {
			// A node that owns nothing may hold a moved range's keys not
			// yet cleaned up: they are not its load.
			n.bytes = float64(live[a])
		}
		total += n.bytes
		nodes = append(nodes, n)
	}
	if len(nodes) < 2 {
		return 0, 0, "", "", errBalanced
	}
	if total <= 0 {
		// No data: balance the widths instead.
		for i := range nodes {
			nodes[i].bytes = nodes[i].width
		}
		total = 1
	}
	// The most loaded and the least loaded; ties go to the first address,
	// so that a plan is the same on every leader.
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].addr < nodes[j].addr })
	hiN, loN := 0, 0
	for i, n := range nodes {
		if n.bytes > nodes[hiN].bytes {
			hiN = i
		}
		if n.bytes < nodes[loN].bytes {
			loN = i
		}
	}
	mean := total / float64(len(nodes))
	src, dst := nodes[hiN], nodes[loN]
	if hiN == loN || (src.bytes-mean <= 0.05*mean && mean-dst.bytes <= 0.05*mean) || src.width <= 0 {
		return 0, 0, "", "", errBalanced
	}
	amount := min(src.bytes-mean, mean-dst.bytes)
	width := amount / src.bytes * src.width
	// The source's range to cut: the one touching a range of the target,
	// else its widest.
	pick, atStart := -1, false
	for i, r := range src.ranges {
		for _, t := range dst.ranges {
			if t[1] == r[0] || t[0] == r[1] {
				pick, atStart = i, t[1] == r[0]
			}
		}
		if pick >= 0 {
			break
		}
	}
	if pick < 0 {
		for i, r := range src.ranges {
			if pick < 0 || r[1]-r[0] > src.ranges[pick][1]-src.ranges[pick][0] {
				pick = i
			}
		}
	}
	r := src.ranges[pick]
	if width >= r[1]-r[0] {
		lo, hi = r[0], r[1]
	} else if atStart {
		lo, hi = r[0], roundPos(r[0]+width)
	} else {
		lo, hi = roundPos(r[1]-width), r[1]
	}
	if hi-lo < 0.001 {
		return 0, 0, "", "", errBalanced
	}
	return lo, hi, src.addr, dst.addr, nil
}

// errBalanced is planRebalance's "no move left".
var errBalanced = errors.New("balanced")

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
