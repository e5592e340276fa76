package shardnode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

// An assignment at an epoch (the etcd map's): an older epoch is refused,
// a newer one replaces the range without FORCE, the epoch is persisted
// with the assignment, and a key outside the range is refused with the
// node's epoch in the WRONGSHARD error. An assignment without EPOCH (a
// static map) keeps the node's epoch.
func TestShardAssignEpoch(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.5", "0", "EPOCH", "x"}, nai},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.5", "0", "EPOCH"}, syn},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.5", "0", "EPOCH", "3"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.5", "0", "EPOCH", "3"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.5", "0"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.25", "0", "EPOCH", "2"},
			er("ERR stale epoch 2: shard node is at epoch 3 (s1 [0,0.5) size 0 epoch 3)")},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.25", "0", "EPOCH", "3"},
			er("ERR shard node already assigned s1 [0,0.5) size 0 epoch 3; add FORCE to replace it")},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.25", "0"},
			er("ERR shard node already assigned s1 [0,0.5) size 0 epoch 3; add FORCE to replace it")},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.25", "100", "EPOCH", "4"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0", "0.25", "100", "HASHTAGS", "1", "EPOCH", "5"},
			er("ERR shard node already assigned s1 [0,0.25) size 100 epoch 4; add FORCE to replace it")},
	} {
		if got := c.do(tc.args...); !replyMatches(got, tc.want, false) {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil || !strings.Contains(string(data), `"epoch": 4`) {
		t.Fatalf("assignment.json: %s, %v", data, err)
	}
	if info := c.do("INFO", "shard"); !strings.Contains(info, "shard_epoch:4\r\n") {
		t.Errorf("INFO shard lacks the epoch:\n%s", info)
	}
	other := keyIn(t, "other", 0.5, 1)
	want := er("WRONGSHARD " + rangemap.FormatPosition(rangemap.PositionString(other)) + " not in [0,0.25) of s1 epoch 4")
	if got := c.do("GET", other); got != want {
		t.Errorf("GET outside the range: %q, want %q", got, want)
	}
	// After a restart the node is still at its epoch.
	n.stop()
	c = startNode(t, dir, nil).raw()
	if got := c.do("SHARD.ASSIGN", "s1", "0", "0.25", "100", "EPOCH", "3"); !strings.HasPrefix(got, "-ERR stale epoch 3: shard node is at epoch 4") {
		t.Errorf("older epoch after a restart: %q", got)
	}
	if got := c.do("GET", other); got != want {
		t.Errorf("GET outside the range after a restart: %q, want %q", got, want)
	}
}
