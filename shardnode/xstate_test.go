package shardnode

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/internal/xstate"
)

// bulkOf is the payload of a bulk string reply.
func bulkOf(t *testing.T, reply string) string {
	t.Helper()
	if !strings.HasPrefix(reply, "$") {
		t.Fatalf("not a bulk string: %q", reply)
	}
	i := strings.Index(reply, "\r\n")
	return reply[i+2 : len(reply)-2]
}

// A prepare holds the final state of keys of every type, with their
// expiry, and the commit writes them.
func TestTxPrepareCollections(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("HSET", "h", "old", "1")
	c.do("RPUSH", "l", "a")
	got := c.do("TX.PREPARE", "t1", "1", n.addr, "60000", "0",
		"4", "HSET", "h", "f", "v",
		"3", "HDEL", "h", "old",
		"4", "SADD", "s", "m1", "m2",
		"4", "ZADD", "z", "1.5", "a",
		"3", "RPUSH", "l", "b",
		"3", "PEXPIRE", "l", "100000",
		"3", "SREM", "gone", "x",
		"2", "HGETALL", "h")
	want := "*8\r\n:1\r\n:1\r\n:2\r\n:1\r\n:2\r\n:1\r\n:0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
	if got != want {
		t.Fatalf("prepare: %q", got)
	}
	if got := c.do("HGETALL", "h"); !strings.HasPrefix(got, "-TRYAGAIN") {
		t.Fatalf("read of a locked hash: %q", got)
	}
	if got := c.do("TX.DECIDE", "t1", "COMMIT"); got != "+COMMIT\r\n" {
		t.Fatal(got)
	}
	for _, q := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"HGETALL", "h"}, "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"},
		{[]string{"SMEMBERS", "s"}, "*2\r\n$2\r\nm1\r\n$2\r\nm2\r\n"},
		{[]string{"ZRANGE", "z", "0", "-1", "WITHSCORES"}, "*2\r\n$1\r\na\r\n$3\r\n1.5\r\n"},
		{[]string{"LRANGE", "l", "0", "-1"}, "*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
		{[]string{"EXISTS", "gone"}, ":0\r\n"},
	} {
		if got := c.do(q.cmd...); got != q.want && !(q.cmd[0] == "SMEMBERS" && got == "*2\r\n$2\r\nm2\r\n$2\r\nm1\r\n") {
			t.Errorf("%v: %q, want %q", q.cmd, got, q.want)
		}
	}
	if got := c.do("PTTL", "l"); !strings.HasPrefix(got, ":") || got == ":-1\r\n" {
		t.Errorf("PTTL l after commit: %q", got)
	}
}

// TX.DUMP replies a key's state under the lock; TX.LOAD gives a key of
// another shard a state that the prepare's commands use and that is never
// written; a later round of the same transaction (TX.PUT after TX.DUMPX)
// extends the prepare.
func TestTxDumpLoadPut(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("SADD", "src", "a", "b")
	c.do("PEXPIRE", "src", "500000")
	got := c.do(prepareArgs("t1", n.addr, "60000", "TX.DUMPX", "src")...)
	if !strings.HasPrefix(got, "*1\r\n$") {
		t.Fatalf("dump: %q", got)
	}
	st, err := xstate.Decode([]byte(bulkOf(t, got[4:])))
	if err != nil || st.Kind != xstate.Set || len(st.Elems) != 2 || st.ExpireAt == 0 {
		t.Fatalf("dumped state %+v, %v", st, err)
	}
	// The key a prepare only reads from another shard: SMOVE's source.
	foreign := xstate.Encode(&xstate.State{Kind: xstate.Set, Elems: [][]byte{[]byte("x"), []byte("y")}})
	got = c.do("TX.PREPARE", "t2", "1", n.addr, "60000", "0",
		"3", "TX.LOAD", "elsewhere", string(foreign),
		"4", "SMOVE", "elsewhere", "dst", "x",
		"2", "TX.DUMP", "elsewhere")
	if !strings.HasPrefix(got, "*3\r\n+OK\r\n:1\r\n$") {
		t.Fatalf("load and smove: %q", got)
	}
	left, _ := xstate.Decode([]byte(bulkOf(t, got[len("*3\r\n+OK\r\n:1\r\n"):])))
	if left == nil || left.Kind != xstate.Set || len(left.Elems) != 1 || string(left.Elems[0]) != "y" {
		t.Fatalf("the scratch key after SMOVE: %+v", left)
	}
	// Round two of t1: src becomes a list.
	put := xstate.Encode(&xstate.State{Kind: xstate.List, ExpireAt: st.ExpireAt, Elems: [][]byte{[]byte("p"), []byte("q")}})
	if got := c.do(prepareArgs("t1", n.addr, "60000", "TX.PUT", "src", string(put))...); got != "*1\r\n+OK\r\n" {
		t.Fatalf("second round: %q", got)
	}
	for _, id := range []string{"t1", "t2"} {
		if got := c.do("TX.DECIDE", id, "COMMIT"); got != "+COMMIT\r\n" {
			t.Fatal(got)
		}
	}
	if got := c.do("LRANGE", "src", "0", "-1"); got != "*2\r\n$1\r\np\r\n$1\r\nq\r\n" {
		t.Fatalf("src after commit: %q", got)
	}
	if got := c.do("PTTL", "src"); got == ":-1\r\n" || got == ":-2\r\n" {
		t.Fatalf("src lost its expiry: %q", got)
	}
	if got := c.do("SMEMBERS", "dst"); got != "*1\r\n$1\r\nx\r\n" {
		t.Fatalf("dst: %q", got)
	}
	if got := c.do("EXISTS", "elsewhere"); got != ":0\r\n" {
		t.Fatalf("the scratch key was written: %q", got)
	}
	// A TX.PUT whose transaction holds no earlier round here (lost in a
	// restart, with its locks) is refused: the state may be stale.
	if got := c.do(prepareArgs("t3", n.addr, "60000", "TX.PUT", "src", string(put))...); !strings.HasPrefix(got, "-TXCONFLICT DIE") {
		t.Fatalf("TX.PUT without an earlier round: %q", got)
	}
	if got := c.do("TX.DUMP", "src"); !strings.HasPrefix(got, "-ERR this command runs only inside TX.PREPARE") {
		t.Fatalf("TX.DUMP outside a prepare: %q", got)
	}
}

// The prepare record's bytes are on disk: they must not change.
func TestPrepareRecordGolden(t *testing.T) {
	p := &preparedTx{id: "t", ts: 7, primary: "p", lockMs: 2000, db: 1,
		keys: []txLockKey{{1, "s"}, {1, "k"}}, excl: []bool{true, false},
		writes: []txFinal{
			{key: []byte("k"), val: []byte("v"), expireAt: 9, tag: 1},
			{key: []byte("d"), del: true},
			{key: []byte("s"), coll: &xstate.State{Kind: xstate.Set, Elems: [][]byte{[]byte("m")}}},
		}}
	want := "07" + "d00f" + "01" + "0170" + "02" + "01" + "0173" + "00" + "016b" + "03" +
		"00" + "016b" + "0176" + "09" + "01" +
		"01" + "0164" + "00" + "00" + "00" +
		"02" + "0173" + "05" + "030001016d"
	if got := hex.EncodeToString(encodePrepare(p)); got != want {
		t.Fatalf("encoded %s\n      want %s", got, want)
	}
	q, err := decodePrepare("t", encodePrepare(p))
	if err != nil || len(q.writes) != 3 || q.writes[2].coll == nil || string(q.writes[2].coll.Elems[0]) != "m" {
		t.Fatalf("decoded %+v, %v", q, err)
	}
}
