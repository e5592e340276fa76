package shardnode

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// serveModes are the ways a node serves connections: its default event
// loop, several loops, a goroutine per connection reading its descriptor
// raw, and the fallback for connections without a descriptor (plain
// net.Conn reads, real sockets with the descriptor hidden). The tests below
// run in each.
var serveModes = []struct {
	name  string
	loops int
	wrap  func(net.Listener) net.Listener
}{
	{"loop", 0, nil},
	{"three-loops", 3, nil},
	{"goroutines", -1, nil},
	{"plain-reads", 0, hideFDs},
}

func forEachMode(t *testing.T, sync bitcask.SyncPolicy, f func(t *testing.T, n *testNode)) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) { c.EventLoops, c.Sync = m.loops, sync }, m.wrap)
			n.assignAll()
			f(t, n)
		})
	}
}

// TestConcurrentWriteRuns: many connections pipeline INCRs mixed with reads
// and connection commands, so that their write runs are committed together
// and each connection resumes after its run; every reply must be the one
// its command earns, and no increment may be lost.
func TestConcurrentWriteRuns(t *testing.T) {
	for _, policy := range []bitcask.SyncPolicy{bitcask.SyncEverySec, bitcask.SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			forEachMode(t, policy, func(t *testing.T, n *testNode) {
				const conns, rounds = 16, 40
				var wg sync.WaitGroup
				for i := 0; i < conns; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						c := dialRaw(t, n.addr)
						own := fmt.Sprintf("own%d", i)
						for r := 1; r <= rounds; r++ {
							// write run, local command, write run, read run
							var req []byte
							req = resp.AppendCommandStrings(req, "INCR", "shared")
							req = resp.AppendCommandStrings(req, "INCR", own)
							req = resp.AppendCommandStrings(req, "PING")
							req = resp.AppendCommandStrings(req, "APPEND", own+":log", "x")
							req = resp.AppendCommandStrings(req, "GET", own)
							c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
							if _, err := c.nc.Write(req); err != nil {
								t.Error(err)
								return
							}
							if got := c.next(); !strings.HasPrefix(got, ":") {
								t.Errorf("INCR shared: %q", got)
								return
							}
							want := []string{fmt.Sprintf(":%d\r\n", r), "+PONG\r\n", fmt.Sprintf(":%d\r\n", r), bulkStr(strconv.Itoa(r))}
							for _, w := range want {
								if got := c.next(); got != w {
									t.Errorf("conn %d round %d: got %q, want %q", i, r, got, w)
									return
								}
							}
						}
					}(i)
				}
				wg.Wait()
				c := n.raw()
				if got, want := c.do("GET", "shared"), bulkStr(strconv.Itoa(conns*rounds)); got != want {
					t.Fatalf("shared counter: %q, want %q", got, want)
				}
			})
		})
	}
}

// TestSlowReader: a client that pipelines large replies and does not read
// them is answered in full once it reads, while the node keeps serving
// others in the meantime (an event loop must not wait for one socket).
func TestSlowReader(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		big := strings.Repeat("v", 256<<10)
		c := n.raw()
		if got := c.do("SET", "big", big); got != ok {
			t.Fatalf("SET: %q", got)
		}
		const gets = 200 // 50 MiB of replies, far beyond the socket buffers
		var req []byte
		for i := 0; i < gets; i++ {
			req = resp.AppendCommandStrings(req, "GET", "big")
		}
		go func() {
			c.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			c.nc.Write(req)
		}()
		time.Sleep(200 * time.Millisecond)
		other := n.raw()
		for i := 0; i < 20; i++ {
			if got := other.do("SET", "k", strconv.Itoa(i)); got != ok {
				t.Fatalf("other client SET: %q", got)
			}
		}
		want := bulkStr(big)
		for i := 0; i < gets; i++ {
			if got := c.next(); got != want {
				t.Fatalf("GET %d: %d bytes, want %d", i, len(got), len(want))
			}
		}
	})
}

// TestCloseReplies: QUIT's +OK and a protocol error's reply reach the
// client before the close, after the replies of the commands before them;
// a half-closed client gets every reply and then EOF.
func TestCloseReplies(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		for _, tc := range []struct {
			req, want string
		}{
			{"PING\r\nQUIT\r\nPING\r\n", "+PONG\r\n+OK\r\n"},
			{string(resp.AppendCommandStrings(nil, "SET", "q", "1")) + "*1\r\n$x\r\n", "+OK\r\n-ERR Protocol error: invalid bulk length\r\n"},
		} {
			nc, err := net.Dial("tcp", n.addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.Write([]byte(tc.req))
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(nc)
			nc.Close()
			if err != nil || string(got) != tc.want {
				t.Errorf("%q: read %q, %v; want %q then EOF", tc.req, got, err, tc.want)
			}
		}
		for i := 0; i < 20; i++ {
			nc, err := net.Dial("tcp", n.addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.Write(resp.AppendCommandStrings(resp.AppendCommandStrings(nil, "INCR", "hc"), "ECHO", "bye"))
			nc.(*net.TCPConn).CloseWrite()
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(nc)
			nc.Close()
			if want := fmt.Sprintf(":%d\r\n$3\r\nbye\r\n", i+1); err != nil || string(got) != want {
				t.Fatalf("half close %d: read %q, %v; want %q then EOF", i, got, err, want)
			}
		}
	})
}

// TestShutdownWithIdleClients: Shutdown closes the connections of every
// loop and returns; the clients see their connection end.
func TestShutdownWithIdleClients(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) { c.EventLoops = m.loops }, m.wrap)
			var conns []*rawConn
			for i := 0; i < 6; i++ {
				c := n.raw()
				if got := c.do("PING"); got != "+PONG\r\n" {
					t.Fatalf("PING: %q", got)
				}
				conns = append(conns, c)
			}
			n.stop()
			for i, c := range conns {
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("client %d after shutdown: %v, want EOF", i, err)
				}
			}
		})
	}
}

// TestRawWaitLetsTheWorldStop: a loop in its raw epoll_wait holds a P the
// runtime cannot take back by itself. A stop of the world (runtime.GC) must
// still complete, whether the loop has just served a request (raw wait) or
// has been idle (ordinary wait), and the node keep serving.
func TestRawWaitLetsTheWorldStop(t *testing.T) {
	prev := runtime.GOMAXPROCS(4)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	n := startNode(t, "", func(c *Config) { c.EventLoops = 1 })
	n.assignAll()
	c := dialRaw(t, n.addr)
	c.send("PING")
	if got := c.next(); got != "+PONG\r\n" {
		t.Fatalf("PING: %q", got)
	}
	if raw := loopsRawWait(n.srv); len(raw) != 1 || !raw[0] {
		t.Fatalf("one loop and 4 Ps: raw wait %v, want [true]", raw)
	}
	for i := 0; i < 30; i++ {
		c.send("INCR", "n")
		if got, want := c.next(), fmt.Sprintf(":%d\r\n", i+1); got != want {
			t.Fatalf("INCR: got %q, want %q", got, want)
		}
		if i%10 == 9 {
			waitIdle(t, n.srv.loops[0])
		}
		stopped := make(chan struct{})
		go func() {
			runtime.GC()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: runtime.GC did not complete while the loop waited", i)
		}
	}
}

// waitIdle waits until the loop, idle, has left its raw wait for an
// ordinary one: the runtime interrupts a goroutine that has run 10 ms
// without a reschedule.
func waitIdle(t *testing.T, l *eventLoop) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !l.idle.Load() {
		if time.Now().After(deadline) {
			t.Fatal("an idle loop still waits raw after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRawWaitNeedsASpareP: loops that would hold every P wait the ordinary
// way, or the listener and the fsync could not run.
func TestRawWaitNeedsASpareP(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	n := startNode(t, "", func(c *Config) { c.EventLoops = 2 })
	n.assignAll()
	c := dialRaw(t, n.addr)
	c.send("SET", "k", "v")
	if got := c.next(); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	if raw := loopsRawWait(n.srv); len(raw) != 2 || raw[0] || raw[1] {
		t.Errorf("two loops and 2 Ps: raw wait %v, want [false false]", raw)
	}
}

// loopsRawWait says, for each loop, whether it waits raw.
func loopsRawWait(s *Server) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var raw []bool
	for _, l := range s.loops {
		raw = append(raw, l.rawWait)
	}
	return raw
}
