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
	if _, _, _, _, err := planRebalance(split, []string{"h:1", "h:2", "h:3"}, nil); !errors.Is(err, errSplitNode) {
		t.Fatalf("rebalance of a map with a split node: %v", err)
	}
	whole, err := MoveRange(m, 2.0/3, 1, "h:4")
	if err != nil || len(whole.Shards) != 3 || whole.Shards[2].Name != "s2" || whole.Shards[2].Port != 4 {
		t.Fatalf("a whole shard to a new node: %+v %v", whole, err)
	}
}

// Rebalancing three equal nodes and a new one is three edge moves, each
// leaving every node one range, that end with four quarters.
func TestPlanRebalanceAddNode(t *testing.T) {
	m := threeNodes()
	active := []string{"h:1", "h:2", "h:3", "h:4"}
	for step := 0; ; step++ {
		live := map[string]int64{}
		for _, a := range active {
			for _, r := range nodeRanges(m, a) {
				live[a] += int64((r[1] - r[0]) * 1e6) // bytes spread evenly
			}
		}
		lo, hi, from, to, err := planRebalance(m, active, live)
		if err != nil {
			if step != 3 {
				t.Fatalf("balanced after %d moves, want 3", step)
			}
			break
		}
		if step == 3 {
			t.Fatalf("a 4th move planned: [%v,%v) %s -> %s", lo, hi, from, to)
		}
		if owner, err := ownerOf(m, lo, hi); err != nil || owner != from {
			t.Fatalf("move [%v,%v) from %s: the owner is %s (%v)", lo, hi, from, owner, err)
		}
		next, err := MoveRange(m, lo, hi, to)
		if err != nil {
			t.Fatalf("step %d: [%v,%v) %s -> %s: %v", step, lo, hi, from, to, err)
		}
		m = next
	}
	for _, a := range active {
		rs := nodeRanges(m, a)
		if len(rs) != 1 || rs[0][1]-rs[0][0] < 0.24 || rs[0][1]-rs[0][0] > 0.26 {
			t.Fatalf("node %s owns %v after the rebalance", a, rs)
		}
	}
}
