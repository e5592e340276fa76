package shardnode

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

// A node given two ranges that are not adjacent (SHARD.ASSIGN ... RANGE)
// serves the keys of both and refuses the keys between them, naming both
// ranges; the list survives a restart, INFO shows each range, the size
// limit is their sum, DBSIZE counts the keys of both, and a newer epoch
// that drops a range makes its keys the node's no longer.
func TestShardAssignRanges(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	two := []string{"SHARD.ASSIGN", "a", "0", "0.25", "1000", "RANGE", "c", "0.5", "0.75", "500", "EPOCH", "2"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "0", "RANGE", "c", "0.5", "0.75"}, syn},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "0", "RANGE", "c", "0.5", "x", "0"}, er("ERR start and end must be numbers in [0,1]")},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "0", "RANGE", "c", "0.5", "0.75", "x"}, nai},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.5", "0", "RANGE", "c", "0.25", "0.75", "0"}, er("ERR invalid assignment: ranges a and c overlap")},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "0", "RANGE", "a", "0.5", "0.75", "0"}, er("ERR invalid assignment: shard name a given twice")},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "0", "RANGE", "c", "0.75", "0.5", "0"}, er("ERR invalid assignment: range [0.75,0.5) is not inside [0,1) with start < end")},
		{two, ok},
		{two, ok},
		// The ranges in another order are the same assignment.
		{[]string{"SHARD.ASSIGN", "c", "0.5", "0.75", "500", "RANGE", "a", "0", "0.25", "1000", "EPOCH", "2"}, ok},
		{[]string{"SHARD.ASSIGN", "a", "0", "0.25", "1000", "EPOCH", "2"},
			er("ERR shard node already assigned a [0,0.25) size 1000, c [0.5,0.75) size 500 epoch 2; add FORCE to replace it")},
	} {
		if got := c.do(tc.args...); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	inA, inC := keyIn(t, "ka", 0, 0.25), keyIn(t, "kc", 0.5, 0.75)
	between, after := keyIn(t, "kb", 0.25, 0.5), keyIn(t, "kd", 0.75, 1)
	for _, k := range []string{inA, inC} {
		if got := c.do("SET", k, "v"); got != ok {
			t.Errorf("SET %s: %q", k, got)
		}
	}
	refusal := func(k string, epoch string) string {
		return er("WRONGSHARD " + rangemap.FormatPosition(rangemap.PositionString(k)) +
			" not in [0,0.25) of a, [0.5,0.75) of c epoch " + epoch)
	}
	for _, k := range []string{between, after} {
		if got, want := c.do("SET", k, "v"), refusal(k, "2"); got != want {
			t.Errorf("SET %s outside the ranges: %q, want %q", k, got, want)
		}
	}
	if got := c.do("DBSIZE"); got != ":2\r\n" {
		t.Errorf("DBSIZE: %q", got)
	}
	info := c.do("INFO", "shard")
	for _, want := range []string{"shard_name:a\r\n", "shard_start:0\r\n", "shard_end:0.25\r\n", "shard_size_limit:1500\r\n",
		"shard_ranges:2\r\n", "shard_range_0:name=a,start=0,end=0.25,size=1000\r\n", "shard_range_1:name=c,start=0.5,end=0.75,size=500\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO shard lacks %q:\n%s", want, info)
		}
	}
	var doc Assignment
	data, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil || json.Unmarshal(data, &doc) != nil || len(doc.Ranges) != 2 || doc.Name != "a" {
		t.Fatalf("assignment.json: %s, %v", data, err)
	}

	n.stop()
	c = startNode(t, dir, nil).raw()
	if got := c.do(two...); got != ok {
		t.Errorf("the same ranges after a restart: %q", got)
	}
	if got := c.do("GET", inC); got != "$1\r\nv\r\n" {
		t.Errorf("GET %s after a restart: %q", inC, got)
	}
	if got, want := c.do("GET", between), refusal(between, "2"); got != want {
		t.Errorf("GET between the ranges after a restart: %q, want %q", got, want)
	}

	// Epoch 3 drops c (moved away) and takes the range between.
	if got := c.do("SHARD.ASSIGN", "a", "0", "0.25", "1000", "RANGE", "b", "0.25", "0.5", "0", "EPOCH", "3"); got != ok {
		t.Fatalf("newer epoch: %q", got)
	}
	want := er("WRONGSHARD " + rangemap.FormatPosition(rangemap.PositionString(inC)) + " not in [0,0.25) of a, [0.25,0.5) of b epoch 3")
	if got := c.do("GET", inC); got != want {
		t.Errorf("GET of the dropped range: %q, want %q", got, want)
	}
	if got := c.do("SET", between, "w"); got != ok {
		t.Errorf("SET in the range taken: %q", got)
	}
	if info := c.do("INFO", "shard"); !strings.Contains(info, "shard_size_limit:0\r\n") {
		t.Errorf("a range without a limit leaves the node without one:\n%s", info)
	}
	// Adjacent ranges together cover [0,0.5): KEYS shows both.
	if got := c.do("KEYS", "*"); !replyMatches(got, "*2\r\n$"+itoa(len(inA))+"\r\n"+inA+"\r\n$"+itoa(len(between))+"\r\n"+between+"\r\n", true) {
		t.Errorf("KEYS: %q", got)
	}
}

// The one-range form and an assignment.json of one range read as before:
// the file has no "ranges".
func TestShardAssignOneRangeFile(t *testing.T) {
	dir := t.TempDir()
	c := startNode(t, dir, nil).raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.5", "7"); got != ok {
		t.Fatal(got)
	}
	data, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil || strings.Contains(string(data), "ranges") {
		t.Fatalf("assignment.json: %s, %v", data, err)
	}
	if info := c.do("INFO", "shard"); !strings.Contains(info, "shard_ranges:1\r\nshard_range_0:name=s,start=0,end=0.5,size=7\r\n") {
		t.Errorf("INFO shard:\n%s", info)
	}
}
