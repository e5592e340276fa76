package etcdmap

import (
	"errors"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

func threeNodes() *rangemap.Map {
	m := &rangemap.Map{Epoch: 1, Shards: []rangemap.Shard{
		{Name: "s0", Start: 0, End: 1.0 / 3, Host: "h", Port: 1},
		{Name: "s1", Start: 1.0 / 3, End: 2.0 / 3, Host: "h", Port: 2},
		{Name: "s2", Start: 2.0 / 3, End: 1, Host: "h", Port: 3},
	}}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	return m
}

// MoveRange splits the entries at the range's ends and gives the part
// inside to the target; a move that would leave a node two ranges that
// are not adjacent breaks the map's rule.
func TestMoveRange(t *testing.T) {
	m := threeNodes()
	next, err := MoveRange(m, 0.25, 1.0/3, "h:2")
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Shards) != 4 || next.Shards[0].End != 0.25 || next.Shards[1].Name != "s0-2" || next.Shards[1].Addr() != "h:2" {
		t.Fatalf("map after the move: %+v", next.Shards)
	}
	if len(m.Shards) != 3 {
		t.Fatal("MoveRange changed its argument")
	}
	split, err := MoveRange(m, 0.1, 0.2, "h:3")
	if err != nil || len(nodeRanges(split, "h:3")) != 2 || len(nodeRanges(split, "h:1")) != 2 {
		t.Fatalf("a move leaving nodes two ranges each: %+v %v", split, err)
	}
	whole, err := MoveRange(m, 2.0/3, 1, "h:4")
	if err != nil || len(whole.Shards) != 3 || whole.Shards[2].Name != "s2" || whole.Shards[2].Port != 4 {
		t.Fatalf("a whole shard to a new node: %+v %v", whole, err)
	}
}

// rebalance runs planRebalance on m until it says balanced, each node's
// bytes given by bytesOf, checking every planned move against the map; it
// returns the final map and the number of moves.
func rebalance(t *testing.T, m *rangemap.Map, active []string, bytesOf func(m *rangemap.Map, addr string) int64) (*rangemap.Map, int) {
	t.Helper()
	for step := 0; ; step++ {
		live := map[string]int64{}
		for _, a := range active {
			live[a] = bytesOf(m, a)
		}
		lo, hi, from, to, err := planRebalance(m, active, live)
		if errors.Is(err, errBalanced) {
			return m, step
		}
		if err != nil {
			t.Fatal(err)
		}
		if step == 2*len(active) {
			t.Fatalf("move %d planned: [%v,%v) %s -> %s in %+v", step+1, lo, hi, from, to, m.Shards)
		}
		if owner, err := ownerOf(m, lo, hi); err != nil || owner != from || from == to {
			t.Fatalf("move [%v,%v) %s -> %s: the owner is %s (%v)", lo, hi, from, to, owner, err)
		}
		next, err := MoveRange(m, lo, hi, to)
		if err != nil {
			t.Fatalf("step %d: [%v,%v) %s -> %s: %v", step, lo, hi, from, to, err)
		}
		m = next
	}
}

func width(m *rangemap.Map, addr string) float64 {
	w := 0.0
	for _, r := range nodeRanges(m, addr) {
		w += r[1] - r[0]
	}
	return w
}

// evenBytes is a node's bytes spread evenly over the key space.
func evenBytes(m *rangemap.Map, addr string) int64 { return int64(width(m, addr) * 1e6) }

// Rebalancing three equal nodes and a new one is three moves, one from
// each, that end with a quarter of the key space on every node.
func TestPlanRebalanceAddNode(t *testing.T) {
	active := []string{"h:1", "h:2", "h:3", "h:4"}
	m, moves := rebalance(t, threeNodes(), active, evenBytes)
	if moves != 3 {
		t.Fatalf("balanced after %d moves, want 3: %+v", moves, m.Shards)
	}
	for _, a := range active {
		if w := width(m, a); w < 0.24 || w > 0.26 {
			t.Fatalf("node %s owns %v (%.3f) after the rebalance", a, nodeRanges(m, a), w)
		}
	}
}

// Nodes owning ranges that are not adjacent are rebalanced like any:
// after a move that leaves h:1 two ranges with h:3's between them, and a
// fourth node, every node ends with about a quarter; the node whose range
// touches the target's gives from that end.
func TestPlanRebalanceRangesNotAdjacent(t *testing.T) {
	m, err := MoveRange(threeNodes(), 0.1, 0.2, "h:3")
	if err != nil {
		t.Fatal(err)
	}
	if len(nodeRanges(m, "h:1")) != 2 {
		t.Fatalf("h:1 owns %v", nodeRanges(m, "h:1"))
	}
	active := []string{"h:1", "h:2", "h:3", "h:4"}
	m, moves := rebalance(t, m, active, evenBytes)
	if moves == 0 || moves > 4 {
		t.Fatalf("%d moves: %+v", moves, m.Shards)
	}
	for _, a := range active {
		if w := width(m, a); w < 0.23 || w > 0.27 {
			t.Fatalf("node %s owns %v (%.3f) after the rebalance: %+v", a, nodeRanges(m, a), w, m.Shards)
		}
	}

	// h:2 at [1/3,2/3) gives to h:1, whose range [0.2,1/3) ends where
	// h:2's starts: the move is [1/3, ...), joining h:1's range.
	m = threeNodes()
	m, _ = MoveRange(m, 0, 0.1, "h:3")
	lo, hi, from, to, err := planRebalance(m, []string{"h:1", "h:2", "h:3"}, map[string]int64{"h:1": 100, "h:2": 500, "h:3": 300})
	if err != nil || from != "h:2" || to != "h:1" || lo != 1.0/3 || hi <= lo || hi >= 2.0/3 {
		t.Fatalf("planned [%v,%v) %s -> %s (%v), want [1/3,x) h:2 -> h:1", lo, hi, from, to, err)
	}
}

// The bytes, not the widths, decide: a node holding most of the data on a
// narrow range gives a part of its range in proportion to its bytes.
func TestPlanRebalanceBytes(t *testing.T) {
	m := threeNodes()
	active := []string{"h:1", "h:2", "h:3"}
	// h:1 holds 600 on 1/3, h:2 and h:3 150 each: the mean is 300, h:1
	// gives 150 of its 600 bytes, a quarter of its width, to h:2 (the
	// least loaded, first by address), from the end touching h:2.
	lo, hi, from, to, err := planRebalance(m, active, map[string]int64{"h:1": 600, "h:2": 150, "h:3": 150})
	if err != nil || from != "h:1" || to != "h:2" || hi != 1.0/3 || lo < 0.249 || lo > 0.251 {
		t.Fatalf("planned [%v,%v) %s -> %s (%v), want [0.25,1/3) h:1 -> h:2", lo, hi, from, to, err)
	}
	if _, _, _, _, err := planRebalance(m, active, map[string]int64{"h:1": 310, "h:2": 300, "h:3": 290}); !errors.Is(err, errBalanced) {
		t.Fatalf("nodes within 5%% of the mean: %v", err)
	}
	// A node that owns nothing holds no load, whatever its disk holds.
	if _, _, from, to, err := planRebalance(m, append(active, "h:4"), map[string]int64{"h:1": 100, "h:2": 100, "h:3": 100, "h:4": 1000}); err != nil || to != "h:4" || from != "h:1" {
		t.Fatalf("planned %s -> %s (%v), want h:1 -> h:4", from, to, err)
	}
}

// An aborted move's copy left on its target is dropped only where the
// target does not own the range now.
func TestUnowned(t *testing.T) {
	m, err := MoveRange(threeNodes(), 0.1, 0.2, "h:2")
	if err != nil {
		t.Fatal(err)
	}
	got := unowned(m, 0.05, 0.5, "h:2")
	if len(got) != 2 || got[0] != [2]float64{0.05, 0.1} || got[1] != [2]float64{0.2, 1.0 / 3} {
		t.Fatalf("unowned: %v", got)
	}
	if got := unowned(m, 0.1, 0.2, "h:2"); len(got) != 0 {
		t.Fatalf("unowned of an owned range: %v", got)
	}
}
