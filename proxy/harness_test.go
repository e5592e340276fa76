package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/rangemap"
)

// The tests run the real shard node binary, built once by TestMain, and an
// in-process proxy, and drive them with go-redis. Every node process is
// killed when its test ends, when TestMain ends, and (Pdeathsig) if the
// test binary dies.

var nodeBin, proxyBin string

var procs struct {
	sync.Mutex
	all map[*exec.Cmd]bool
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shardkv-proxy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for both binaries. SHARDKV_TEST_NODE_BIN names a node
	// binary to use instead of building one (to test the proxy while the
	// node's tree is mid-change).
	nodeBin = filepath.Join(dir, "shardkv-node")
	proxyBin = filepath.Join(dir, "shardkv-proxy")
	pkgs := []string{"github.com/shardkv/shardkv/cmd/shardkv-proxy"}
	if bin := os.Getenv("SHARDKV_TEST_NODE_BIN"); bin != "" {
		nodeBin = bin
	} else {
		pkgs = append(pkgs, "github.com/shardkv/shardkv/cmd/shardkv-node")
	}
	build := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		return 1
	}
	procs.all = map[*exec.Cmd]bool{}
	defer func() {
		procs.Lock()
		for c := range procs.all {
			c.Process.Kill()
			c.Wait()
		}
		procs.Unlock()
	}()
	return m.Run()
}

// node is a shard node process.
type node struct {
	name     string
	addr     string
	dir      string
	password string
	cmd      *exec.Cmd
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newNode(t testing.TB, name string) *node {
	n := &node{name: name, addr: freeAddr(t), dir: t.TempDir()}
	t.Cleanup(n.stop)
	return n
}

// start runs the node and waits until it accepts connections.
func (n *node) start(t testing.TB) {
	t.Helper()
	args := []string{"-addr", n.addr, "-dir", n.dir, "-appendfsync", "everysec", "-log-level", "warn"}
	if n.password != "" {
		args = append(args, "-requirepass", n.password)
	}
	cmd := exec.Command(nodeBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	procs.Lock()
	procs.all[cmd] = true
	procs.Unlock()
	n.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", n.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never listened on %s: %v", n.name, n.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the node (as a crash would) and waits for it to exit.
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	n.cmd.Wait()
	procs.Lock()
	delete(procs.all, n.cmd)
	procs.Unlock()
	n.cmd = nil
}

// client is a go-redis client connected to the node directly.
func (n *node) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.addr, Password: n.password, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// cluster is a proxy in front of shard nodes that split [0,1) evenly.
type cluster struct {
	t     testing.TB
	nodes []*node
	m     *rangemap.Map
	srv   *Server
	addr  string
	file  string // the map file, when the proxy reads one
}

type clusterOpts struct {
	nodes        int
	nodePassword string
	requirePass  string
	timeout      time.Duration
	maxClients   int
	mapFile      bool // write the map to a file and load it from there
	hashTags     bool // the map's hash_tags
	// shards, when set, replaces the even map's shards: the nodes'
	// entries made by the function.
	shards func(nodes []*node) []rangemap.Shard
}

func evenMap(nodes []*node) *rangemap.Map {
	m := &rangemap.Map{}
	for i, n := range nodes {
		host, port, _ := net.SplitHostPort(n.addr)
		p, _ := strconv.Atoi(port)
		start, end := float64(i)/float64(len(nodes)), float64(i+1)/float64(len(nodes))
		if i == len(nodes)-1 {
			end = 1
		}
		m.Shards = append(m.Shards, rangemap.Shard{Name: n.name, Start: start, End: end, Host: host, Port: p})
	}
	return m
}

func startCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 2
	}
	c := &cluster{t: t}
	for i := 0; i < o.nodes; i++ {
		n := newNode(t, fmt.Sprintf("s%d", i))
		n.password = o.nodePassword
		n.start(t)
		c.nodes = append(c.nodes, n)
	}
	c.m = evenMap(c.nodes)
	if o.shards != nil {
		c.m.Shards = o.shards(c.nodes)
		if err := c.m.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	c.m.HashTags = o.hashTags
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	if o.mapFile {
		c.file = filepath.Join(t.TempDir(), "map.json")
		c.writeMap(c.m)
		cfg.MapFile = c.file
	} else {
		cfg.Map = c.m
	}
	cfg.NodePassword = o.nodePassword
	cfg.RequirePass = o.requirePass
	if o.timeout > 0 {
		cfg.Timeout = o.timeout
	}
	if o.maxClients > 0 {
		cfg.MaxClients = o.maxClients
	}
	level := hclog.Off
	if testing.Verbose() {
		level = hclog.Info
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "proxy", Level: level, Output: os.Stderr})
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	c.srv, c.addr = srv, ln.Addr().String()
	c.waitReachable()
	return c
}

func (c *cluster) writeMap(m *rangemap.Map) {
	data, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.file, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// waitReachable waits until the proxy reaches every node of its table.
func (c *cluster) waitReachable() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, sh := range c.srv.table.Load().shards {
			if !sh.resp2.Up() || !sh.resp3.Up() {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for _, sh := range c.srv.table.Load().shards {
				c.t.Logf("shard %s up=%v err=%v", sh.name, sh.resp2.Up(), sh.resp2.Err())
			}
			c.t.Fatal("the proxy never reached every node")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client returns a go-redis client of the proxy speaking proto.
func (c *cluster) client(proto int) *redis.Client {
	r := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: proto, MaxRetries: -1})
	c.t.Cleanup(func() { r.Close() })
	return r
}

// owner returns the index of the node whose range holds key.
func (c *cluster) owner(key string) int {
	return c.m.Find(c.m.Position([]byte(key)))
}

// keysOn returns n keys owned by node i, with prefix.
func (c *cluster) keysOn(i, n int, prefix string) []string {
	var out []string
	for j := 0; len(out) < n; j++ {
		k := fmt.Sprintf("%s%d", prefix, j)
		if c.owner(k) == i {
			out = append(out, k)
		}
	}
	return out
}

func forEachProto(t *testing.T, f func(t *testing.T, proto int)) {
	for _, p := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", p), func(t *testing.T) { f(t, p) })
	}
}
