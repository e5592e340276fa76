package shardnode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The blocking pops' scripts, replayed as the others are (TestCommandScripts
// and, against redis-server, TestCommandScriptsMatchRedis): what does not
// block (pops of keys with something, errors, timeouts, MULTI), one
// connection at a time. What blocks is in blockingScenarios below.

func init() {
	scripts = append(scripts, blockingScripts...)
}

var (
	errTimeoutFloat = er("ERR timeout is not a float or out of range")
	errTimeoutNeg   = er("ERR timeout is negative")
)

var blockingScripts = []script{
	{name: "blpop brpop at once", steps: []step{
		x(in(3), "RPUSH", "l", "a", "b", "c"),
		x(arr(bs("l"), bs("a")), "BLPOP", "l", "0"),
		x(arr(bs("l"), bs("c")), "BRPOP", "nokey", "l", "1.5"),
		x(arr(bs("l"), bs("b")), "blpop", "l", "l", "0"),
		x(in(0), "EXISTS", "l"),
		x(nilArr, "BLPOP", "l", "0.01"),
		x(nilArr, "BRPOP", "l", "m", "0.02"),
		x(nilArr, "BRPOP", "l", "1e-2"),
		x(nilArr, "BRPOP", "l", "+.01"),
		x(nilArr, "BRPOP", "l", "0x0.1"),
		x(nilArr, "BRPOP", "l", "0.0199999"),
		x(ok, "SET", "s", "v"),
		x(wrongType, "BLPOP", "s", "0"),
		x(wrongType, "BLPOP", "nokey", "s", "0"),
		x(in(1), "RPUSH", "l2", "x"),
		x(arr(bs("l2"), bs("x")), "BLPOP", "l2", "s", "0"),
		x(errTimeoutFloat, "BLPOP", "l", "abc"),
		x(errTimeoutFloat, "BLPOP", "l", ""),
		x(errTimeoutFloat, "BLPOP", "l", "1 "),
		x(errTimeoutFloat, "BLPOP", "l", "nan"),
		x(errTimeoutNeg, "BLPOP", "l", "-1"),
		x(errTimeoutNeg, "BLPOP", "l", "-0.5"),
		x(errTimeoutNeg, "BLPOP", "l", "inf"),
		x(errTimeoutNeg, "BLPOP", "l", "1e300"),
		x(errTimeoutFloat, "BLPOP", "s", "x"),
		x(arity("blpop"), "BLPOP", "l"),
		x(arity("brpop"), "BRPOP"),
	}},
	{name: "blmove brpoplpush at once", steps: []step{
		x(in(2), "RPUSH", "src", "a", "b"),
		x(bs("b"), "BRPOPLPUSH", "src", "dst", "0"),
		x(bs("a"), "BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"),
		x(arr(bs("b"), bs("a")), "LRANGE", "dst", "0", "-1"),
		x(bs("b"), "BLMOVE", "dst", "dst", "left", "right", "0"),
		x(arr(bs("a"), bs("b")), "LRANGE", "dst", "0", "-1"),
		x(nilArr, "BRPOPLPUSH", "src", "dst", "0.01"),
		x(nilArr, "BLMOVE", "src", "dst", "LEFT", "LEFT", "0.01"),
		x(syn, "BLMOVE", "src", "dst", "UP", "LEFT", "0"),
		x(syn, "BLMOVE", "src", "dst", "LEFT", "DOWN", "x"),
		x(errTimeoutFloat, "BLMOVE", "src", "dst", "LEFT", "LEFT", "x"),
		x(errTimeoutNeg, "BRPOPLPUSH", "src", "dst", "-2"),
		x(ok, "SET", "s", "v"),
		x(wrongType, "BRPOPLPUSH", "s", "dst", "0"),
		x(wrongType, "BRPOPLPUSH", "dst", "s", "0"),
		x(arr(bs("a"), bs("b")), "LRANGE", "dst", "0", "-1"),
		x(nilArr, "BRPOPLPUSH", "nokey", "s", "0.01"),
		x(arity("brpoplpush"), "BRPOPLPUSH", "a", "b"),
		x(arity("blmove"), "BLMOVE", "a", "b", "LEFT", "LEFT"),
	}},
	{name: "blmpop at once", steps: []step{
		x(in(3), "RPUSH", "l", "a", "b", "c"),
		x(arr(bs("l"), arr(bs("a"))), "BLMPOP", "0", "2", "nokey", "l", "LEFT"),
		x(arr(bs("l"), arr(bs("c"), bs("b"))), "BLMPOP", "0", "1", "l", "RIGHT", "COUNT", "5"),
		x(nilArr, "BLMPOP", "0.01", "1", "l", "LEFT"),
		x(er("ERR numkeys should be greater than 0"), "BLMPOP", "0", "0", "l", "LEFT"),
		x(er("ERR numkeys should be greater than 0"), "BLMPOP", "x", "0", "l", "LEFT"),
		x(syn, "BLMPOP", "0", "3", "l", "LEFT"),
		x(syn, "BLMPOP", "0", "1", "l", "UP"),
		x(syn, "BLMPOP", "-1", "1", "l", "UP"),
		x(er("ERR count should be greater than 0"), "BLMPOP", "0", "1", "l", "LEFT", "COUNT", "0"),
		x(syn, "BLMPOP", "0", "1", "l", "LEFT", "COUNT", "1", "COUNT", "1"),
		x(errTimeoutFloat, "BLMPOP", "x", "1", "l", "LEFT"),
		x(errTimeoutNeg, "BLMPOP", "-1", "1", "l", "LEFT"),
		x(ok, "SET", "s", "v"),
		x(wrongType, "BLMPOP", "0", "1", "s", "LEFT"),
		x(arity("blmpop"), "BLMPOP", "0", "1", "l"),
	}},
	{name: "bzpopmin bzpopmax at once", steps: []step{
		x(in(3), "ZADD", "z", "1", "a", "2", "b", "3", "c"),
		x3(arr(bs("z"), bs("a"), bs("1")), arr(bs("z"), bs("a"), dbl("1")), "BZPOPMIN", "z", "0"),
		x3(arr(bs("z"), bs("c"), bs("3")), arr(bs("z"), bs("c"), dbl("3")), "BZPOPMAX", "nokey", "z", "0.5"),
		x3(arr(bs("z"), bs("b"), bs("2")), arr(bs("z"), bs("b"), dbl("2")), "bzpopmin", "z", "0"),
		x(nilArr, "BZPOPMIN", "z", "0.01"),
		x(nilArr, "BZPOPMAX", "z", "y", "0.01"),
		x(ok, "SET", "s", "v"),
		x(wrongType, "BZPOPMIN", "s", "0"),
		x(wrongType, "BZPOPMAX", "nokey", "s", "0"),
		x(errTimeoutFloat, "BZPOPMIN", "z", "abc"),
		x(errTimeoutFloat, "BZPOPMIN", "s", "abc"),
		x(errTimeoutNeg, "BZPOPMAX", "z", "-0.01"),
		x(arity("bzpopmin"), "BZPOPMIN", "z"),
	}},
	{name: "bzmpop at once", steps: []step{
		x(in(3), "ZADD", "z", "1", "a", "2", "b", "3", "c"),
		x3(arr(bs("z"), arr(arr(bs("a"), bs("1")))), arr(bs("z"), arr(arr(bs("a"), dbl("1")))), "BZMPOP", "0", "2", "nokey", "z", "MIN"),
		x3(arr(bs("z"), arr(arr(bs("c"), bs("3")), arr(bs("b"), bs("2")))), arr(bs("z"), arr(arr(bs("c"), dbl("3")), arr(bs("b"), dbl("2")))), "BZMPOP", "0", "1", "z", "MAX", "COUNT", "10"),
		x(nilArr, "BZMPOP", "0.01", "1", "z", "MIN"),
		x(er("ERR numkeys should be greater than 0"), "BZMPOP", "abc", "0", "z", "MIN"),
		x(syn, "BZMPOP", "-1", "1", "z", "FOO"),
		x(er("ERR count should be greater than 0"), "BZMPOP", "0", "1", "z", "MIN", "COUNT", "0"),
		x(errTimeoutFloat, "BZMPOP", "abc", "1", "z", "MIN"),
		x(errTimeoutNeg, "BZMPOP", "-1", "1", "z", "MIN"),
		x(ok, "SET", "s", "v"),
		x(wrongType, "BZMPOP", "0", "1", "s", "MIN"),
		x(arity("bzmpop"), "BZMPOP", "0", "1", "z"),
	}},
	// Inside MULTI a blocking pop does not block: it is its non-blocking
	// form, with its timeout's null when there is nothing.
	{name: "blocking pops in multi", steps: []step{
		x(in(1), "RPUSH", "l", "a"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "BLPOP", "l", "0"),
		x("+QUEUED\r\n", "BLPOP", "l", "0"),
		x("+QUEUED\r\n", "BRPOPLPUSH", "l", "d", "0"),
		x("+QUEUED\r\n", "BLMOVE", "l", "d", "LEFT", "LEFT", "0"),
		x("+QUEUED\r\n", "BLMPOP", "0", "1", "l", "LEFT"),
		x("+QUEUED\r\n", "BZPOPMIN", "z", "0"),
		x("+QUEUED\r\n", "BZMPOP", "0", "1", "z", "MAX"),
		x("+QUEUED\r\n", "BLPOP", "l", "-1"),
		x3(arr(arr(bs("l"), bs("a")), nilArr, nul, nul, nilArr, nilArr, nilArr, errTimeoutNeg),
			arr(arr(bs("l"), bs("a")), "_\r\n", "_\r\n", "_\r\n", "_\r\n", "_\r\n", "_\r\n", errTimeoutNeg), "EXEC"),
		x(in(1), "ZADD", "z", "5", "m"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "BZPOPMAX", "z", "0"),
		x3(arr(arr(bs("z"), bs("m"), bs("5"))), arr(arr(bs("z"), bs("m"), dbl("5"))), "EXEC"),
	}},
}

// A blocking scenario runs on several connections: a step sends a command
// and reads its reply, or (async) only sends it, its reply read by a later
// recv step of the same connection. Each scenario runs against the node and
// against redis-server, RESP2 and RESP3, and the two transcripts must be
// the same: what a blocked client gets, and when, is Redis's.
type bstep struct {
	conn  int
	args  []string
	async bool // send only
	recv  bool // read the reply of the connection's async command
	// blocked > 0: wait until that many clients are blocked
	blocked int
}

func bdo(conn int, args ...string) bstep   { return bstep{conn: conn, args: args} }
func bsend(conn int, args ...string) bstep { return bstep{conn: conn, args: args, async: true} }
func brecv(conn int) bstep                 { return bstep{conn: conn, recv: true} }

// bblocked waits until the server says n clients are blocked (INFO
// clients, on a connection of its own): the clients block in the order
// the scenario sends their commands.
func bblocked(n int) bstep { return bstep{blocked: n} }

type bscenario struct {
	name  string
	steps []bstep
}

var blockingScenarios = []bscenario{
	{name: "blpop woken by rpush, in blocking order", steps: []bstep{
		bsend(0, "BLPOP", "l", "0"), bblocked(1),
		bsend(1, "BRPOP", "l", "0"), bblocked(2),
		bsend(2, "BLPOP", "other", "l", "0"), bblocked(3),
		bdo(3, "RPUSH", "l", "a", "b"),
		brecv(0), brecv(1),
		bdo(3, "LLEN", "l"),
		bdo(3, "RPUSH", "l", "c"),
		brecv(2),
		bdo(3, "EXISTS", "l"),
	}},
	{name: "woken client's pipeline goes on", steps: []bstep{
		bsend(0, "BLPOP", "l", "0"), bsend(0, "PING"), bsend(0, "LLEN", "l"), bblocked(1),
		bdo(1, "LPUSH", "l", "x", "y"),
		brecv(0), brecv(0), brecv(0),
	}},
	{name: "served between pipelined commands of the writer", steps: []bstep{
		bsend(0, "BZPOPMIN", "z", "0"), bblocked(1),
		bsend(1, "ZADD", "z", "1", "a"), bsend(1, "ZCARD", "z"),
		brecv(1), brecv(1), brecv(0),
	}},
	{name: "multi exec wakes after exec", steps: []bstep{
		bsend(0, "BLPOP", "l", "0"), bblocked(1),
		bdo(1, "MULTI"), bdo(1, "RPUSH", "l", "a", "b"), bdo(1, "LLEN", "l"), bdo(1, "EXEC"),
		brecv(0),
		bdo(1, "LRANGE", "l", "0", "-1"),
	}},
	{name: "blmove chains to the destination's waiters", steps: []bstep{
		bsend(0, "BLMOVE", "a", "b", "LEFT", "RIGHT", "0"), bblocked(1),
		bsend(1, "BRPOP", "b", "0"), bblocked(2),
		bdo(2, "RPUSH", "a", "x"),
		brecv(0), brecv(1),
		bdo(2, "EXISTS", "a", "b"),
	}},
	{name: "brpoplpush wrong destination type", steps: []bstep{
		bdo(2, "SET", "d", "str"),
		bsend(0, "BRPOPLPUSH", "s", "d", "0"), bblocked(1),
		bdo(2, "RPUSH", "s", "v"),
		brecv(0),
		bdo(2, "LRANGE", "s", "0", "-1"),
	}},
	{name: "waiter stays blocked when the key gets another type", steps: []bstep{
		bsend(0, "BLPOP", "k", "0.3"), bblocked(1),
		bdo(1, "ZADD", "k", "1", "m"),
		bdo(1, "DEL", "k"),
		bdo(1, "SET", "k", "v"),
		brecv(0),
	}},
	{name: "list and zset waiters on one key", steps: []bstep{
		bsend(0, "BLPOP", "k", "1"), bblocked(1),
		bsend(1, "BZPOPMIN", "k", "0"), bblocked(2),
		bdo(2, "ZADD", "k", "4", "m"),
		brecv(1),
		brecv(0),
	}},
	{name: "bzmpop woken with count", steps: []bstep{
		bsend(0, "BZMPOP", "0", "2", "z1", "z2", "MAX", "COUNT", "2"), bblocked(1),
		bdo(1, "ZADD", "z2", "1", "a", "2", "b", "3", "c"),
		brecv(0),
		bdo(1, "ZRANGE", "z2", "0", "-1", "WITHSCORES"),
	}},
	{name: "blmpop woken with count", steps: []bstep{
		bsend(0, "BLMPOP", "0", "2", "l1", "l2", "RIGHT", "COUNT", "2"), bblocked(1),
		bdo(1, "RPUSH", "l2", "a", "b", "c"),
		brecv(0),
		bdo(1, "LRANGE", "l2", "0", "-1"),
	}},
	{name: "a timeout under a millisecond blocks for ever", steps: []bstep{
		bsend(0, "BLPOP", "l", "-0.0009"), bblocked(1),
		bdo(1, "BLPOP", "l", "0.0009"),
		bsend(2, "BLPOP", "l", "0.00"), bblocked(2),
		bdo(3, "RPUSH", "l", "a", "b", "c"),
		brecv(0), brecv(2),
	}},
	{name: "rename copy and move wake", steps: []bstep{
		bsend(0, "BLPOP", "dst", "0"), bblocked(1),
		bsend(1, "BZPOPMIN", "zdst", "0"), bblocked(2),
		bdo(2, "RPUSH", "src", "a", "b"),
		bdo(2, "RENAME", "src", "dst"),
		brecv(0),
		bdo(2, "ZADD", "zsrc", "1", "m"),
		bdo(2, "COPY", "zsrc", "zdst"),
		brecv(1),
		bdo(0, "SELECT", "1"),
		bsend(0, "BLPOP", "dst", "0"), bblocked(1),
		bdo(2, "MOVE", "dst", "1"),
		brecv(0),
		bdo(2, "EXISTS", "dst", "src", "zsrc", "zdst"),
	}},
	{name: "served from the key that became ready first", steps: []bstep{
		bsend(0, "BLPOP", "a", "b", "0"), bblocked(1),
		bdo(1, "MULTI"), bdo(1, "RPUSH", "b", "x"), bdo(1, "RPUSH", "a", "y"), bdo(1, "EXEC"),
		brecv(0),
		bdo(1, "LRANGE", "a", "0", "-1"),
		bdo(1, "LRANGE", "b", "0", "-1"),
	}},
	{name: "the time blocked is not in the slow log", steps: []bstep{
		bdo(0, "CONFIG", "SET", "slowlog-log-slower-than", "100000"),
		bdo(0, "SLOWLOG", "RESET"),
		bdo(1, "BLPOP", "l", "0.25"),
		bsend(1, "BZPOPMIN", "z", "0"), bblocked(1),
		bdo(0, "ZADD", "z", "1", "m"),
		brecv(1),
		bdo(0, "SLOWLOG", "LEN"),
		bdo(0, "CONFIG", "SET", "slowlog-log-slower-than", "10000"),
	}},
	{name: "sort store wakes", steps: []bstep{
		bsend(0, "BRPOP", "sorted", "0"), bblocked(1),
		bdo(1, "RPUSH", "in", "3", "1", "2"),
		bdo(1, "SORT", "in", "STORE", "sorted"),
		brecv(0),
		bdo(1, "LRANGE", "sorted", "0", "-1"),
	}},
	{name: "timeout then the key gets something", steps: []bstep{
		bsend(0, "BRPOPLPUSH", "s", "d", "0.05"),
		brecv(0),
		bdo(1, "RPUSH", "s", "v"),
		bdo(1, "LLEN", "s"),
	}},
	{name: "client unblock timeout", steps: []bstep{
		bsend(0, "BLPOP", "l", "0"), bsend(0, "PING"), bblocked(1),
		bdo(1, "CLIENT", "UNBLOCK", "$id0"),
		brecv(0), brecv(0),
		bdo(1, "CLIENT", "UNBLOCK", "$id0"),
		bdo(1, "RPUSH", "l", "a"),
		bdo(1, "LLEN", "l"),
		bsend(0, "BRPOPLPUSH", "s", "d", "0"), bblocked(1),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "timeout"),
		brecv(0),
		bsend(0, "BZPOPMAX", "z", "0"), bblocked(1),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "TIMEOUT"),
		brecv(0),
		bdo(1, "ZADD", "z", "1", "m"),
		bdo(1, "ZCARD", "z"),
	}},
	{name: "client unblock error", steps: []bstep{
		bsend(0, "BZMPOP", "0", "1", "z", "MIN"), bblocked(1),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "ERROR"),
		brecv(0),
		bsend(0, "BLMOVE", "a", "b", "LEFT", "RIGHT", "0"), bsend(0, "LLEN", "a"), bblocked(1),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "error"),
		brecv(0), brecv(0),
		bdo(1, "RPUSH", "a", "x"),
		bdo(1, "LRANGE", "a", "0", "-1"),
		bdo(1, "EXISTS", "b"),
	}},
	{name: "client unblock of a client not blocked, and bad arguments", steps: []bstep{
		bdo(0, "PING"),
		bdo(1, "CLIENT", "UNBLOCK", "$id0"),
		bdo(1, "CLIENT", "UNBLOCK", "$id1"),
		bdo(1, "CLIENT", "UNBLOCK", "-5"),
		bdo(1, "CLIENT", "UNBLOCK", "0"),
		bdo(1, "CLIENT", "UNBLOCK", "999999999"),
		bdo(1, "CLIENT", "UNBLOCK", "abc"),
		bdo(1, "CLIENT", "UNBLOCK", "abc", "nope"),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "nope"),
		bdo(1, "CLIENT", "UNBLOCK", "1.5", "error"),
		bdo(1, "CLIENT", "UNBLOCK", "$id0", "error", "x"),
		bdo(1, "CLIENT", "UNBLOCK"),
		bdo(1, "client", "unblock", "99999999999999999999"),
	}},
	{name: "blocked in another database", steps: []bstep{
		bdo(0, "SELECT", "3"),
		bsend(0, "BLPOP", "l", "0"), bblocked(1),
		bdo(1, "RPUSH", "l", "db0"),
		bdo(1, "SELECT", "3"),
		bdo(1, "RPUSH", "l", "db3"),
		brecv(0),
		bdo(1, "SELECT", "0"),
		bdo(1, "LLEN", "l"),
	}},
}

func runScenario(t *testing.T, addr string, sc bscenario, proto int) []string {
	t.Helper()
	conns := map[int]*rawConn{}
	ids := map[int]string{}
	conn := func(i int) *rawConn {
		if conns[i] == nil {
			c := dialRaw(t, addr)
			if proto == 3 {
				c.do("HELLO", "3")
			}
			conns[i] = c
			id := c.do("CLIENT", "ID")
			ids[i] = strings.TrimSpace(strings.TrimPrefix(id, ":"))
		}
		return conns[i]
	}
	// An argument "$idN" is connection N's client id, which differs
	// between the servers: the transcript shows the placeholder.
	withIDs := func(args []string) []string {
		out := slices.Clone(args)
		for i, a := range out {
			if n, ok := strings.CutPrefix(a, "$id"); ok {
				k, _ := strconv.Atoi(n)
				conn(k)
				out[i] = ids[k]
			}
		}
		return out
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	conn(0).do("FLUSHALL")
	var out []string
	for _, st := range sc.steps {
		switch {
		case st.blocked > 0:
			waitBlocked(t, conn(9), st.blocked)
		case st.async:
			conn(st.conn).send(withIDs(st.args)...)
		case st.recv:
			out = append(out, fmt.Sprintf("%d< %q", st.conn, conn(st.conn).next()))
		default:
			out = append(out, fmt.Sprintf("%d %s: %q", st.conn, strings.Join(st.args, " "), conn(st.conn).do(withIDs(st.args)...)))
		}
	}
	return out
}

// TestBlockingScenariosMatchRedis replays each scenario against
// redis-server and against the node in each of its serving modes, and
// compares the transcripts.
func TestBlockingScenariosMatchRedis(t *testing.T) {
	raddr := startRedis(t)
	want := map[string][]string{}
	for _, proto := range []int{2, 3} {
		for _, sc := range blockingScenarios {
			want[fmt.Sprint(proto, sc.name)] = runScenario(t, raddr, sc, proto)
		}
	}
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) { c.EventLoops = m.loops }, m.wrap)
			n.assignAll()
			for _, proto := range []int{2, 3} {
				for _, sc := range blockingScenarios {
					t.Run(fmt.Sprintf("RESP%d/%s", proto, sc.name), func(t *testing.T) {
						want := want[fmt.Sprint(proto, sc.name)]
						got := runScenario(t, n.addr, sc, proto)
						if strings.Join(got, "\n") != strings.Join(want, "\n") {
							t.Errorf("node:\n%s\nredis:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					})
				}
			}
		})
	}
}
