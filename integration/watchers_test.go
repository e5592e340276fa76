package integration

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/resp"
)

// watchers is how many clients of one proxy WATCH keys of one node. Each
// used to hold a proxy-to-node connection of its own: 500 of them gave the
// node 503 connections, and 10,000 filled its -maxclients, locking out
// every other proxy.
const watchers = 10000

// raiseNoFile lifts the soft limit on descriptors to the hard one (the
// servers started next inherit it) and skips the test when that is below
// need.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("setrlimit: %v", err)
		}
	}
	if lim.Cur < need {
		t.Skipf("RLIMIT_NOFILE is %d; the test needs %d descriptors", lim.Cur, need)
	}
}

// watcher is a client connection that sent WATCH.
type watcher struct {
	nc net.Conn
	rr *resp.ReplyReader
}

func (w *watcher) do(args ...string) (string, error) {
	w.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		return "", err
	}
	b, err := w.rr.Next()
	return string(b), err
}

// startWatchers connects n clients to addr, each watching its own key of
// keys, 64 at a time.
func startWatchers(t *testing.T, addr string, keys []string) []*watcher {
	t.Helper()
	ws := make([]*watcher, len(keys))
	errs := make(chan error, len(keys))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- fmt.Errorf("watcher %d: dial: %w", i, err)
				return
			}
			w := &watcher{nc: nc, rr: resp.NewReplyReader(nc, 512)}
			ws[i] = w
			if got, err := w.do("WATCH", keys[i]); err != nil || got != "+OK\r\n" {
				errs <- fmt.Errorf("watcher %d: WATCH: %q %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() { closeWatchers(ws) })
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ws
}

func closeWatchers(ws []*watcher) {
	for _, w := range ws {
		if w != nil {
			w.nc.Close()
		}
	}
}

// clientsField reads a field of the Clients section of a node's INFO.
func clientsField(t *testing.T, node *redis.Client, field string) int {
	t.Helper()
	info, err := node.Info(context.Background(), "clients").Result()
	if err != nil {
		t.Fatalf("node INFO clients: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("node INFO clients has no %s: %q", field, info)
	return 0
}

// serves waits until a client of the proxy at addr can write and read a
// key, and returns how long that took.
func serves(t *testing.T, addr, key string) time.Duration {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 5 * time.Second})
	defer rdb.Close()
	ctx := context.Background()
	start := time.Now()
	var err error
	for time.Since(start) < readyTimeout {
		if err = rdb.Set(ctx, key, "v", 0).Err(); err == nil {
			var v string
			if v, err = rdb.Get(ctx, key).Result(); err == nil && v == "v" {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the proxy on %s does not serve %s: %v", addr, key, err)
	return 0
}

// TestWatchersDoNotLockOutProxies: 10,000 clients of one proxy WATCH keys of
// one node while a second proxy serves the same node, and the node sees no
// more connections than before: WATCH takes no connection of its own. The
// node runs with -maxclients 64 rather than its default 10,000, to keep the
// test short: the shape is the same, 10,000 watchers are 150 times the
// node's limit either way. Then other clients fill the node's -maxclients
// directly, and a restarted proxy is still admitted (its handshake on the
// node's reserve for proxies) and serves, while a direct client past the
// limit gets Redis's error.
func TestWatchersDoNotLockOutProxies(t *testing.T) {
	raiseNoFile(t, watchers+2000)
	const nodeMax = 64
	c := StartCluster(t, Options{Shards: 1,
		NodeArgs:  []string{"-maxclients", strconv.Itoa(nodeMax)},
		ProxyArgs: []string{"-maxclients", strconv.Itoa(watchers + 100)}})
	b := &Proc{Name: "proxy-b", Bin: c.Proxy.Bin, Addr: fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]),
		LogPath: c.Proxy.LogPath + ".b"}
	b.Args = append([]string{"-addr", b.Addr}, c.Proxy.Args[2:]...) // c.Proxy.Args starts with -addr <addr>
	b.Start(t)
	t.Cleanup(func() { b.Kill(); b.checkLog(t) })
	b.WaitReady(t)
	serves(t, b.Addr, "b-probe")
	node := c.NodeClient(0, "")
	before := clientsField(t, node, "connected_clients")

	keys := make([]string, watchers)
	for i := range keys {
		keys[i] = "w:" + strconv.Itoa(i)
	}
	start := time.Now()
	ws := startWatchers(t, c.ProxyAddr, keys)
	t.Logf("%d clients of proxy A WATCH a key each: %v", watchers, time.Since(start).Round(time.Millisecond))

	during := clientsField(t, node, "connected_clients")
	t.Logf("node connections: %d before the watchers, %d with them (proxy connections %d, watched keys %d)",
		before, during, clientsField(t, node, "proxy_connections"), clientsField(t, node, "total_watched_keys"))
	if during > before {
		t.Fatalf("the node has %d connections with %d watchers, %d before", during, watchers, before)
	}
	if got := clientsField(t, node, "total_watched_keys"); got != watchers {
		t.Fatalf("the node holds %d watched keys, want %d", got, watchers)
	}
	t.Logf("proxy B serves while they watch: SET and GET in %v", serves(t, b.Addr, "b-during"))
	t.Logf("proxy A serves a new client too: SET and GET in %v", serves(t, c.ProxyAddr, "a-during"))

	// The watches hold: a change through proxy B aborts its watcher's EXEC
	// only.
	rb := redis.NewClient(&redis.Options{Addr: b.Addr, MaxRetries: -1})
	defer rb.Close()
	if err := rb.Set(context.Background(), keys[17], "changed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{17, 18, watchers - 1} {
		w := ws[i]
		w.do("MULTI")
		w.do("SET", keys[i], "mine")
		got, err := w.do("EXEC")
		want := "*1\r\n+OK\r\n"
		if i == 17 {
			want = "*-1\r\n"
		}
		if err != nil || got != want {
			t.Fatalf("watcher %d: EXEC %q %v, want %q", i, got, err, want)
		}
	}

	start = time.Now()
	closeWatchers(ws)
	deadline := time.Now().Add(30 * time.Second)
	for clientsField(t, node, "total_watched_keys") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the node still holds %d watched keys after the watchers left", clientsField(t, node, "total_watched_keys"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the node forgot every watched key %v after the watchers left", time.Since(start).Round(time.Millisecond))

	// Other clients fill the node's -maxclients.
	var direct []net.Conn
	defer func() {
		for _, nc := range direct {
			nc.Close()
		}
	}()
	refused := ""
	for len(direct) <= nodeMax {
		nc, err := net.DialTimeout("tcp", c.Map.Shards[0].Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		direct = append(direct, nc)
		w := &watcher{nc: nc, rr: resp.NewReplyReader(nc, 512)}
		if got, err := w.do("PING"); err != nil || got != "+PONG\r\n" {
			refused = got
			break
		}
	}
	if refused != "-ERR max number of clients reached\r\n" {
		t.Fatalf("a direct client past the node's -maxclients %d: %q", nodeMax, refused)
	}
	t.Logf("%d direct clients fill the node's -maxclients; the next one is refused", len(direct)-1)
	// A proxy that connects now (B restarted) is admitted and serves.
	b.Kill()
	b.Start(t)
	b.WaitReady(t)
	t.Logf("proxy B, restarted with the node full, serves again after %v", serves(t, b.Addr, "b-after"))
	t.Logf("proxy A still serves: %v", serves(t, c.ProxyAddr, "a-after"))
}
