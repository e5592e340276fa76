package shardnode

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// TestEmptyMultibulkIgnored: like Redis, *0 and a negative count are
// skipped without a reply, and the connection goes on.
func TestEmptyMultibulkIgnored(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	c.nc.Write([]byte("*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n*0\r\n"))
	if got := c.next(); got != "+PONG\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := c.do("ECHO", "still here"); got != bulkStr("still here") {
		t.Fatalf("after empty multibulks: %q", got)
	}
	// Empty and blank inline lines are skipped too.
	c.nc.Write([]byte("\r\n  \r\n\nPING\r\n"))
	if got := c.next(); got != "+PONG\r\n" {
		t.Fatalf("after blank lines: %q", got)
	}
}

// TestRequestsSplitAnywhere: a pipeline arriving a few bytes at a time, cut
// at every possible place, gets the same replies as in one piece.
func TestRequestsSplitAnywhere(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	var req []byte
	var want string
	for i := 0; i < 20; i++ {
		k, v := fmt.Sprintf("k%d", i), strings.Repeat("v", i*7)
		req = resp.AppendCommandStrings(req, "SET", k, v)
		req = resp.AppendCommandStrings(req, "GET", k)
		want += ok + bulkStr(v)
	}
	req = append(req, "PING\r\n"...)
	want += "+PONG\r\n"
	for _, chunk := range []int{1, 3, 7, 64, 1000} {
		c := n.raw()
		for i := 0; i < len(req); i += chunk {
			c.nc.Write(req[i:min(i+chunk, len(req))])
			if i%(16*chunk) == 0 {
				time.Sleep(20 * time.Microsecond) // let the node read what is there
			}
		}
		var got string
		for i := 0; i < 41; i++ {
			got += c.next()
		}
		if got != want {
			t.Fatalf("chunks of %d: replies differ", chunk)
		}
		c.close()
	}
}

// TestQueuedArgumentsSurviveLaterReads: MULTI keeps copies of the queued
// commands' arguments, which the connection's next reads overwrite.
func TestQueuedArgumentsSurviveLaterReads(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	if got := c.do("MULTI"); got != ok {
		t.Fatal(got)
	}
	for i := 0; i < 50; i++ {
		if got := c.do("SET", fmt.Sprintf("q%d", i), fmt.Sprintf("value-%d", i)); got != "+QUEUED\r\n" {
			t.Fatal(got)
		}
		c.do("PING", strings.Repeat("x", 100)) // queued too; new bytes in the buffer
	}
	got := c.do("EXEC")
	if !strings.HasPrefix(got, "*100\r\n") {
		t.Fatalf("EXEC: %q", got[:min(len(got), 40)])
	}
	for i := 0; i < 50; i++ {
		if got := c.do("GET", fmt.Sprintf("q%d", i)); got != bulkStr(fmt.Sprintf("value-%d", i)) {
			t.Fatalf("q%d = %q", i, got)
		}
	}
}

// TestStrlenFromKeyDirectory: STRLEN answers from the key directory for
// values stored as bytes and as integers, inside and outside a transaction.
func TestStrlenFromKeyDirectory(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	for k, v := range map[string]string{"i": "-1234567", "z": "0", "s": "007", "e": "", "b": strings.Repeat("b", 70000)} {
		c.do("SET", k, v)
		if got := c.do("STRLEN", k); got != fmt.Sprintf(":%d\r\n", len(v)) {
			t.Errorf("STRLEN %s = %q, want %d", k, got, len(v))
		}
	}
	c.do("MULTI")
	c.do("SET", "i", "12")
	c.do("STRLEN", "i")
	if got := c.do("EXEC"); got != "*2\r\n+OK\r\n:2\r\n" {
		t.Errorf("EXEC: %q", got)
	}
}

// TestClientsVanishMidCommit: under appendfsync always, clients that reset
// their connection while their writes wait for the group commit's fsync
// (whose leader then writes their replies) leave the node serving.
func TestClientsVanishMidCommit(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.Sync = bitcask.SyncAlways })
	n.assignAll()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nc, err := net.Dial("tcp", n.addr)
			if err != nil {
				t.Error(err)
				return
			}
			var req []byte
			for j := 0; j < 100; j++ {
				req = resp.AppendCommandStrings(req, "SET", fmt.Sprintf("v%d-%d", i, j), "x")
			}
			nc.Write(req)
			if j := i % 3; j > 0 {
				time.Sleep(time.Duration(j) * time.Millisecond)
			}
			nc.(*net.TCPConn).SetLinger(0) // reset, not a clean close
			nc.Close()
		}(i)
	}
	wg.Wait()
	c := n.raw()
	if got := c.do("SET", "after", "1"); got != ok {
		t.Fatalf("SET after: %q", got)
	}
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING: %q", got)
	}
}

// TestHalfCloseAfterPipeline: a client that writes its last commands and
// closes its side at once (its FIN arriving with the bytes, which raises no
// readiness edge of its own) gets every reply and then EOF. Repeated so the
// FIN lands with the data on most rounds.
func TestHalfCloseAfterPipeline(t *testing.T) {
	n := startNode(t, "", nil)
	for i := 0; i < 50; i++ {
		nc, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte("PING\r\n" + string(resp.AppendCommandStrings(nil, "ECHO", "bye"))))
		nc.(*net.TCPConn).CloseWrite()
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(nc)
		nc.Close()
		if err != nil || string(got) != "+PONG\r\n$3\r\nbye\r\n" {
			t.Fatalf("round %d: read %q, %v; want both replies, then EOF", i, got, err)
		}
	}
}
