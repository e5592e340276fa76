package cmdtable

import (
	"strings"
	"testing"
)

// TestRowsAreConsistent checks what the servers rely on: a split or fan-out
// row says how its replies merge and no other row does, key positions fit
// the arity, and names are unique and lower case.
func TestRowsAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Commands {
		if seen[c.Name] {
			t.Errorf("%s: listed twice", c.Name)
		}
		seen[c.Name] = true
		if Lookup([]byte(c.Name)) != Lookup([]byte(upper(c.Name))) {
			t.Errorf("%s: lookup depends on case", c.Name)
		}
		// A same-node row with a merge is gathered by the proxy when its
		// keys span shards (MergeZSetOp).
		fanned := c.Route == RouteSplit || c.Route == RouteFanout || c.Route == RouteSameNode && c.Merge == MergeZSetOp
		if fanned != (c.Merge != MergeNone) {
			t.Errorf("%s: route %d with merge %d", c.Name, c.Route, c.Merge)
		}
		if c.Route == RouteSplit && c.FirstKey <= 0 {
			t.Errorf("%s: split without key positions", c.Name)
		}
		if c.FirstKey > 0 && c.Step <= 0 {
			t.Errorf("%s: keys without a step", c.Name)
		}
		if c.Multi == MultiNow && c.Flags&FlagNoMulti != 0 {
			t.Errorf("%s: runs at once in MULTI and is refused in it", c.Name)
		}
	}
}

func TestKeyIndexes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args string
		want []int
	}{
		{"get", "get k", []int{1}},
		{"mset", "mset a 1 b 2", []int{1, 3}},
		{"del", "del a b c", []int{1, 2, 3}},
		{"rename", "rename a b", []int{1, 2}},
		{"copy", "copy a b db 0", []int{1, 2}},
		{"object", "object encoding k", []int{2}},
		{"object", "object help", nil},
		{"ping", "ping", nil},
		{"sintercard", "sintercard 2 a b limit 1", []int{2, 3}},
		{"sintercard", "sintercard 1 a", []int{2}},
		{"sintercard", "sintercard 3 a b", nil},
		{"sintercard", "sintercard 0 a", nil},
		{"sintercard", "sintercard x a", nil},
		{"sinterstore", "sinterstore d a b", []int{1, 2, 3}},
		{"smove", "smove a b m", []int{1, 2}},
	} {
		c := Lookup([]byte(tc.name))
		var args [][]byte
		for _, a := range strings.Fields(tc.args) {
			args = append(args, []byte(a))
		}
		got := c.KeyIndexes(args)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.args, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.args, got, tc.want)
			}
		}
	}
	if Lookup([]byte("mset")).PairsOK(4) || !Lookup([]byte("mset")).PairsOK(5) {
		t.Error("PairsOK(mset)")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
