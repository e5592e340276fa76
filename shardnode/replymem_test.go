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
// limit the node closes the client, as Redis does, and serves the others.
func TestOutputBufferLimitClosesClient(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		other := n.raw()
		if got := other.do("SET", "big", strings.Repeat("b", 256<<10)); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
		if got := other.do("CONFIG", "SET", "client-output-buffer-limit", "normal 512kb 0 0"); got != "+OK\r\n" {
			t.Fatalf("CONFIG SET: %q", got)
		}
		c := n.raw()
		var pipe []byte
		for i := 0; i < 64; i++ {
			pipe = resp.AppendCommandStrings(pipe, "GET", "big")
		}
		if _, err := c.nc.Write(pipe); err != nil {
			t.Fatal(err)
		}
		out := c.readAll(20 * time.Second)
		if strings.Count(out, "\r\n") >= 2*64 {
			t.Fatalf("the client got every reply (%d bytes) over the limit", len(out))
		}
		if !bytes.HasPrefix([]byte(bulkStr(strings.Repeat("b", 256<<10))), []byte(out[:min(len(out), 10)])) {
			t.Fatalf("unexpected output %q", out[:min(len(out), 40)])
		}
		if got := other.do("GET", "missing"); got != "$-1\r\n" {
			t.Fatalf("the other client: %q", got)
		}
		if got := other.do("CONFIG", "GET", "client-output-buffer-limit"); !contains(got, "normal 524288 0 0 slave") {
			t.Fatalf("CONFIG GET: %q", got)
		}
	})
}
