package shardnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// TestRestartKeepsState: data, expiry times, the assignment and the size
// limit survive a shutdown and a new server on the same directory.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	c := n.raw()
	for _, st := range []step{
		x(ok, "SHARD.ASSIGN", "s7", "0", "1", "5000"),
		x(ok, "SET", "plain", "v"),
		x(ok, "SET", "num", "42"),
		x(ok, "SET", "ttl", "v", "PXAT", "4102444800123"),
		x(ok, "SET", "short", "v", "PX", "300"),
		x(ok, "SET", "gone", "v"),
		x(in(1), "DEL", "gone"),
		x(ok, "INDEX.CREATE", "users"),
		x(ok, "SET", "users:1", "alice"),
	} {
		if got := c.do(st.args...); got != st.want {
			t.Fatalf("%q: %q", st.args, got)
		}
	}
	c.close()
	n.stop()

	n2 := startNode(t, dir, nil)
	c2 := n2.raw()
	time.Sleep(350 * time.Millisecond) // "short" expires meanwhile
	for _, st := range []step{
		x(bs("v"), "GET", "plain"),
		x(bs("42"), "GET", "num"),
		x(in(4102444800123), "PEXPIRETIME", "ttl"),
		x(nul, "GET", "short"),
		x(nul, "GET", "gone"),
		x(bs("alice"), "GET", "users:1"),
		x(in(4), "DBSIZE"),
		x(ok, "SHARD.ASSIGN", "s7", "0", "1", "5000"),
		x(er("ERR shard node already assigned s7 [0,1) size 5000; add FORCE to replace it"), "SHARD.ASSIGN", "s8", "0", "1", "5000"),
	} {
		if got := c2.do(st.args...); got != st.want {
			t.Errorf("after restart %q: got %q, want %q", st.args, got, st.want)
		}
	}
	info := c2.do("INFO", "shard")
	for _, want := range []string{"shard_name:s7\r\n", "shard_size_limit:5000\r\n", "shard_index_users:keys=1,bytes=12\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO shard after restart lacks %q:\n%s", want, info)
		}
	}
	if !strings.Contains(n2.logs.String(), "storage recovered") || !strings.Contains(n2.logs.String(), "assignment loaded") {
		t.Errorf("restart not logged:\n%s", n2.logs.String())
	}
}

// TestPipelineSharesOneFsync: under appendfsync always a pipeline of writes
// costs a few fsyncs, not one per command, and every reply still comes
// after the fsync that covers it.
func TestPipelineSharesOneFsync(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.Sync = bitcask.SyncAlways })
	n.assignAll()
	c := n.raw()
	before := n.srv.db.Stats().Fsyncs
	const cmds = 1000
	var buf []byte
	for i := 0; i < cmds; i++ {
		buf = append(buf, fmt.Sprintf("*3\r\n$3\r\nSET\r\n$5\r\nk%04d\r\n$1\r\nv\r\n", i)...)
	}
	c.nc.Write(buf)
	for i := 0; i < cmds; i++ {
		if got := c.next(); got != ok {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	fsyncs := n.srv.db.Stats().Fsyncs - before
	t.Logf("%d pipelined SETs under appendfsync always: %d fsyncs", cmds, fsyncs)
	if fsyncs > cmds/10 {
		t.Errorf("%d fsyncs for %d pipelined SETs: the pipeline is not batched", fsyncs, cmds)
	}
	if got := c.do("DBSIZE"); got != in(cmds) {
		t.Errorf("DBSIZE %q", got)
	}
}

// TestShutdown: Shutdown answers what was read, closes connections,
// refuses new ones, and leaves a database that opens again.
func TestShutdown(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.assignAll()
	c := n.raw()
	idle := n.raw()
	idle.do("PING")
	if got := c.do("SET", "k", "v"); got != ok {
		t.Fatal(got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-n.done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	n.srv = nil
	if got := idle.readAll(2 * time.Second); got != "" {
		t.Errorf("idle connection got %q", got)
	}
	if _, err := net.DialTimeout("tcp", n.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
	n2 := startNode(t, dir, nil)
	if got := n2.raw().do("GET", "k"); got != bs("v") {
		t.Errorf("after reopen: %q", got)
	}
}

// TestTTLExpiry: keys disappear at their expiry, in every command's view.
func TestTTLExpiry(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("SET", "a", "1", "PX", "100")
	c.do("SET", "b", "1")
	c.do("PEXPIRE", "b", "100")
	if got := c.do("DBSIZE"); got != in(2) {
		t.Fatalf("DBSIZE %q", got)
	}
	time.Sleep(150 * time.Millisecond)
	for _, st := range []step{
		x(nul, "GET", "a"), x(in(0), "EXISTS", "a", "b"), x(in(-2), "TTL", "b"),
		x(arr(), "KEYS", "*"), x(nul, "RANDOMKEY"), x(in(1), "INCR", "a"),
	} {
		if got := c.do(st.args...); got != st.want {
			t.Errorf("%q: got %q, want %q", st.args, got, st.want)
		}
	}
}

func TestInfo(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("SET", "plain", "12345")
	c.do("SET", "users:1", "a", "EX", "100")
	c.do("INDEX.CREATE", "empty")
	info := c.do("INFO")
	for _, want := range []string{
		"# Server\r\n", "redis_version:" + conncmd.RedisVersion + "\r\n", "redis_mode:standalone\r\n", "tcp_port:" + portOf(n.addr) + "\r\n",
		"# Clients\r\n", "connected_clients:1\r\n", "maxclients:10000\r\n",
		"# Persistence\r\n", "loading:0\r\n", "aof_enabled:1\r\n",
		"# Stats\r\n", "total_commands_processed:", "keyspace_hits:",
		"# Keyspace\r\n", "db0:keys=2,expires=1,avg_ttl=0\r\n",
		"# Shard\r\n", "shard_name:all\r\n", "shard_start:0\r\n", "shard_end:1\r\n", "shard_size_limit:0\r\n",
		"shard_live_bytes:18\r\n", "shard_keys:2\r\n", "shard_index_:keys=1,bytes=10\r\n",
		"shard_index_empty:keys=0,bytes=0\r\n", "shard_index_users:keys=1,bytes=8\r\n",
		"appendfsync:everysec\r\n", "merges:0\r\n", "merge_errors:0\r\n", "merge_damaged_records:0\r\n", "recovery_truncated_records:0\r\n", "recovery_skipped_records:0\r\n",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	if !strings.HasSuffix(info, "\r\n\r\n") {
		t.Errorf("INFO does not end its last line: %q", info[len(info)-20:])
	}
	only := c.do("INFO", "keyspace")
	if !strings.HasPrefix(only, "$") || strings.Contains(only, "# Server") || !strings.Contains(only, "# Keyspace") {
		t.Errorf("INFO keyspace: %q", only)
	}
	c.do("HELLO", "3")
	if v := c.do("INFO", "server"); !strings.HasPrefix(v, "=") || !strings.Contains(v, "txt:# Server") {
		t.Errorf("INFO in RESP3 is not a verbatim string: %q", v[:min(40, len(v))])
	}
	c.do("CONFIG", "SET", "appendfsync", "always")
	if v := c.do("INFO", "shard"); !strings.Contains(v, "appendfsync:always\r\n") {
		t.Errorf("appendfsync not changed at runtime")
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	if _, err := strconv.Atoi(p); err != nil {
		return "?"
	}
	return p
}
