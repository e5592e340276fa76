package shardnode

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// TestHeldPipelineOfBigReplies: a pipeline of GETs of a big value, each
// followed by an INCR (so write runs and reads alternate), sent in one
// write and not read: the node executes no more of it than its socket
// takes plus a pass of replies (the counter stays below the pipeline's
// length), serves another connection meanwhile, and, once the client
// reads, answers every command in order.
func TestHeldPipelineOfBigReplies(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		const pairs, size = 128, 256 << 10 // 32 MB of replies, past any socket buffers
		other := n.raw()
		big := strings.Repeat("b", size)
		if got := other.do("SET", "big", big); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		nc, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		var pipe []byte
		for i := 0; i < pairs; i++ {
			pipe = resp.AppendCommandStrings(pipe, "GET", "big")
			pipe = resp.AppendCommandStrings(pipe, "INCR", "n")
		}
		if _, err := nc.Write(pipe); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		// CLIENT LIST shows the replies the node holds for the client.
		omem := int64(0)
		list := other.do("CLIENT", "LIST")
		for _, f := range strings.Fields(list) {
			if v, ok := strings.CutPrefix(f, "omem="); ok {
				m, _ := strconv.ParseInt(v, 10, 64)
				omem = max(omem, m)
			}
		}
		if omem == 0 {
			t.Errorf("CLIENT LIST: omem 0 everywhere with GET replies of %d bytes unread:\n%s", size, list)
		}
		got := other.do("GET", "n")
		v := 0 // a nil reply: no INCR ran yet
		if got[0] == '$' && got != "$-1\r\n" {
			v, _ = strconv.Atoi(strings.Split(got, "\r\n")[1])
		}
		if v >= pairs {
			t.Fatalf("the node executed all %d INCRs of a pipeline whose replies were not read", pairs)
		}
		rr := resp.NewReplyReader(nc, 64<<10)
		want := bulkStr(big)
		for i := 1; i <= pairs; i++ {
			_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			r, err := rr.Next()
			if err != nil {
				t.Fatalf("GET reply %d: %v", i, err)
			}
			if string(r) != want {
				t.Fatalf("GET reply %d: %d bytes, not the value", i, len(r))
			}
			r, err = rr.Next()
			if err != nil {
				t.Fatalf("INCR reply %d: %v", i, err)
			}
			if w := fmt.Sprintf(":%d\r\n", i); string(r) != w {
				t.Fatalf("INCR reply %d: %q, want %q", i, r, w)
			}
		}
		if got := other.do("GET", "n"); got != bulkStr(strconv.Itoa(pairs)) {
			t.Fatalf("GET n after: %q", got)
		}
	})
}

// TestOutputBufferLimitClosesClient: over client-output-buffer-limit's hard
// limit, or over its soft limit for longer than its seconds, the node
// closes the client, as Redis does, and serves the others.
func TestOutputBufferLimitClosesClient(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		other := n.raw()
		if got := other.do("SET", "big", strings.Repeat("b", 256<<10)); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		for _, limit := range []string{"normal 512kb 0 0", "normal 0 512kb 1"} {
			if got := other.do("CONFIG", "SET", "client-output-buffer-limit", limit); got != "+OK\r\n" {
				t.Fatalf("CONFIG SET: %q", got)
			}
			c := n.raw()
			_ = c.nc.(*net.TCPConn).SetReadBuffer(64 << 10)
			var pipe []byte
			for i := 0; i < 64; i++ {
				pipe = resp.AppendCommandStrings(pipe, "GET", "big")
			}
			if _, err := c.nc.Write(pipe); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond) // past the soft limit's second
			out := c.readAll(20 * time.Second)
			if len(out) >= 64*(256<<10) {
				t.Fatalf("%s: the client got every reply (%d bytes)", limit, len(out))
			}
			if len(out) > 0 && !strings.HasPrefix(bulkStr(strings.Repeat("b", 256<<10)), out[:min(len(out), 100)]) {
				t.Fatalf("%s: unexpected output %q", limit, out[:min(len(out), 40)])
			}
			if got := other.do("GET", "missing"); got != "$-1\r\n" {
				t.Fatalf("the other client: %q", got)
			}
		}
		if got := other.do("CONFIG", "GET", "client-output-buffer-limit"); !contains(got, "normal 0 524288 1 slave") {
			t.Fatalf("CONFIG GET: %q", got)
		}
		if !contains(n.logs.String(), "overcoming of output buffer limits") {
			t.Errorf("no log line for the closed clients")
		}
	})
}

// TestStreamedBigValue: a GET of a value past bitcask.StreamMin is written
// a pass at a time. The replies of a pipeline around it come whole and in
// order; another client is served while the reader is slow; and the value
// sent is the one stored when the GET ran, though the key is overwritten
// and its data file merged away before the client has read it.
func TestStreamedBigValue(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		const size = 8<<20 + 3 // several passes, and not a multiple of any chunk
		other := n.raw()
		old := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		if got := other.do("SET", "big", string(old)); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		nc, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		var pipe []byte
		pipe = resp.AppendCommandStrings(pipe, "PING")
		pipe = resp.AppendCommandStrings(pipe, "GET", "big")
		pipe = resp.AppendCommandStrings(pipe, "INCR", "n")
		pipe = resp.AppendCommandStrings(pipe, "GET", "big")
		if _, err := nc.Write(pipe); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		// The first GET is being written; the INCR waits behind it. The
		// key is replaced and the file that held the old value merged
		// away meanwhile.
		if got := other.do("GET", "n"); got != "$-1\r\n" {
			t.Errorf("INCR ran before the GET's reply was written: GET n = %q", got)
		}
		// What the node holds for the client is a pass, not the value.
		omem := int64(0)
		list := other.do("CLIENT", "LIST")
		for _, f := range strings.Fields(list) {
			if v, ok := strings.CutPrefix(f, "omem="); ok {
				m, _ := strconv.ParseInt(v, 10, 64)
				omem = max(omem, m)
			}
		}
		if omem == 0 || omem > maxPassReplies+streamChunk {
			t.Errorf("CLIENT LIST: largest omem %d while an %d-byte value is read slowly; want a pass at most (%d)", omem, size, maxPassReplies+streamChunk)
		}
		if got := other.do("SET", "big", "small now"); got != "+OK\r\n" {
			t.Fatalf("SET small: %q", got)
		}
		if err := n.srv.db.Merge(); err != nil {
			t.Fatalf("Merge: %v", err)
		}
		rr := resp.NewReplyReader(nc, 64<<10)
		next := func(what string) []byte {
			t.Helper()
			_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			r, err := rr.Next()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return r
		}
		if r := next("PING"); string(r) != "+PONG\r\n" {
			t.Fatalf("PING: %q", r)
		}
		if r := next("first GET"); !bytes.Equal(r, resp.AppendBulk(nil, old)) {
			t.Fatalf("first GET: %d bytes, not the value stored when it ran", len(r))
		}
		if r := next("INCR"); string(r) != ":1\r\n" {
			t.Fatalf("INCR: %q", r)
		}
		if r := next("second GET"); string(r) != "$9\r\nsmall now\r\n" {
			t.Fatalf("second GET: %q", r)
		}
	})
}

// TestStreamedValueInsideExec: EXEC's array holds a big GET's reply whole
// (a stream there would interleave with the replies after it), and a GET
// right after a write of the same key in one pipeline sees that write.
func TestStreamedValueInsideExec(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		big := strings.Repeat("x", 2<<20)
		c := n.raw()
		if got := c.do("SET", "big", big); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		var pipe []byte
		for _, cmd := range [][]string{{"MULTI"}, {"GET", "big"}, {"INCR", "n"}, {"GET", "big"}, {"EXEC"},
			{"APPEND", "big", "y"}, {"GET", "big"}} {
			pipe = resp.AppendCommandStrings(pipe, cmd...)
		}
		want := "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n" + bulkStr(big) + ":1\r\n" + bulkStr(big) +
			fmt.Sprintf(":%d\r\n", len(big)+1) + bulkStr(big+"y")
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.nc.Write(pipe); err != nil {
			t.Fatal(err)
		}
		got := ""
		for i := 0; i < 7; i++ {
			got += c.next()
		}
		if got != want {
			t.Fatalf("replies: %d bytes, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
		}
	})
}

func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestScriptReadsBigValueAndBlockingPop: inside a script, redis.call of a
// GET of a value that would be streamed gets it whole, and a blocking pop
// is refused as Redis 7.0 refuses it, without blocking the connection.
func TestScriptReadsBigValueAndBlockingPop(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		c := n.raw()
		big := strings.Repeat("s", 3<<20)
		if got := c.do("SET", "big", big); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		if got := c.do("EVAL", "return #redis.call('GET', KEYS[1])", "1", "big"); got != fmt.Sprintf(":%d\r\n", len(big)) {
			t.Errorf("EVAL of the big value's length: %q", got)
		}
		if got := c.do("EVAL", "return redis.call('GET', KEYS[1])", "1", "big"); got != bulkStr(big) {
			t.Errorf("EVAL returning the big value: %d bytes", len(got))
		}
		// Redis 7.0 refuses blocking pops in scripts.
		if got := c.do("EVAL", "return redis.call('BLPOP', KEYS[1], 0)", "1", "empty"); !strings.HasPrefix(got, "-ERR This Redis command is not allowed from script") {
			t.Errorf("EVAL of BLPOP on an empty list: %q, want Redis's refusal", got)
		}
		if got := c.do("PING"); got != "+PONG\r\n" {
			t.Errorf("PING after: %q", got)
		}
	})
}

// TestBusyConnectionKeepsOutputBuffer: a connection writing big replies
// batch after batch (a proxy's) keeps its buffer; one whose big replies are
// rare, or over outKeepBusy, gives it back once written.
func TestBusyConnectionKeepsOutputBuffer(t *testing.T) {
	c := &client{}
	write := func(n int) {
		if cap(c.out) < n {
			c.out = make([]byte, 0, n)
		}
		c.out = c.out[:n]
		c.resetOut()
	}
	write(outKeep + 1)
	if c.out != nil {
		t.Fatalf("first big write: buffer of %d kept", cap(c.out))
	}
	for range outBusyRuns {
		write(outKeep + 1)
	}
	if cap(c.out) <= outKeep {
		t.Fatalf("after %d big writes in a row: buffer dropped", outBusyRuns+1)
	}
	kept := cap(c.out)
	write(100) // a small batch between big ones keeps it
	if cap(c.out) != kept {
		t.Fatalf("small write after big ones: cap %d, want %d", cap(c.out), kept)
	}
	write(outKeepBusy + 1)
	if c.out != nil {
		t.Fatalf("buffer over outKeepBusy kept")
	}
	for range outBusyMax + outBusyRuns {
		write(outKeep + 1)
	}
	for range outBusyMax {
		write(100)
	}
	write(outKeep + 1)
	if c.out != nil {
		t.Fatalf("after %d small writes: big buffer still kept", outBusyMax)
	}
}
