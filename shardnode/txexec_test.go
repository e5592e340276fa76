package shardnode

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// The messages that run off the event loop under appendfsync always
// (txexec.go) keep the connection's order: commands pipelined behind one
// in the same write wait for it and are answered after it, in order.
func TestTxOffLoopKeepsPipelineOrder(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.Sync = bitcask.SyncAlways })
	n.assignAll()
	if n.srv.loops == nil {
		t.Fatal("the node serves without event loops: the test would not reach txexec.go")
	}
	c := n.raw()
	var req []byte
	for _, cmd := range [][]string{
		{"SET", "b", "before"},
		prepareArgs("t1", "127.0.0.1:1", "60000", "SET", "a", "1"),
		{"GET", "b"},
		{"TX.COMMIT", "t1"},
		{"GET", "a"},
		prepareArgs("t2", "127.0.0.1:1", "60000", "GETSET", "a", "2"),
		{"TX.ABORT", "t2"},
		{"GET", "a"},
	} {
		req = resp.AppendCommandStrings(req, cmd...)
	}
	if _, err := c.nc.Write(req); err != nil {
		t.Fatal(err)
	}
	want := []string{"+OK\r\n", "*1\r\n+OK\r\n", bulkStr("before"), "+OK\r\n", bulkStr("1"),
		"*1\r\n" + bulkStr("1"), "+OK\r\n", bulkStr("1")}
	for i, w := range want {
		if got := c.next(); got != w {
			t.Fatalf("reply %d: %q, want %q", i, got, w)
		}
	}
}

// Many connections run transactions under appendfsync always while others
// write plain keys: each gets its own replies, every committed
// transaction is applied and every aborted one is not (run with -race: the
// connections go between the loop and the messages' goroutines).
func TestTxOffLoopConcurrent(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.Sync = bitcask.SyncAlways })
	n.assignAll()
	const conns, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for w := 0; w < conns; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := dialRaw(t, n.addr)
			defer c.close()
			for i := 0; i < rounds; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				key := fmt.Sprintf("k%d", w)
				if got := c.do(prepareArgs(id, "127.0.0.1:1", "60000", "SET", key, id)...); got != "*1\r\n+OK\r\n" {
					errs <- fmt.Errorf("prepare %s: %q", id, got)
					return
				}
				verb := "TX.COMMIT"
				if i%2 == 1 {
					verb = "TX.ABORT"
				}
				if got := c.do(verb, id); got != "+OK\r\n" {
					errs <- fmt.Errorf("%s %s: %q", verb, id, got)
					return
				}
				want := fmt.Sprintf("w%d-%d", w, i-i%2) // the last committed
				if got := c.do("GET", key); got != bulkStr(want) {
					errs <- fmt.Errorf("after %s %s: GET %q, want %q", verb, id, got, want)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			c := dialRaw(t, n.addr)
			defer c.close()
			for i := 0; i < rounds; i++ {
				if got := c.do("SET", fmt.Sprintf("plain%d", w), "v"); got != "+OK\r\n" {
					errs <- fmt.Errorf("plain SET: %q", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := n.raw().do("TX.LIST"); !strings.HasPrefix(got, "*0\r\n") {
		t.Fatalf("transactions left: %q", got)
	}
}

// A primary writes its prepare with its decision, not at TX.PREPARE: a
// primary restarted between the two holds nothing, and a COMMIT then gets
// ABORT, as if it had never prepared.
func TestTxPrimaryPrepareWrittenWithDecision(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.assignAll()
	c := n.raw()
	if got := c.do(prepareArgs("t1", n.addr, "60000", "SET", "a", "1")...); got != "*1\r\n+OK\r\n" {
		t.Fatalf("prepare: %q", got)
	}
	n.stop()
	n = startNode(t, dir, nil)
	c = n.raw()
	if got := c.do("TX.LIST"); strings.Contains(got, "prepared") {
		t.Fatalf("the primary's prepare outlived the restart: %q", got)
	}
	if got := c.do("TX.DECIDE", "t1", "COMMIT"); got != "+ABORT\r\n" {
		t.Fatalf("COMMIT after the restart: %q", got)
	}
	if got := c.do("GET", "a"); got != "$-1\r\n" {
		t.Fatalf("GET a: %q", got)
	}
}

// The transaction log follows CONFIG SET appendfsync, as the data does.
func TestTxLogFollowsAppendfsync(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	for _, p := range []string{"always", "no", "everysec"} {
		if got := c.do("CONFIG", "SET", "appendfsync", p); got != "+OK\r\n" {
			t.Fatalf("CONFIG SET appendfsync %s: %q", p, got)
		}
		if got := n.srv.xtx.log.SyncPolicy().String(); got != p {
			t.Fatalf("after CONFIG SET appendfsync %s the transaction log is at %s", p, got)
		}
	}
}
