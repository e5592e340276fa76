package shardnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

// keyIn returns a key whose position lies in [lo,hi).
func keyIn(t *testing.T, prefix string, lo, hi float64) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if p := rangemap.PositionString(k); lo <= p && p < hi {
			return k
		}
	}
	t.Fatalf("no key with prefix %q in [%v,%v)", prefix, lo, hi)
	return ""
}

func TestNoAssignment(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	noassign := er("NOASSIGN this shard node has no range assignment yet (the proxy pushes one with SHARD.ASSIGN)")
	for _, args := range [][]string{
		{"GET", "k"}, {"SET", "k", "v"}, {"DEL", "a", "b"}, {"DBSIZE"}, {"KEYS", "*"}, {"SCAN", "0"},
		{"FLUSHALL"}, {"INDEX.LIST"}, {"INDEX.CREATE", "x"}, {"WATCH", "k"}, {"OBJECT", "ENCODING", "k"},
	} {
		if got := c.do(args...); got != noassign {
			t.Errorf("%q: got %q, want NOASSIGN", args, got)
		}
	}
	// Connection and server commands work before the assignment.
	for _, st := range []struct{ args, want string }{
		{"PING", "+PONG\r\n"}, {"ECHO x", bs("x")}, {"SELECT 0", ok}, {"CLIENT SETNAME a", ok},
		{"MULTI", ok}, {"DISCARD", ok}, {"CONFIG SET maxmemory 0", ok},
	} {
		if got := c.do(strings.Fields(st.args)...); got != st.want {
			t.Errorf("%s: got %q, want %q", st.args, got, st.want)
		}
	}
	if got := c.do("INFO", "server"); !strings.Contains(got, "redis_version:") {
		t.Errorf("INFO before assignment: %q", got)
	}
	if got := c.do("INFO", "shard"); !strings.Contains(got, "shard_assigned:0") {
		t.Errorf("INFO shard before assignment: %q", got)
	}
	// In MULTI a refused data command aborts EXEC.
	c.do("MULTI")
	if got := c.do("SET", "k", "v"); got != noassign {
		t.Errorf("queued SET: %q", got)
	}
	if got := c.do("EXEC"); got != er("EXECABORT Transaction discarded because of previous errors.") {
		t.Errorf("EXEC: %q", got)
	}
}

func TestShardAssign(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.ASSIGN", "s1"}, arity("shard.assign")},
		{[]string{"SHARD.ASSIGN", "s1", "0.5", "0.25", "0"}, "re:^-ERR invalid assignment: range \\[0\\.5,0\\.25\\) "},
		{[]string{"SHARD.ASSIGN", "s1", "x", "1", "0"}, er("ERR start and end must be numbers in [0,1]")},
		{[]string{"SHARD.ASSIGN", "s1", "0", "2", "0"}, "re:^-ERR invalid assignment: range"},
		{[]string{"SHARD.ASSIGN", "s1", "0", "1", "-1"}, er("ERR invalid assignment: size must not be negative")},
		{[]string{"SHARD.ASSIGN", "s1", "0", "1", "x"}, nai},
		{[]string{"SHARD.ASSIGN", "s 1", "0", "1", "0"}, "re:^-ERR invalid assignment: shard name"},
		{[]string{"SHARD.ASSIGN", "s1", "0", "1", "0", "BOGUS"}, syn},
		{[]string{"SHARD.ASSIGN", "s1", "0.25", "0.75", "1000"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0.25", "0.75", "1000"}, ok},
		{[]string{"SHARD.ASSIGN", "s2", "0.25", "0.75", "1000"}, er("ERR shard node already assigned s1 [0.25,0.75) size 1000; add FORCE to replace it")},
		{[]string{"SHARD.ASSIGN", "s1", "0.25", "0.75", "2000"}, er("ERR shard node already assigned s1 [0.25,0.75) size 1000; add FORCE to replace it")},
		{[]string{"SHARD.ASSIGN", "s1", "0.25", "0.75", "2000", "FORCE"}, ok},
		{[]string{"SHARD.ASSIGN", "s1", "0.25", "0.75", "2000"}, ok},
	} {
		got := c.do(tc.args...)
		if !replyMatches(got, tc.want, false) {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	// MULTI refuses it: it changes the node, not data.
	c.do("MULTI")
	if got := c.do("SHARD.ASSIGN", "s1", "0.25", "0.75", "2000"); got != er("ERR Command not allowed inside a transaction") {
		t.Errorf("SHARD.ASSIGN in MULTI: %q", got)
	}
	c.do("DISCARD")
	data, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil || !strings.Contains(string(data), `"name": "s1"`) || !strings.Contains(string(data), `"size": 2000`) {
		t.Fatalf("assignment.json: %s, %v", data, err)
	}
	if !strings.Contains(n.logs.String(), "assignment accepted") || !strings.Contains(n.logs.String(), "assignment replaced") {
		t.Errorf("assignment not logged:\n%s", n.logs.String())
	}
	info := c.do("INFO", "shard")
	for _, want := range []string{"shard_name:s1\r\n", "shard_start:0.25\r\n", "shard_end:0.75\r\n", "shard_size_limit:2000\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO shard lacks %q:\n%s", want, info)
		}
	}
}

func TestWrongShard(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s1", "0.5", "1", "0"); got != ok {
		t.Fatal(got)
	}
	mine := keyIn(t, "mine", 0.5, 1)
	other := keyIn(t, "other", 0, 0.5)
	pos := rangemap.FormatPosition(rangemap.PositionString(other))
	wrong := er("WRONGSHARD " + pos + " not in [0.5,1) of s1")
	for _, args := range [][]string{
		{"SET", other, "v"}, {"GET", other}, {"SETNX", other, "v"}, {"INCR", other},
		{"MSET", mine, "1", other, "2"}, {"MGET", mine, other}, {"DEL", other, mine},
		{"RENAME", mine, other}, {"COPY", mine, other}, {"EXPIRE", other, "10"}, {"WATCH", other},
		{"OBJECT", "ENCODING", other},
	} {
		if got := c.do(args...); got != wrong {
			t.Errorf("%q: got %q, want %q", args, got, wrong)
		}
	}
	// Nothing was stored: not the refused key, not the owned half of MSET.
	if got := c.do("DBSIZE"); got != in(0) {
		t.Errorf("DBSIZE after refused writes: %q", got)
	}
	if got := c.do("SET", mine, "v"); got != ok {
		t.Errorf("SET owned key: %q", got)
	}
	if got := c.do("DBSIZE"); got != in(1) {
		t.Errorf("DBSIZE: %q", got)
	}
	// A refused key inside MULTI aborts the transaction.
	c.do("MULTI")
	c.do("SET", mine, "x")
	if got := c.do("SET", other, "x"); got != wrong {
		t.Errorf("queued: %q", got)
	}
	if got := c.do("EXEC"); got != er("EXECABORT Transaction discarded because of previous errors.") {
		t.Errorf("EXEC: %q", got)
	}
	if got := c.do("GET", mine); got != bs("v") {
		t.Errorf("GET after aborted EXEC: %q", got)
	}
}

func TestSizeLimitOOM(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "100"); got != ok {
		t.Fatal(got)
	}
	oom := er("OOM command not allowed when used memory > 'maxmemory'.")
	// 2+40 bytes: fits.
	val40 := strings.Repeat("a", 40)
	steps := []step{
		x(ok, "SET", "k1", val40),
		x(ok, "SET", "k2", val40), // 84 live bytes
		x(oom, "SET", "k3", val40),
		x(oom, "APPEND", "k1", strings.Repeat("b", 20)),
		x(oom, "MSET", "k3", "x", "k4", val40),
		x(nul, "GET", "k3"),         // nothing of the refused MSET was stored
		x(ok, "SET", "k1", "short"), // shrinking always fits: 2+5+42 = 49
		x(ok, "SET", "k3", val40),   // 91
		x(oom, "SET", "k4", "123456789"),
		x(oom, "INCRBYFLOAT", "k5longer", "1.5"),
		x(oom, "SETRANGE", "k1", "30", "x"),
		x(oom, "COPY", "k2", "k9"),
		x(bs(val40), "GET", "k2"), // reads keep working
		x(in(1), "EXPIRE", "k2", "100"),
		x(in(1), "DEL", "k2"), // deletes free room
		x(ok, "SET", "k4", "123456789"),
		x(ok, "CONFIG", "SET", "maxmemory", "0"),
		x(ok, "SET", "k5", strings.Repeat("z", 1000)),
		x(ok, "CONFIG", "SET", "maxmemory", "100"),
		x(oom, "SET", "k6", "1"),
		x(in(1), "DEL", "k5"),
		x(ok, "SET", "k6", "1"),
	}
	for i, st := range steps {
		if got := c.do(st.args...); got != st.want {
			t.Errorf("step %d %q: got %q, want %q", i, st.args, got, st.want)
		}
	}
	// In MULTI a denyoom command is refused at queue time when the shard is
	// already full, and a command that would overflow fails inside EXEC.
	c.do("SET", "fill", strings.Repeat("f", 100-int(liveBytes(t, c))-4))
	if lb := liveBytes(t, c); lb != 100 {
		t.Fatalf("live bytes %d, want 100", lb)
	}
	c.do("MULTI")
	if got := c.do("SET", "x", "y"); got != oom {
		t.Errorf("queued SET when full: %q", got)
	}
	c.do("DISCARD")
	if !strings.Contains(c.do("INFO", "shard"), "shard_size_limit:100\r\n") {
		t.Error("INFO shard does not show the limit")
	}
}

func liveBytes(t *testing.T, c *rawConn) int64 {
	t.Helper()
	info := c.do("INFO", "shard")
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "shard_live_bytes:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no shard_live_bytes in %q", info)
	return 0
}

func TestIndexes(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, func(c *Config) { c.StrictIndexes = true })
	n.assignAll()
	c := n.raw()
	noIndex := er("ERR no such index 'users'")
	steps := []step{
		x(noIndex, "SET", "users:1", "a"),
		x(noIndex, "MSET", "plain", "1", "users:1", "a"),
		x(ok, "SET", "plain", "1"), // the unnamed index always exists
		x(ok, "INDEX.CREATE", "users"),
		x(ok, "INDEX.CREATE", "users"),
		x(er("ERR index names cannot contain ':'"), "INDEX.CREATE", "a:b"),
		x(ok, "SET", "users:1", "a"),
		x(ok, "MSET", "users:2", "b", "users:3", "c"),
		x(bs("a"), "GET", "users:1"),
		x(ok, "INDEX.CREATE", "empty"),
		x3(arr(bs(""), in(1), bs("empty"), in(0), bs("users"), in(3)),
			"%3\r\n"+bs("")+in(1)+bs("empty")+in(0)+bs("users")+in(3), "INDEX.LIST"),
		x(in(3), "INDEX.DROP", "users"),
		x(in(0), "EXISTS", "users:1", "users:2", "users:3"),
		x(noIndex, "SET", "users:1", "a"),
		x(in(0), "INDEX.DROP", "nothing"),
		x(in(1), "INDEX.DROP", ""),
		x(in(0), "DBSIZE"),
		x(arity("index.create"), "INDEX.CREATE"),
	}
	for _, proto := range []int{2, 3} {
		c.do("FLUSHALL")
		if proto == 3 {
			c.do("HELLO", "3")
		}
		for i, st := range steps {
			want := st.want
			if proto == 3 && st.want3 != "" {
				want = st.want3
			}
			if got := c.do(st.args...); got != want {
				t.Errorf("RESP%d step %d %q: got %q, want %q", proto, i, st.args, got, want)
			}
		}
	}
	// The index list survives a restart.
	c.do("INDEX.CREATE", "kept")
	n.stop()
	n2 := startNode(t, dir, func(c *Config) { c.StrictIndexes = true })
	if got := n2.raw().do("SET", "kept:1", "v"); got != ok {
		t.Errorf("SET into an index created before the restart: %q", got)
	}
}

func TestStrictFromAssignment(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "0", "STRICT", "1"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", "idx:1", "v"); got != er("ERR no such index 'idx'") {
		t.Errorf("strict from SHARD.ASSIGN: %q", got)
	}
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "0", "STRICT", "0"); got != ok {
		t.Fatal(got)
	}
	if got := c.do("SET", "idx:1", "v"); got != ok {
		t.Errorf("after STRICT 0: %q", got)
	}
}

// TestNarrowedRangeCounts: after SHARD.ASSIGN FORCE narrows the node's
// range, the keys left outside it stay on disk but DBSIZE and INFO keyspace
// count only the node's own keys, as SCAN and KEYS see them; widening the
// range back counts them again.
func TestNarrowedRangeCounts(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	if got := c.do("SHARD.ASSIGN", "s1", "0", "1", "0"); got != ok {
		t.Fatalf("assign: %q", got)
	}
	const keys = 400
	inside, insideTTL := 0, 0
	for i := 0; i < keys; i++ {
		k := fmt.Sprintf("k%d", i)
		args := []string{"SET", k, "v"}
		if i%4 == 0 {
			args = append(args, "EX", "3600")
		}
		if got := c.do(args...); got != ok {
			t.Fatalf("SET: %q", got)
		}
		if p := rangemap.PositionString(k); 0.3 <= p && p < 0.7 {
			inside++
			if i%4 == 0 {
				insideTTL++
			}
		}
	}
	if inside == 0 || inside == keys || insideTTL == 0 {
		t.Fatalf("%d of %d keys (%d with a TTL) inside [0.3,0.7): want some of each", inside, keys, insideTTL)
	}
	check := func(what string, wantKeys, wantTTL int) {
		t.Helper()
		if got, want := c.do("DBSIZE"), fmt.Sprintf(":%d\r\n", wantKeys); got != want {
			t.Errorf("%s: DBSIZE %q, want %q", what, got, want)
		}
		info := c.do("INFO", "keyspace")
		if want := fmt.Sprintf("db0:keys=%d,expires=%d,", wantKeys, wantTTL); !strings.Contains(info, want) {
			t.Errorf("%s: INFO keyspace %q lacks %q", what, info, want)
		}
	}
	check("whole range", keys, keys/4)
	if got := c.do("SHARD.ASSIGN", "s1", "0.3", "0.7", "0", "FORCE"); got != ok {
		t.Fatalf("narrowing: %q", got)
	}
	check("narrowed to [0.3,0.7)", inside, insideTTL)
	scanned := strings.Count(c.do("KEYS", "*"), "\r\nk")
	if scanned != inside {
		t.Errorf("KEYS * returns %d keys, DBSIZE %d", scanned, inside)
	}
	if got := c.do("SHARD.ASSIGN", "s1", "0", "1", "0", "FORCE"); got != ok {
		t.Fatalf("widening: %q", got)
	}
	check("widened back", keys, keys/4)
}
