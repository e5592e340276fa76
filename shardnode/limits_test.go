package shardnode

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heapWatch samples the heap in use while fn runs and returns the largest
// growth over the starting point.
func heapWatch(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// TestProtocolLimits sends what would make a naive server allocate
// gigabytes — a 600 MB bulk header, a two-billion multibulk count, a 100 MB
// inline line, and many honest-but-unfinished 500 MB bulks — and checks
// each gets Redis's error (or is merely held) while the heap stays small.
func TestProtocolLimits(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	const maxGrowth = 64 << 20

	attack := func(name, payload, wantErr string, extra int) {
		t.Helper()
		growth := heapWatch(func() {
			c := dialRaw(t, n.addr)
			// The valid command before the bad one is answered first.
			c.send("SET", "before", "1")
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
				c.nc.Write([]byte(payload))
				junk := bytes.Repeat([]byte("x"), 1<<20)
				for sent := 0; sent < extra; sent += len(junk) {
					if _, err := c.nc.Write(junk); err != nil {
						return // the server hung up, as it should
					}
				}
			}()
			got := c.readAll(10 * time.Second)
			want := ok + "-ERR " + wantErr + "\r\n"
			if got != want {
				t.Errorf("%s: got %q, want %q", name, got, want)
			}
			c.close()
			wg.Wait()
		})
		if growth > maxGrowth {
			t.Errorf("%s: heap grew by %d MiB", name, growth>>20)
		}
		t.Logf("%s: heap growth %d KiB", name, growth>>10)
	}
	attack("600 MB bulk header", "*2\r\n$3\r\nGET\r\n$600000000\r\n", "Protocol error: invalid bulk length", 8<<20)
	attack("two-billion multibulk", "*2000000000\r\n", "Protocol error: invalid multibulk length", 8<<20)
	attack("100 MB inline line", "SET k ", "Protocol error: too big inline request", 100<<20)

	// Honest but unfinished: 20 connections each declare a 500 MB value
	// (within the limit) and send 256 KiB of it. The server buffers what
	// arrived, never what was declared.
	growth := heapWatch(func() {
		var conns []net.Conn
		for i := 0; i < 20; i++ {
			c := dialRaw(t, n.addr)
			c.nc.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n"))
			c.nc.Write(bytes.Repeat([]byte("v"), 256<<10))
			conns = append(conns, c.nc)
		}
		time.Sleep(200 * time.Millisecond)
		// The node still serves others meanwhile.
		if got := n.raw().do("PING"); got != "+PONG\r\n" {
			t.Errorf("PING while others stall: %q", got)
		}
		for _, c := range conns {
			c.Close()
		}
	})
	if growth > maxGrowth {
		t.Errorf("20 unfinished 500 MB bulks: heap grew by %d MiB", growth>>20)
	}
	t.Logf("20 unfinished 500 MB bulks: heap growth %d KiB", growth>>10)

	// Other connections are unaffected, and the first SETs were stored.
	c := n.raw()
	if got := c.do("GET", "before"); got != bs("1") {
		t.Errorf("GET before: %q", got)
	}
	if info := c.do("INFO", "stats"); !strings.Contains(info, "total_protocol_errors:3\r\n") {
		t.Errorf("protocol errors not counted: %q", info)
	}
}

// TestRedconProtocolErrors: framing errors redcon itself detects are
// answered with Redis's text and the connection is closed.
func TestRedconProtocolErrors(t *testing.T) {
	n := startNode(t, "", nil)
	for payload, want := range map[string]string{
		"*1\r\n$3\r\nGETxx":                      "-ERR Protocol error: invalid bulk length\r\n",
		"SET \"a b\r\n":                          "-ERR Protocol error: unbalanced quotes in request\r\n",
		"*1\r\n$4\r\nPING\r\n*1\r\n$1\r\nab\r\n": "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
	} {
		c := n.raw()
		c.nc.Write([]byte(payload))
		if got := c.readAll(2 * time.Second); got != want {
			t.Errorf("%q: got %q, want %q", payload, got, want)
		}
	}
}

// TestInlineCommands: redis-cli style inline commands work.
func TestInlineCommands(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.nc.Write([]byte("SET k \"hello world\"\r\nGET k\nPING\r\n"))
	want := ok + bs("hello world") + "+PONG\r\n"
	var got string
	for i := 0; i < 3; i++ {
		got += c.next()
	}
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLargeRequestBufferReleased: after a connection sent a large value,
// the buffer that held it is not kept while the connection idles.
func TestLargeRequestBufferReleased(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var conns []*rawConn
	val := strings.Repeat("v", 4<<20)
	for i := 0; i < 10; i++ {
		c := n.raw()
		if got := c.do("SET", "big", val); got != ok {
			t.Fatalf("SET: %q", got)
		}
		if got := c.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("PING: %q", got)
		}
		conns = append(conns, c)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("10 idle connections that each sent 4 MiB hold %d KiB", grown>>10)
	if grown > 16<<20 {
		t.Errorf("idle connections keep %d MiB after large requests", grown>>20)
	}
	for _, c := range conns {
		c.close()
	}
}
