package backend

import (
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// TestBlockingConnOutlivesTimeout: a request on a blocking connection may
// wait longer than the timeout (the node enforces the command's own), the
// shared connections keep serving meanwhile, and the connection is reused
// once answered and dropped once failed.
func TestBlockingConnOutlivesTimeout(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Timeout: 100 * time.Millisecond})
	defer cl.Close()
	waitUp(t, cl)
	bc, err := cl.Blocking()
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Cmd: resp.AppendCommandStrings(nil, "SLEEP", "400"), W: NewWaiter()}
	r.W.Begin()
	bc.Send(r)
	// The shared connection is not held up by it.
	if v, err := cl.Do("ECHO", "meanwhile"); err != nil || string(v.Str) != "meanwhile" {
		t.Fatalf("shared connection while a blocking request waits: %v, %v", v, err)
	}
	r.W.Wait()
	if r.Err != nil || string(r.Reply) != "+SLEPT\r\n" {
		t.Fatalf("blocking request past the timeout: %q, %v", r.Reply, r.Err)
	}
	cl.PutBlocking(bc)
	again, err := cl.Blocking()
	if err != nil || again != bc {
		t.Fatalf("idle blocking connection not reused: %p %p %v", again, bc, err)
	}
	again.Fail(errSoloDropped)
	cl.PutBlocking(again)
	fresh, err := cl.Blocking()
	if err != nil || fresh == again {
		t.Fatalf("a failed blocking connection was reused: %v", err)
	}
	cl.PutBlocking(fresh)
}
