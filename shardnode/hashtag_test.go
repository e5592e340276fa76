package shardnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

// tagKeyIn returns a key "{tag}rest" whose tag position lies in [lo,hi)
// and whose whole-key position lies in [wlo,whi): a key the two placement
// modes give to different halves.
func tagKeyIn(t *testing.T, lo, hi, wlo, whi float64) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		tag := fmt.Sprintf("t%d", i)
		if p := rangemap.PositionString(tag); !(lo <= p && p < hi) {
			continue
		}
		for j := 0; j < 1000; j++ {
			k := fmt.Sprintf("{%s}:%d", tag, j)
			if p := rangemap.PositionString(k); wlo <= p && p < whi {
				return k
			}
		}
	}
	t.Fatalf("no tagged key with tag in [%v,%v) and whole key in [%v,%v)", lo, hi, wlo, whi)
	return ""
}

// A node under hash tags owns keys by their tag's position, refuses the
// others with the tag's position in WRONGSHARD, and shows only the keys it
// owns to SCAN, KEYS, RANDOMKEY and DBSIZE.
func TestHashTagOwnership(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0", "HASHTAGS", "1"); got != ok {
		t.Fatal(got)
	}
	// Owned by its tag, though its whole key lies outside the range.
	mine := tagKeyIn(t, 0.5, 1, 0, 0.5)
	// Outside by its tag, though its whole key lies inside.
	other := tagKeyIn(t, 0, 0.5, 0.5, 1)
	wrong := er("WRONGSHARD " + rangemap.FormatPosition(rangemap.PositionString(rangemap.TagString(other))) + " not in [0.5,1) of s1")
	for _, args := range [][]string{{"SET", other, "v"}, {"GET", other}, {"MSET", mine, "1", other, "2"}, {"RENAME", mine, other}} {
		if got := c.do(args...); got != wrong {
			t.Errorf("%q: got %q, want %q", args, got, wrong)
		}
	}
	if got := c.do("SET", mine, "v"); got != ok {
		t.Fatalf("SET %s (owned by its tag): %q", mine, got)
	}
	untagged := keyIn(t, "plain", 0.5, 1)
	if got := c.do("SET", untagged, "v"); got != ok {
		t.Fatalf("SET %s: %q", untagged, got)
	}
	if got := c.do("DBSIZE"); got != in(2) {
		t.Errorf("DBSIZE: %q", got)
	}
	keys := c.do("KEYS", "*")
	if !strings.Contains(keys, mine) || !strings.Contains(keys, untagged) {
		t.Errorf("KEYS * = %q", keys)
	}
	if got := c.do("SCAN", "0", "COUNT", "100"); !strings.Contains(got, mine) || !strings.Contains(got, untagged) {
		t.Errorf("SCAN 0 = %q", got)
	}
	if got := c.do("INFO", "shard"); !strings.Contains(got, "shard_hash_tags:1\r\n") {
		t.Errorf("INFO shard: %q", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil || !strings.Contains(string(data), `"hash_tags": true`) {
		t.Fatalf("assignment.json: %s, %v", data, err)
	}

	// The mode is part of the assignment: changing it needs FORCE.
	refused := er("ERR shard node already assigned s1 [0.5,1) size 0 hash_tags 1; add FORCE to replace it")
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0"); got != refused {
		t.Errorf("SHARD.ASSIGN without HASHTAGS: %q, want %q", got, refused)
	}
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0", "HASHTAGS", "1"); got != ok {
		t.Errorf("the same assignment again: %q", got)
	}
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0", "HASHTAGS", "2"); got != syn {
		t.Errorf("HASHTAGS 2: %q", got)
	}

	// The mode survives a restart.
	c.close()
	n.stop()
	n = startNode(t, dir, nil)
	c = n.raw()
	if got := c.do("GET", mine); got != bs("v") {
		t.Errorf("GET %s after restart: %q", mine, got)
	}
	if got := c.do("GET", other); got != wrong {
		t.Errorf("GET %s after restart: %q", other, got)
	}
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0", "HASHTAGS", "0", "FORCE"); got != ok {
		t.Fatalf("forced whole-key assignment: %q", got)
	}
	// Whole-key positions: the tagged key is now outside, and hidden.
	if got := c.do("DBSIZE"); got != in(1) {
		t.Errorf("DBSIZE under whole-key positions: %q", got)
	}
	if got := c.do("GET", mine); !strings.HasPrefix(got, "-WRONGSHARD ") {
		t.Errorf("GET %s under whole-key positions: %q", mine, got)
	}
}
