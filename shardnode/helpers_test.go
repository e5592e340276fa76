package shardnode

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// testNode is an in-process shard node serving on 127.0.0.1:0.
type testNode struct {
	t    *testing.T
	srv  *Server
	addr string
	dir  string
	done chan error
	logs *syncWriter
}

// startNode serves a node on a free loopback port; edit adjusts the config.
// The node is shut down when the test ends.
func startNode(t *testing.T, dir string, edit func(*Config)) *testNode {
	t.Helper()
	return startNodeOn(t, dir, edit, nil)
}

// startNodeOn is startNode with the listener passed through wrap (nil: as
// it is).
func startNodeOn(t *testing.T, dir string, edit func(*Config), wrap func(net.Listener) net.Listener) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	logs := &syncWriter{buf: &bytes.Buffer{}}
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Dir = dir
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	cfg.Storage = func(o *bitcask.Options) {
		o.MergeCheckInterval = time.Hour
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{t: t, srv: srv, addr: ln.Addr().String(), dir: dir, done: make(chan error, 1), logs: logs}
	var served net.Listener = ln
	if wrap != nil {
		served = wrap(ln)
	}
	go func() { n.done <- srv.Serve(served) }()
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down (idempotent).
func (n *testNode) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("Shutdown: %v", err)
	}
	if err := <-n.done; !errors.Is(err, ErrServerClosed) {
		n.t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	n.srv = nil
}

// assignAll gives the node the whole key space.
func (n *testNode) assignAll() {
	n.t.Helper()
	c := n.raw()
	defer c.close()
	if got := c.do("SHARD.ASSIGN", "all", "0", "1", "0"); got != "+OK\r\n" {
		n.t.Fatalf("SHARD.ASSIGN: %q", got)
	}
}

// client returns a go-redis client speaking RESP proto.
func (n *testNode) client(proto int, edit ...func(*redis.Options)) *redis.Client {
	opt := &redis.Options{Addr: n.addr, Protocol: proto, MaxRetries: -1, PoolSize: 4,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	for _, e := range edit {
		e(opt)
	}
	c := redis.NewClient(opt)
	n.t.Cleanup(func() { c.Close() })
	return c
}

// rawConn sends commands and returns each reply's exact bytes.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	rr *resp.ReplyReader
}

func (n *testNode) raw() *rawConn { return dialRaw(n.t, n.addr) }

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, rr: resp.NewReplyReader(nc, 4096)}
}

func (c *rawConn) close() { c.nc.Close() }

// send writes a command without reading its reply.
func (c *rawConn) send(args ...string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		c.t.Fatalf("write %v: %v", args, err)
	}
}

// next reads one reply.
func (c *rawConn) next() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.rr.Next()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return string(b)
}

func (c *rawConn) do(args ...string) string {
	c.t.Helper()
	c.send(args...)
	return c.next()
}

// readAll reads until the server closes the connection or the deadline.
func (c *rawConn) readAll(d time.Duration) string {
	c.nc.SetReadDeadline(time.Now().Add(d))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.nc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out)
		}
	}
}

// syncWriter lets the logger and the test use the log concurrently.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func bulkStr(s string) string { return string(resp.AppendBulkString(nil, s)) }

func errStr(s string) string { return "-" + s + "\r\n" }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// plainListener hides the accepted connections' descriptors, so the node
// serves them with its fallback: a goroutine per connection with plain
// net.Conn reads (serveConn), whatever EventLoops says.
type plainListener struct{ net.Listener }

type plainConn struct{ net.Conn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

func hideFDs(ln net.Listener) net.Listener { return plainListener{ln} }
