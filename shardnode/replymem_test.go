package shardnode

import (
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
