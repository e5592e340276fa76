package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reply memory: a client that pipelines many GETs of a big value and reads
// nothing must not make the node or the proxy hold all the replies (issue
// 19: main took the node from 6 MB to 2.87 GB and the proxy to 3.6 GB, and
// another client's GET on that shard waited 7.4 s), and a client over
// client-output-buffer-limit is disconnected as Redis does.

const (
	bigValueLen  = 1 << 20
	bigPipelined = 1000
)

// Bounds on the growth of the resident set over the baseline while the
// unread pipeline is held, and once its client is gone (main's code grew
// the node by 2.6 GB and the proxy by 3.2 GB, and kept it). Measured: a
// node grows by a few MB, a proxy by 20-50 MB while its client's rounds
// go by; the race detector multiplies the heap a few times over.
func replyMemBounds() (held, after int64) {
	if raceEnabled {
		return 384 << 20, 160 << 20
	}
	return 128 << 20, 48 << 20
}

// rssBytes reads VmRSS of /proc/pid/status; 0 once the process is gone.
func rssBytes(pid int) int64 { return procStatusBytes(pid, "VmRSS:") }

// peakRSSBytes is pid's highest RSS since it started (VmHWM).
func peakRSSBytes(pid int) int64 { return procStatusBytes(pid, "VmHWM:") }

// procStatusBytes reads one "kB" field of /proc/pid/status, in bytes; 0
// when the process or the field is not there.
func procStatusBytes(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// bigGetPipeline is n GETs of key in RESP, sent as one write.
func bigGetPipeline(key string, n int) []byte {
	cmd := fmt.Sprintf("*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	return bytes.Repeat([]byte(cmd), n)
}

// dialUnread connects to addr with a small receive buffer, so that the
// kernel holds little of what the server sends, and writes b.
func dialUnread(t *testing.T, addr string, b []byte) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := nc.(*net.TCPConn)
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetReadBuffer(64 << 10)
	if _, err := tc.Write(b); err != nil {
		t.Fatal(err)
	}
	return tc
}

type rssPeak struct {
	mu   sync.Mutex
	peak map[string]int64
}

// sample records the peak RSS of each process until stop is closed.
func (p *rssPeak) sample(stop <-chan struct{}, procs map[string]int) {
	p.mu.Lock()
	p.peak = map[string]int64{}
	p.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for name, pid := range procs {
			n := rssBytes(pid)
			p.mu.Lock()
			p.peak[name] = max(p.peak[name], n)
			p.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (p *rssPeak) get(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak[name]
}

// TestUnreadBigReplyPipelineBounded: 1,000 GETs of a 1 MB value in one
// write, never read, through the proxy: the node's and the proxy's RSS stay
// within replyMemBounds of their baselines and come back near them after
// the client goes, and another client's GET on the same shard is answered
// meanwhile.
func TestUnreadBigReplyPipelineBounded(t *testing.T) {
	// The proxy's timeout is long enough that a GET stuck behind the
	// pipeline waits rather than fails.
	c := StartCluster(t, Options{Shards: 1, ProxyTimeout: "30s"})
	ctx := context.Background()
	rdb := c.Client()
	big := strings.Repeat("v", bigValueLen)
	if err := rdb.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "small", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	procs := map[string]int{"node": c.Nodes[0].Pid(), "proxy": c.Proxy.Pid()}
	base := map[string]int64{}
	for name, pid := range procs {
		base[name] = rssBytes(pid)
	}
	held, after := replyMemBounds()

	var peaks rssPeak
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		peaks.sample(stop, procs)
	}()
	stopSampling := func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-sampled
		}
	}
	defer stopSampling()
	pipe := bigGetPipeline("big", bigPipelined)
	nc := dialUnread(t, c.ProxyAddr, pipe)

	// Let the servers do what they will with the pipeline, then ask for
	// another key of the shard while it is held. The bound is generous
	// (the machine is shared): main stalled this GET 7.4 s behind the
	// unread replies.
	time.Sleep(2 * time.Second)
	var worst time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		v, err := rdb.Get(ctx, "small").Result()
		d := time.Since(start)
		if err != nil || v != "x" {
			t.Errorf("GET small while the pipeline is held: %q, %v (after %v)", v, err, d)
		}
		worst = max(worst, d)
		time.Sleep(200 * time.Millisecond)
	}
	// CLIENT LIST shows the held replies as the unread client's omem.
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	omem := int64(-1)
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if strings.Contains(line, " cmd=get ") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "omem="); ok {
					omem, _ = strconv.ParseInt(v, 10, 64)
				}
			}
		}
	}
	t.Logf("CLIENT LIST omem of the unread client: %d", omem)
	if omem < bigValueLen {
		t.Errorf("CLIENT LIST omem of the unread client = %d, want at least one reply (%d bytes):\n%s", omem, bigValueLen, list)
	}
	time.Sleep(time.Second)
	t.Logf("another client's GET on the shard: slowest of 5 took %v", worst)
	if worst > 5*time.Second {
		t.Errorf("another client's GET waited %v behind the unread pipeline", worst)
	}
	for name := range procs {
		t.Logf("%s RSS: baseline %d MB, peak while the pipeline is held %d MB", name, base[name]>>20, peaks.get(name)>>20)
		if grow := peaks.get(name) - base[name]; grow > held {
			t.Errorf("%s RSS grew by %d MB with the pipeline unread (bound %d MB)", name, grow>>20, held>>20)
		}
	}

	// The client reads a few replies, proving they are whole, then goes.
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	want := []byte(fmt.Sprintf("$%d\r\n%s\r\n", bigValueLen, big))
	got := make([]byte, 3*len(want))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Errorf("reading the first replies: %v", err)
	} else if !bytes.Equal(got, bytes.Repeat(want, 3)) {
		t.Errorf("the first replies are not three copies of the value")
	}
	nc.Close()

	// Back near the baseline: within 16 MB, waited for up to 20 s; the
	// bound asserted is after.
	deadline := time.Now().Add(20 * time.Second)
	for name, pid := range procs {
		var n int64
		for {
			n = rssBytes(pid)
			if n-base[name] <= 16<<20 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s RSS after the client left: %d MB (baseline %d MB)", name, n>>20, base[name]>>20)
		if n-base[name] > after {
			t.Errorf("%s RSS is %d MB over its baseline after the client left (bound %d MB)", name, (n-base[name])>>20, after>>20)
		}
	}
	stopSampling()
	for name := range procs {
		t.Logf("%s RSS: peak over the whole test %d MB", name, peaks.get(name)>>20)
	}
	if v, err := rdb.Get(ctx, "small").Result(); err != nil || v != "x" {
		t.Fatalf("GET small after: %q, %v", v, err)
	}
}

// TestOutputBufferLimitDisconnects: with client-output-buffer-limit's
// normal class set (on the proxy, and on a node for its direct clients),
// the unread pipeline's client is closed, with Redis's log line, while
// another client on the same shard is served.
func TestOutputBufferLimitDisconnects(t *testing.T) {
	c := StartCluster(t, Options{Shards: 1, ProxyTimeout: "30s"})
	ctx := context.Background()
	rdb := c.Client()
	if err := rdb.Set(ctx, "big", strings.Repeat("v", bigValueLen), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "small", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A node holds no more than 1 MiB of a connection's replies, so its
	// limits must be below that to be met.
	for _, target := range []struct {
		name   string
		addr   string
		proc   *Proc
		limits []string
	}{
		{"proxy", c.ProxyAddr, c.Proxy, []string{"normal 2mb 0 0", "normal 0 2mb 1"}},
		{"node", c.Map.Shards[0].Addr(), c.Nodes[0], []string{"normal 512kb 0 0", "normal 0 512kb 1"}},
	} {
		t.Run(target.name, func(t *testing.T) {
			admin := c.ClientWith(func(o *redis.Options) { o.Addr = target.addr })
			for _, limit := range target.limits {
				if err := admin.ConfigSet(ctx, "client-output-buffer-limit", limit).Err(); err != nil {
					t.Fatal(err)
				}
				got, err := admin.ConfigGet(ctx, "client-output-buffer-limit").Result()
				if err != nil || !strings.HasPrefix(got["client-output-buffer-limit"], "normal ") {
					t.Fatalf("CONFIG GET: %v, %v", got, err)
				}
				nc := dialUnread(t, target.addr, bigGetPipeline("big", bigPipelined))
				// Closed: the reads end (EOF or reset) before all the
				// replies came, well within the deadline.
				_ = nc.SetReadDeadline(time.Now().Add(60 * time.Second))
				time.Sleep(3 * time.Second) // unread for longer than the soft limit's second
				n, err := io.Copy(io.Discard, nc)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: the client over %q was not closed (read %d bytes)", target.name, limit, n)
				}
				if n >= int64(bigPipelined)*bigValueLen {
					t.Fatalf("%s: the client over %q got all %d bytes", target.name, limit, n)
				}
				if v, err := rdb.Get(ctx, "small").Result(); err != nil || v != "x" {
					t.Fatalf("another client's GET after: %q, %v", v, err)
				}
			}
			if err := admin.ConfigSet(ctx, "client-output-buffer-limit", "normal 0 0 0").Err(); err != nil {
				t.Fatal(err)
			}
			logs, _ := os.ReadFile(target.proc.LogPath)
			if !bytes.Contains(logs, []byte("scheduled to be closed ASAP for overcoming of output buffer limits")) {
				t.Errorf("%s: no log line for the closed client", target.name)
			}
		})
	}
}
