package shardnode

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeMoves is a Config.MoveState that answers from a map and counts the
// questions.
type fakeMoves struct {
	mu     sync.Mutex
	states map[string]string
	err    error
	asked  map[string]int
}

func (f *fakeMoves) set(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[id] = state
}

func (f *fakeMoves) state(_ context.Context, id string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[id]++
	if f.err != nil {
		return "", false, f.err
	}
	s, ok := f.states[id]
	return s, ok, nil
}

func (f *fakeMoves) askedTimes(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[id]
}

const tryAgainFenced = "-" + errFenced + "\r\n"

// twoRangeNode starts a node in dir given [0,0.5) and [0.5,1) at epoch 4.
func twoRangeNode(t *testing.T, dir string) (*testNode, *rawConn) {
	n := startNode(t, dir, nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.5", "0", "RANGE", "t", "0.5", "1", "0", "EPOCH", "4"); got != ok {
		t.Fatal(got)
	}
	return n, c
}

// A fence is persisted before its +OK and holds after a restart; it ends
// by SHARD.UNFENCE ID, or by an assignment at a newer epoch that drops its
// range (and then fence.json is gone), not by one that keeps the range;
// the syntax errors.
func TestFenceDurable(t *testing.T) {
	dir := t.TempDir()
	n, c := twoRangeNode(t, dir)
	in, out := keyIn(t, "fin", 0.5, 0.75), keyIn(t, "fout", 0, 0.5)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.FENCE", "0.5", "0.75", "TIMEOUT"}, syn},
		{[]string{"SHARD.FENCE", "0.5", "0.75", "TIMEOUT", "-1"}, nai},
		{[]string{"SHARD.FENCE", "0.5", "0.75", "EPOCH", "x"}, nai},
		{[]string{"SHARD.FENCE", "0.5", "0.75", "WHAT", "1"}, syn},
		{[]string{"SHARD.UNFENCE", "ID"}, syn},
		{[]string{"SHARD.UNFENCE", "0.5", "0.75", "x"}, syn},
		{[]string{"SHARD.FENCE", "0.5", "0.75", "TIMEOUT", "0", "ID", "m1", "EPOCH", "4"}, ok},
		{[]string{"SHARD.FENCE", "0.5", "0.75", "TIMEOUT", "0", "ID", "m1", "EPOCH", "4"}, ok}, // redone: the same fence
	} {
		if got := c.do(tc.args...); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, fenceFile))
	if err != nil || strings.Count(string(data), `"id": "m1"`) != 1 || !strings.Contains(string(data), `"epoch": 4`) {
		t.Fatalf("fence.json: %s %v", data, err)
	}
	if got := c.do("SET", in, "x"); got != tryAgainFenced {
		t.Errorf("write to the fenced range: %q", got)
	}

	n.stop()
	n = startNode(t, dir, nil)
	c = n.raw()
	if got := c.do("SET", in, "x"); got != tryAgainFenced {
		t.Errorf("write to the fenced range after a restart: %q", got)
	}
	if info := c.do("INFO", "shard"); !strings.Contains(info, "shard_fences:1\r\nshard_fence_0:start=0.5,end=0.75,id=m1,epoch=4,timeout_ms=0\r\n") {
		t.Errorf("INFO shard after a restart:\n%s", info)
	}
	if got := c.do("SET", out, "x"); got != ok {
		t.Errorf("write outside the fence after a restart: %q", got)
	}
	// A newer epoch that keeps the range keeps the fence.
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.5", "0", "RANGE", "t", "0.5", "1", "10", "EPOCH", "5"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", in, "x"); got != tryAgainFenced {
		t.Errorf("write after an assignment that keeps the range: %q", got)
	}
	if got := c.do("SHARD.UNFENCE", "ID", "other"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", in, "x"); got != tryAgainFenced {
		t.Errorf("write after unfencing another id: %q", got)
	}
	if got := c.do("SHARD.UNFENCE", "ID", "m1"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", in, "y"); got != ok {
		t.Errorf("write after SHARD.UNFENCE ID: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, fenceFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fence.json after the last unfence: %v", err)
	}

	// The move commits: epoch 6 gives [0.5,1) to another node.
	if got := c.do("SHARD.FENCE", "0.5", "1", "ID", "m2", "EPOCH", "5"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.5", "0", "EPOCH", "6"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", in, "z"); !strings.HasPrefix(got, "-WRONGSHARD ") || !strings.HasSuffix(got, " epoch 6\r\n") {
		t.Errorf("write to the moved range after the switch: %q, want WRONGSHARD at epoch 6", got)
	}
	if _, err := os.Stat(filepath.Join(dir, fenceFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fence.json after the assignment without the range: %v", err)
	}
	n.stop()
	c = startNode(t, dir, nil).raw()
	if got := c.do("SET", in, "z"); !strings.HasPrefix(got, "-WRONGSHARD ") {
		t.Errorf("after a restart: %q", got)
	}
}

// A fence of a move held past its timeout asks the move's state: aborted,
// the node unfences; committed, it stays fenced (and stops asking); no
// record, another state or an error, it stays fenced and asks again.
// Without a state reader (no etcd) it stays. A fence without an id is
// never asked about.
func TestFenceTimeoutReadsMoveState(t *testing.T) {
	moves := &fakeMoves{states: map[string]string{}, asked: map[string]int{}}
	n := startNode(t, "", func(c *Config) { c.MoveState = moves.state })
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "0", "EPOCH", "2"); got != ok {
		t.Fatal(got)
	}
	kAbort, kSwitch, kNone := keyIn(t, "a", 0, 0.25), keyIn(t, "b", 0.25, 0.5), keyIn(t, "c", 0.5, 0.75)
	moves.set("ab", "fence")
	moves.set("sw", "switched")
	for _, args := range [][]string{
		{"SHARD.FENCE", "0", "0.25", "TIMEOUT", "20", "ID", "ab"},
		{"SHARD.FENCE", "0.25", "0.5", "TIMEOUT", "20", "ID", "sw"},
		{"SHARD.FENCE", "0.5", "0.75", "TIMEOUT", "20"},
	} {
		if got := c.do(args...); got != ok {
			t.Fatalf("%q: %q", args, got)
		}
	}
	// "fence" decides nothing: the node asks again while it lasts.
	waitFor(t, func() bool { return moves.askedTimes("ab") >= 2 }, "the node asks twice about move ab")
	waitFor(t, func() bool { return moves.askedTimes("sw") >= 1 }, "the node asks about move sw")
	for _, k := range []string{kAbort, kSwitch, kNone} {
		if got := c.do("SET", k, "v"); got != tryAgainFenced {
			t.Errorf("SET %s while the moves are undecided: %q", k, got)
		}
	}
	moves.set("ab", "aborted")
	waitFor(t, func() bool { return c.do("SET", kAbort, "v") == ok }, "the aborted move's range is unfenced")
	if got := c.do("SET", kSwitch, "v"); got != tryAgainFenced {
		t.Errorf("SET of the committed move's range: %q", got)
	}
	asked := moves.askedTimes("sw")
	if got := c.do("SET", kNone, "v"); got != tryAgainFenced {
		t.Errorf("SET of the fence without an id: %q", got)
	}
	// The committed move's fence ends with the assignment without it.
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.25", "0", "RANGE", "u", "0.5", "1", "0", "EPOCH", "3"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", kSwitch, "v"); !strings.HasPrefix(got, "-WRONGSHARD ") {
		t.Errorf("SET of the committed move's range after the switch: %q", got)
	}
	if got := c.do("SET", kNone, "v"); got != tryAgainFenced {
		t.Errorf("the fence of a range the node keeps stays: %q", got)
	}
	if moves.askedTimes("sw") != asked {
		t.Errorf("the node kept asking about a committed move")
	}

	// A missing record or an error keeps the fence.
	moves.mu.Lock()
	moves.err = errors.New("etcd down")
	moves.mu.Unlock()
	if got := c.do("SHARD.FENCE", "0", "0.25", "TIMEOUT", "20", "ID", "gone"); got != ok {
		t.Fatal(got)
	}
	waitFor(t, func() bool { return moves.askedTimes("gone") >= 2 }, "the node asks about move gone twice")
	moves.mu.Lock()
	moves.err = nil
	moves.mu.Unlock()
	before := moves.askedTimes("gone")
	waitFor(t, func() bool { return moves.askedTimes("gone") > before }, "the node asks about move gone once more")
	if got := c.do("SET", kAbort, "v"); got != tryAgainFenced {
		t.Errorf("SET while the move's record is missing: %q", got)
	}
}

// Without a state reader a fence of a move outlives its timeout.
func TestFenceTimeoutWithoutEtcd(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "0"); got != ok {
		t.Fatal(got)
	}
	k := keyIn(t, "k", 0, 0.5)
	if got := c.do("SHARD.FENCE", "0", "0.5", "TIMEOUT", "1", "ID", "m"); got != ok {
		t.Fatal(got)
	}
	waitFor(t, func() bool { return strings.Contains(n.logs.String(), "fence held past its timeout") },
		"the node logs the fence past its timeout")
	if got := c.do("SET", k, "v"); got != tryAgainFenced {
		t.Errorf("SET after the timeout without etcd: %q", got)
	}
}

// A crash between the write of an assignment that drops a fenced range
// and the write of fence.json leaves both files: at start the assignment
// at the newer epoch ends the fence, and a fence of a range the node
// still owns stays.
func TestFenceEndedByAssignmentAtStart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "0.5", "0", "EPOCH", "3"); got != ok {
		t.Fatal(got)
	}
	n.stop()
	doc := `{"fences": [{"lo": 0.5, "hi": 1, "id": "m", "epoch": 2, "timeout_ms": 100},
		{"lo": 0.25, "hi": 0.5, "id": "k", "epoch": 2, "timeout_ms": 100}]}`
	if err := os.WriteFile(filepath.Join(dir, fenceFile), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, nil)
	c = n.raw()
	if got := c.do("SET", keyIn(t, "k", 0.25, 0.5), "v"); got != tryAgainFenced {
		t.Errorf("the fence of a range the node owns: %q", got)
	}
	if f := n.srv.mig.currentFences(); len(f) != 1 || f[0].id != "k" {
		t.Errorf("fences after the start: %+v", f)
	}
}

// A controller's commands carry REV, its election revision: once the node
// has seen a newer leader's, an older one's SHARD.UNFENCE, SHARD.FENCE and
// MIGRATE.DROP are refused (a deposed leader's command sent late), also
// after a restart with the newer leader's fence in fence.json; commands
// without REV are not checked.
func TestControllerRev(t *testing.T) {
	dir := t.TempDir()
	n, c := twoRangeNode(t, dir)
	in := keyIn(t, "rin", 0.5, 0.75)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.FENCE", "0.5", "0.75", "ID", "m1", "REV", "x"}, nai},
		{[]string{"SHARD.UNFENCE", "0.5", "0.75", "REV", "5"}, ok}, // the first leader seen
		{[]string{"SHARD.FENCE", "0.5", "0.75", "ID", "m1", "REV", "7"}, ok},
	} {
		if got := c.do(tc.args...); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
	stale := "-ERR stale controller: revision 5, this node has seen 7\r\n"
	check := func(when string) {
		t.Helper()
		for _, args := range [][]string{
			{"SHARD.UNFENCE", "0.5", "0.75", "REV", "5"},
			{"SHARD.FENCE", "0.5", "1", "ID", "m0", "REV", "5"},
			{"MIGRATE.DROP", "d", "0.5", "0.75", "FORCE", "REV", "5"},
		} {
			if got := c.do(args...); got != stale {
				t.Errorf("%s: %q: %q, want %q", when, args, got, stale)
			}
		}
		if got := c.do("SET", in, "x"); got != tryAgainFenced {
			t.Errorf("%s: write to the newer leader's fence: %q", when, got)
		}
	}
	check("running")
	n.stop()
	n = startNode(t, dir, nil)
	c = n.raw()
	check("after a restart")
	if got := c.do("SHARD.UNFENCE", "0.5", "0.75", "REV", "7"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", in, "x"); got != ok {
		t.Errorf("write after the newer leader's unfence: %q", got)
	}
	if got := c.do("SHARD.FENCE", "0.5", "0.75"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SHARD.UNFENCE"); got != ok {
		t.Errorf("SHARD.UNFENCE without REV: %q", got)
	}
}
