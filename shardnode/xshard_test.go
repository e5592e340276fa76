package shardnode

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/xstate"
)

// prepareArgs builds TX.PREPARE for one command.
func prepareArgs(txid, primary, lockMs string, cmd ...string) []string {
	args := []string{"TX.PREPARE", txid, "1", primary, lockMs, "0", itoa(len(cmd))}
	return append(args, cmd...)
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitFor polls cond until it holds; it fails the test after a generous
// bound (a hang, not a speed assertion).
func txWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

func TestTxPrepareLocksAndCommit(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	if got := c.do("SET", "b", "old"); got != "+OK\r\n" {
		t.Fatal(got)
	}
	got := c.do(prepareArgs("t1", n.addr, "60000", "MSET", "a", "1", "b", "2")...)
	if got != "*1\r\n+OK\r\n" {
		t.Fatalf("prepare: %q", got)
	}
	// Locked: plain reads and writes of a and b are refused, others pass.
	if got := c.do("GET", "b"); !strings.HasPrefix(got, "-TRYAGAIN") {
		t.Fatalf("GET of a locked key: %q", got)
	}
	if got := c.do("SET", "a", "x"); !strings.HasPrefix(got, "-TRYAGAIN") {
		t.Fatalf("SET of a locked key: %q", got)
	}
	c.do("MULTI")
	c.do("GET", "a")
	if got := c.do("EXEC"); !strings.HasPrefix(got, "-TRYAGAIN") {
		t.Fatalf("EXEC over a locked key: %q", got)
	}
	if got := c.do("SET", "c", "free"); got != "+OK\r\n" {
		t.Fatalf("SET of a free key: %q", got)
	}
	// Another transaction over a locked key dies.
	if got := c.do(prepareArgs("t2", n.addr, "60000", "GET", "a")...); !strings.HasPrefix(got, "-TXCONFLICT") {
		t.Fatalf("conflicting prepare: %q", got)
	}
	if got := c.do("TX.DECIDE", "t1", "COMMIT"); got != "+COMMIT\r\n" {
		t.Fatalf("decide: %q", got)
	}
	if got := c.do("MGET", "a", "b"); got != "*2\r\n$1\r\n1\r\n$1\r\n2\r\n" {
		t.Fatalf("after commit: %q", got)
	}
	// The decision stands: a later ABORT gets COMMIT.
	if got := c.do("TX.DECIDE", "t1", "ABORT"); got != "+COMMIT\r\n" {
		t.Fatalf("second decide: %q", got)
	}
	if got := c.do("TX.FORGET", "t1"); got != "+OK\r\n" {
		t.Fatal(got)
	}
}

func TestTxPrepareRepliesAndAbort(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("SET", "k", "v")
	c.do("HSET", "h", "f", "v")
	// The replies are the commands' own; nothing is applied before commit.
	got := c.do("TX.PREPARE", "t1", "1", n.addr, "60000", "0", "2", "DEL", "k", "2", "INCR", "n", "3", "MSETNX", "k", "1")
	if got != "*3\r\n:1\r\n:1\r\n:1\r\n" {
		t.Fatalf("prepare: %q", got)
	}
	if got := c.do("TX.ABORT", "t1"); got != "+OK\r\n" {
		t.Fatal(got)
	}
	if got := c.do("MGET", "k", "n"); got != "*2\r\n$1\r\nv\r\n$-1\r\n" {
		t.Fatalf("after abort: %q", got)
	}
	// Replies are the commands' own, errors included; commands that write
	// another database are refused.
	if got := c.do(prepareArgs("t2", n.addr, "60000", "GET", "h")...); got != "*1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n" {
		t.Fatalf("GET of a hash: %q", got)
	}
	c.do("TX.ABORT", "t2")
	if got := c.do(prepareArgs("t3", n.addr, "60000", "MOVE", "s", "1")...); !strings.HasPrefix(got, "-CROSSSHARD") {
		t.Fatalf("MOVE: %q", got)
	}
	if got := c.do(prepareArgs("t4", n.addr, "60000", "APPEND", "h", "m")...); !strings.HasPrefix(got, "*1\r\n-WRONGTYPE") {
		t.Fatalf("APPEND to a hash: %q", got)
	}
	c.do("TX.ABORT", "t4")
	if got := c.do("SET", "k", "free"); got != "+OK\r\n" {
		t.Fatalf("locks left after aborts: %q", got)
	}
}

// A participant restarted with a prepare in its log keeps the keys locked
// until the primary's decision, which it asks for at once: COMMIT applies
// (a string's and a collection's final states).
// The prepare survives a merge of the log.
func TestTxRecoveryAsksPrimary(t *testing.T) {
	primary := startNode(t, "", nil)
	primary.assignAll()
	dir := t.TempDir()
	part := startNode(t, dir, nil)
	part.assignAll()
	pc, c := primary.raw(), part.raw()
	if got := pc.do(prepareArgs("t1", primary.addr, "60000", "SET", "p", "1")...); got != "*1\r\n+OK\r\n" {
		t.Fatal(got)
	}
	got := c.do("TX.PREPARE", "t1", "1", primary.addr, "60000", "0", "3", "SET", "q", "1", "4", "ZADD", "z", "2", "m")
	if got != "*2\r\n+OK\r\n:1\r\n" {
		t.Fatal(got)
	}
	if err := part.srv.xtx.log.Merge(); err != nil {
		t.Fatal(err)
	}
	part.stop()
	if got := pc.do("TX.DECIDE", "t1", "COMMIT"); got != "+COMMIT\r\n" {
		t.Fatal(got)
	}
	part = startNode(t, dir, nil)
	c = part.raw()
	txWaitFor(t, "the recovered prepare applied", func() bool { return c.do("GET", "q") == "$1\r\n1\r\n" })
	if got := c.do("ZSCORE", "z", "m"); got != "$1\r\n2\r\n" {
		t.Fatalf("the recovered sorted set: %q", got)
	}
	if got := c.do("TX.LIST"); got != "*0\r\n" {
		t.Fatalf("TX.LIST after resolution: %q", got)
	}
}

// A prepare abandoned by its coordinator: past the lock timeout the
// participant asks the primary, which has no decision and no prepare (or
// one past its timeout) and records ABORT; a late COMMIT gets ABORT.
func TestTxLockTimeoutAborts(t *testing.T) {
	primary := startNode(t, "", nil)
	primary.assignAll()
	part := startNode(t, "", nil)
	part.assignAll()
	pc, c := primary.raw(), part.raw()
	c.do("SET", "q", "old")
	if got := pc.do(prepareArgs("t1", primary.addr, "100", "SET", "p", "1")...); got != "*1\r\n+OK\r\n" {
		t.Fatal(got)
	}
	if got := c.do(prepareArgs("t1", primary.addr, "100", "SET", "q", "1")...); got != "*1\r\n+OK\r\n" {
		t.Fatal(got)
	}
	txWaitFor(t, "the abandoned prepare dropped", func() bool { return c.do("GET", "q") == "$3\r\nold\r\n" })
	txWaitFor(t, "the primary's own prepare dropped", func() bool { return pc.do("GET", "p") == "$-1\r\n" })
	if got := pc.do("TX.DECIDE", "t1", "COMMIT"); got != "+ABORT\r\n" {
		t.Fatalf("late commit: %q", got)
	}
	if got := c.do("SET", "q", "new"); got != "+OK\r\n" {
		t.Fatalf("key still locked: %q", got)
	}
}

// FuzzDecodePrepare: any bytes decode to a prepare or an error, and what
// encodePrepare writes decodes to the same.
func FuzzDecodePrepare(f *testing.F) {
	p := &preparedTx{id: "t", ts: 7, primary: "127.0.0.1:1", lockMs: 2000, db: 3,
		keys: []txLockKey{{3, "a"}, {3, "b"}}, excl: []bool{true, false},
		writes: []txFinal{{key: []byte("a"), val: []byte("v"), expireAt: 99, tag: 1}, {key: []byte("c"), del: true}}}
	f.Add(encodePrepare(p))
	p.writes = append(p.writes, txFinal{key: []byte("h"), coll: &xstate.State{Kind: xstate.Hash, ExpireAt: 5, Elems: [][]byte{[]byte("f"), []byte("v")}}})
	f.Add(encodePrepare(p))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodePrepare("t", b)
		if err != nil {
			return
		}
		r, err := decodePrepare("t", encodePrepare(q))
		if err != nil || encodeString(r) != encodeString(q) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func encodeString(p *preparedTx) string { return string(encodePrepare(p)) }
