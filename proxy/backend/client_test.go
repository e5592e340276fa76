package backend

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// echoServer answers ECHO x with x, SLEEP ms after sleeping, BUSY ms after
// sleeping without answering any connection meanwhile (a node's event loop
// busy with one big command), DENY with an error and anything else with
// +OK, on addr (a free loopback port when empty). It frames commands with ReplyReader: a command is an array of
// bulk strings.
func echoServer(t *testing.T, addr string) (string, func()) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var loop sync.Mutex // held by BUSY; every command takes it
	serve := func(nc net.Conn) {
		defer nc.Close()
		rr := resp.NewReplyReader(nc, 4096)
		for {
			raw, err := rr.Next()
			if err != nil {
				return
			}
			v, _, err := resp.Parse(raw)
			if err != nil || len(v.Elems) == 0 {
				return
			}
			var out []byte
			loop.Lock()
			loop.Unlock()
			switch strings.ToUpper(string(v.Elems[0].Str)) {
			case "BUSY":
				ms, _ := strconv.Atoi(string(v.Elems[1].Str))
				loop.Lock()
				time.Sleep(time.Duration(ms) * time.Millisecond)
				loop.Unlock()
				out = resp.AppendSimple(nil, "DONE")
			case "ECHO":
				out = resp.AppendBulk(nil, v.Elems[1].Str)
			case "SLEEP":
				ms, _ := strconv.Atoi(string(v.Elems[1].Str))
				time.Sleep(time.Duration(ms) * time.Millisecond)
				out = resp.AppendSimple(nil, "SLEPT")
			case "DENY":
				out = resp.AppendError(nil, "ERR denied")
			default:
				out = resp.AppendOK(nil)
			}
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[nc] = true
			mu.Unlock()
			go serve(nc)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			<-served
			mu.Lock()
			for nc := range conns {
				nc.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func waitUp(t *testing.T, cl *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cl.Up() {
		if time.Now().After(deadline) {
			t.Fatalf("client never came up: %v", cl.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Concurrent callers pipelining on shared connections each get their own
// replies, in their order.
func TestClientPipelinesInOrder(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Conns: 2, Timeout: 5 * time.Second})
	defer cl.Close()
	waitUp(t, cl)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w := NewWaiter()
			reqs := make([]*Request, 20)
			for i := range reqs {
				reqs[i] = &Request{W: w}
			}
			for round := 0; round < 50; round++ {
				w.Begin()
				for i, r := range reqs {
					r.Cmd = resp.AppendCommandStrings(r.Cmd[:0], "ECHO", fmt.Sprintf("%d-%d-%d", g, round, i))
				}
				cl.Send(g, reqs...)
				w.Wait()
				for i, r := range reqs {
					want := string(resp.AppendBulkString(nil, fmt.Sprintf("%d-%d-%d", g, round, i)))
					if r.Err != nil || string(r.Reply) != want {
						t.Errorf("got %q err=%v, want %q", r.Reply, r.Err, want)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

// A request with several replies collects them all.
func TestClientMultiReplyRequest(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Timeout: time.Second})
	defer cl.Close()
	waitUp(t, cl)
	r := &Request{W: NewWaiter(), N: 3}
	r.Cmd = resp.AppendCommandStrings(nil, "ECHO", "a")
	r.Cmd = resp.AppendCommandStrings(r.Cmd, "ECHO", "b")
	r.Cmd = resp.AppendCommandStrings(r.Cmd, "ECHO", "c")
	r.W.Begin()
	cl.Send(0, r)
	r.W.Wait()
	if r.Err != nil || string(r.Reply) != "$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n" {
		t.Fatalf("%q %v", r.Reply, r.Err)
	}
}

// A node that does not answer in time fails the request with a reason, the
// connection is replaced, and later requests succeed.
func TestClientTimeoutAndRecovery(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Timeout: 200 * time.Millisecond})
	defer cl.Close()
	waitUp(t, cl)
	start := time.Now()
	_, err := cl.Do("SLEEP", "1000")
	if err == nil || !strings.Contains(err.Error(), "no reply within") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Fatalf("timeout took %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := cl.Do("ECHO", "back")
		if err == nil && string(v.Str) == "back" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests to a node that is down fail at once with the dial error; when the
// node comes up the client uses it without being told.
func TestClientReconnects(t *testing.T) {
	addr, stop := echoServer(t, "")
	stop()
	var mu sync.Mutex
	var states []bool
	cl := NewClient(ClientConfig{Addr: addr, Timeout: time.Second, MaxBackoff: 100 * time.Millisecond,
		OnState: func(up bool, err error) { mu.Lock(); states = append(states, up); mu.Unlock() }})
	defer cl.Close()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := cl.Do("ECHO", "x"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("a down node made the request wait")
	}
	echoServer(t, addr)
	waitUp(t, cl)
	if v, err := cl.Do("ECHO", "x"); err != nil || string(v.Str) != "x" {
		t.Fatalf("%v %v", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || states[0] || !states[len(states)-1] {
		t.Fatalf("state transitions %v, want down ... up", states)
	}
}

// A handshake error keeps the client down with the handshake's reason.
func TestClientHandshakeError(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Timeout: time.Second, Handshake: func(do func(args ...string) (resp.Value, error)) error {
		v, err := do("DENY")
		if err != nil {
			return err
		}
		if v.IsError() {
			return errors.New("refused: " + string(v.Str))
		}
		return nil
	}})
	defer cl.Close()
	time.Sleep(100 * time.Millisecond)
	_, err := cl.Do("ECHO", "x")
	if err == nil || err.Error() != "refused: ERR denied" {
		t.Fatalf("err = %v", err)
	}
}

// TestConnHearsCloseWithLastReply: a server that sends its last reply and
// closes at once (the FIN arriving with the reply) completes the request
// with that reply, and the Conn notices the close at once, not at the
// request timeout.
func TestConnHearsCloseWithLastReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				rr := resp.NewReplyReader(nc, 512)
				if _, err := rr.Next(); err == nil {
					nc.Write([]byte("+LAST\r\n"))
				}
				nc.Close()
			}()
		}
	}()
	for round := 0; round < 20; round++ {
		c, err := Dial(ln.Addr().String(), time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWaiter()
		w.Begin()
		r := &Request{Cmd: resp.AppendCommandStrings(nil, "PING"), W: w}
		c.Send(r)
		w.Wait()
		if r.Err != nil || string(r.Reply) != "+LAST\r\n" {
			t.Fatalf("round %d: reply %q, err %v", round, r.Reply, r.Err)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the server's close went unnoticed", round)
		}
		c.Close()
	}
}

// A big request on a solo connection may keep the node from answering the
// shared connections for longer than the timeout: their watchdogs allow
// it its allowance (Busy), so the other callers' requests wait instead of
// failing. Without a big request in flight the same wait fails them.
func TestBigRequestDoesNotFailSharedConnection(t *testing.T) {
	addr, _ := echoServer(t, "")
	cl := NewClient(ClientConfig{Addr: addr, Timeout: 200 * time.Millisecond})
	defer cl.Close()
	waitUp(t, cl)
	solo := cl.Solo(64 << 20) // allowance: 8s
	if solo == nil {
		t.Fatal("no solo connection")
	}
	big := &Request{Cmd: resp.AppendCommandStrings(nil, "BUSY", "800"), W: NewWaiter()}
	big.W.Begin()
	solo.Send(big)
	time.Sleep(50 * time.Millisecond) // the node is busy now
	v, err := cl.Do("ECHO", "behind")
	if err != nil || string(v.Str) != "behind" {
		t.Errorf("ECHO on the shared connection while a big request kept the node busy = %q, %v", v.Str, err)
	}
	big.W.Wait()
	if big.Err != nil || string(big.Reply) != "+DONE\r\n" {
		t.Errorf("the big request: %q, %v", big.Reply, big.Err)
	}
	cl.PutSolo(solo)

	// No big request in flight: the node's silence is the timeout's.
	other := NewClient(ClientConfig{Addr: addr, Timeout: 200 * time.Millisecond})
	defer other.Close()
	waitUp(t, other)
	done := make(chan error, 1)
	go func() { _, err := other.Do("BUSY", "800"); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if _, err := cl.Do("ECHO", "behind"); err == nil || !strings.Contains(err.Error(), "no reply within") {
		t.Errorf("ECHO while the node was silent past the timeout: %v; want the timeout", err)
	}
	<-done
}
