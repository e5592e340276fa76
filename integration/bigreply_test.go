package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// bigReplyLen is the value TestBigGetStreamed reads: past the proxy's
// stream-reference threshold many times over, mostly a hole in the data
// file (SETRANGE at its end) so that writing it is quick.
const bigReplyLen = 256 << 20

// TestBigGetStreamed: a GET of a 256 MB value through the proxy, read
// slowly, is streamed: the node and the proxy each grow by a bounded
// amount, never by the value, while another client's commands on the shard
// are answered; the value arrives whole and in order with the replies
// around it; a client that leaves in the middle of the value loses the
// connection only, and the next GETs work.
func TestBigGetStreamed(t *testing.T) {
	c := StartCluster(t, Options{Shards: 1})
	ctx := context.Background()
	rdb := c.Client()
	head := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB of data before the hole
	must(t, rdb.SetRange(ctx, "big", 0, string(head)).Err())
	must(t, rdb.SetRange(ctx, "big", bigReplyLen-1, "z").Err())
	must(t, rdb.Set(ctx, "small", "s", 0).Err())

	procs := map[string]int{"node": c.Nodes[0].Pid(), "proxy": c.Proxy.Pid()}
	base := map[string]int64{}
	for name, pid := range procs {
		base[name] = rssBytes(pid)
	}
	var peaks rssPeak
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		peaks.sample(stop, procs)
	}()
	stopSampling := sync1(func() { close(stop); <-sampled })
	defer stopSampling()

	var pipe []byte
	pipe = resp.AppendCommandStrings(pipe, "GET", "small")
	pipe = resp.AppendCommandStrings(pipe, "GET", "big")
	pipe = resp.AppendCommandStrings(pipe, "GET", "small")
	nc := dialUnread(t, c.ProxyAddr, pipe)

	// The reader holds back; the shard serves the others meanwhile.
	time.Sleep(time.Second)
	var worst time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		if v, err := rdb.Get(ctx, "small").Result(); err != nil || v != "s" {
			t.Errorf("GET small while the big value waits for its reader: %q, %v", v, err)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("another client's GET while the big value waits: slowest of 5 took %v", worst)

	// Now read it all, slowly at first, checking as it comes.
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReaderSize(nc, 64<<10)
	expectLine := func(want string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("reply line %q, %v; want %q", line, err, want)
		}
	}
	expectLine("$1\r\n")
	expectLine("s\r\n")
	expectLine(fmt.Sprintf("$%d\r\n", bigReplyLen))
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, head) {
		t.Fatalf("the value's first MiB: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	zeros := make([]byte, len(got))
	for left := bigReplyLen - len(head) - 1; left > 0; {
		n := min(left, len(got))
		if _, err := io.ReadFull(br, got[:n]); err != nil {
			t.Fatalf("reading the value, %d bytes left: %v", left, err)
		}
		if !bytes.Equal(got[:n], zeros[:n]) {
			t.Fatalf("the value's hole reads other than zeros, %d bytes before its end", left)
		}
		left -= n
	}
	expectLine("z\r\n")
	expectLine("$1\r\n")
	expectLine("s\r\n")
	stopSampling()
	for name := range procs {
		grow := peaks.get(name) - base[name]
		t.Logf("%s RSS: baseline %d MB, peak while streaming %d MB", name, base[name]>>20, peaks.get(name)>>20)
		if grow > 64<<20 {
			t.Errorf("%s RSS grew by %d MB streaming a %d MB value (bound 64 MB)", name, grow>>20, bigReplyLen>>20)
		}
	}

	// A client that leaves in the middle of the value.
	quitter := dialUnread(t, c.ProxyAddr, resp.AppendCommandStrings(nil, "GET", "big"))
	_ = quitter.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(quitter, got[:4<<10]); err != nil {
		t.Fatalf("the quitter's first bytes: %v", err)
	}
	quitter.Close()
	for i := 0; i < 3; i++ {
		if n, err := rdb.StrLen(ctx, "big").Result(); err != nil || n != bigReplyLen {
			t.Errorf("STRLEN big after a reader left: %d, %v", n, err)
		}
		if v, err := rdb.Get(ctx, "small").Result(); err != nil || v != "s" {
			t.Errorf("GET small after a reader left: %q, %v", v, err)
		}
	}
}

// sync1 returns f to be run at most once.
func sync1(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}
