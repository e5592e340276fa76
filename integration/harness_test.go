package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/rangemap"
)

// Timeouts of the harness. Generous: the binaries run with the race detector
// on a small shared machine.
const (
	readyTimeout = 30 * time.Second // a process starts answering
	exitTimeout  = 30 * time.Second // a process exits after a signal
)

// Options describe a test cluster.
type Options struct {
	Shards        int     // number of shard nodes; 3 when 0
	Sizes         []int64 // the map's size limit of each shard; none when nil
	AppendFsync   string  // nodes' -appendfsync; everysec when ""
	StrictIndexes bool    // nodes run with -strict-indexes
	NodePassword  string  // nodes' -requirepass and the proxy's -node-password
	ProxyTimeout  string  // proxy's -timeout; 2s when ""
	ProxyPassword string  // proxy's -requirepass; clients and the CLI use it
	ProxyArgs     []string
	NodeArgs      []string // more flags for every node
	// Etcd, when set, is an etcd endpoint: the map is seeded there under
	// cluster "test" and the proxy reads it with -etcd instead of -map.
	Etcd string
}

// Cluster is a running set of shard nodes and a proxy.
type Cluster struct {
	t         testing.TB
	opts      Options
	Dir       string // everything of this cluster: map, data, logs
	MapFile   string
	Map       *rangemap.Map
	ProxyAddr string
	Nodes     []*Proc // Nodes[i] serves Map.Shards[i]
	Proxy     *Proc

	mu      sync.Mutex
	clients []*redis.Client
}

// StartCluster starts the nodes and the proxy, waits until the proxy serves
// a key on every shard, and registers their shutdown with t.Cleanup.
func StartCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	needBinaries(t)
	if opts.Shards == 0 {
		opts.Shards = 3
	}
	if opts.AppendFsync == "" {
		opts.AppendFsync = "everysec"
	}
	if opts.ProxyTimeout == "" {
		opts.ProxyTimeout = "2s"
	}
	c := &Cluster{t: t, opts: opts, Dir: t.TempDir()}
	t.Cleanup(c.cleanup)

	ports := freePorts(t, opts.Shards+1)
	m := &rangemap.Map{}
	for i := 0; i < opts.Shards; i++ {
		s := rangemap.Shard{
			Name:  fmt.Sprintf("s%d", i),
			Start: float64(i) / float64(opts.Shards),
			End:   float64(i+1) / float64(opts.Shards),
			Host:  "127.0.0.1",
			Port:  ports[i],
		}
		if i < len(opts.Sizes) {
			s.Size = opts.Sizes[i]
		}
		m.Shards = append(m.Shards, s)
	}
	m.Shards[len(m.Shards)-1].End = 1
	if err := m.Validate(); err != nil {
		t.Fatalf("generated range map: %v", err)
	}
	c.Map = m
	c.MapFile = filepath.Join(c.Dir, "map.json")
	writeMap(t, c.MapFile, m)
	c.ProxyAddr = fmt.Sprintf("127.0.0.1:%d", ports[opts.Shards])

	for _, s := range m.Shards {
		args := []string{
			"-addr", s.Addr(),
			"-dir", filepath.Join(c.Dir, "data", s.Name),
			"-appendfsync", opts.AppendFsync,
			"-log-level", "info",
		}
		if opts.StrictIndexes {
			args = append(args, "-strict-indexes")
		}
		if opts.NodePassword != "" {
			args = append(args, "-requirepass", opts.NodePassword)
		}
		args = append(args, opts.NodeArgs...)
		c.Nodes = append(c.Nodes, &Proc{Name: s.Name, Bin: bin("shardkv-node"), Args: args,
			Addr: s.Addr(), Password: opts.NodePassword, LogPath: filepath.Join(c.Dir, "logs", s.Name+".log")})
	}
	mapArgs := []string{"-map", c.MapFile}
	if opts.Etcd != "" {
		seedEtcd(t, opts.Etcd, m)
		mapArgs = []string{"-etcd", opts.Etcd, "-cluster", etcdCluster}
	}
	args := append([]string{"-addr", c.ProxyAddr, "-timeout", opts.ProxyTimeout, "-log-level", "info"}, mapArgs...)
	if opts.NodePassword != "" {
		args = append(args, "-node-password", opts.NodePassword)
	}
	if opts.ProxyPassword != "" {
		args = append(args, "-requirepass", opts.ProxyPassword)
	}
	args = append(args, opts.ProxyArgs...)
	c.Proxy = &Proc{Name: "proxy", Bin: bin("shardkv-proxy"), Args: args, Addr: c.ProxyAddr, Password: opts.ProxyPassword,
		LogPath: filepath.Join(c.Dir, "logs", "proxy.log")}
	c.StartAll()
	return c
}

func writeMap(t testing.TB, path string, m *rangemap.Map) {
	t.Helper()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// StartAll starts every node, then the proxy, and waits until the cluster
// serves every shard.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for i := range c.Nodes {
		c.Nodes[i].Start(c.t)
	}
	for i := range c.Nodes {
		c.Nodes[i].WaitReady(c.t)
	}
	c.Proxy.Start(c.t)
	c.Proxy.WaitReady(c.t)
	c.WaitServing()
}

// StopAll stops the proxy, then the nodes, with sig, and fails the test if
// any exits with an error (a clean shutdown exits 0).
func (c *Cluster) StopAll(sig syscall.Signal) {
	c.t.Helper()
	c.Proxy.StopClean(c.t, sig)
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Signal(c.t, sig) }()
	}
	wg.Wait()
	for _, n := range c.Nodes {
		n.WaitExitClean(c.t)
	}
}

// StartNode restarts node i (stopped by the test) and waits until the proxy
// serves its keys again.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	c.Nodes[i].Start(c.t)
	c.Nodes[i].WaitReady(c.t)
	c.waitShard(i, readyTimeout)
}

// WaitServing waits until a GET of a key on each shard gets a reply that is
// not an error: the proxy reaches the node and the node holds its
// assignment.
func (c *Cluster) WaitServing() {
	c.t.Helper()
	for i := range c.Map.Shards {
		c.waitShard(i, readyTimeout)
	}
}

func (c *Cluster) waitShard(i int, timeout time.Duration) {
	c.t.Helper()
	rdb := c.Client()
	key := c.KeysOn(i, "probe", 1)[0]
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		err = rdb.Get(context.Background(), key).Err()
		if err == nil || err == redis.Nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("the proxy does not serve shard %s after %v: GET %s: %v", c.Map.Shards[i].Name, timeout, key, err)
}

// Client returns a go-redis client for the proxy, without retries so every
// error the proxy replies is seen as it is; closed at cleanup.
func (c *Cluster) Client() *redis.Client {
	return c.ClientWith(func(*redis.Options) {})
}

// ClientWith is Client with options changed by set.
func (c *Cluster) ClientWith(set func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: c.ProxyAddr, Password: c.opts.ProxyPassword, MaxRetries: -1, DialTimeout: 5 * time.Second,
		ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second}
	set(o)
	rdb := redis.NewClient(o)
	c.mu.Lock()
	c.clients = append(c.clients, rdb)
	c.mu.Unlock()
	return rdb
}

// NodeClient returns a client connected directly to node i.
func (c *Cluster) NodeClient(i int, password string) *redis.Client {
	return c.ClientWith(func(o *redis.Options) {
		o.Addr = c.Map.Shards[i].Addr()
		o.Password = password
	})
}

// KeysOn returns n keys "prefix-N" (prefix may name an index, "idx:k")
// whose position falls in shard i.
func (c *Cluster) KeysOn(i int, prefix string, n int) []string {
	var out []string
	for j := 0; len(out) < n; j++ {
		k := prefix + "-" + strconv.Itoa(j)
		if c.ShardOf(k) == i {
			out = append(out, k)
		}
	}
	return out
}

// ShardOf returns the index of the shard that owns key.
func (c *Cluster) ShardOf(key string) int {
	return c.Map.Find(c.Map.Position([]byte(key)))
}

// TryAgainPrefix is the error the proxy replies for a key of shard i while
// the node is down (docs/INTERNALS.md).
func (c *Cluster) TryAgainPrefix(i int) string {
	s := c.Map.Shards[i]
	return fmt.Sprintf("TRYAGAIN shard %s (%s) unavailable: ", s.Name, s.Addr())
}

// UncertainPrefix is the start of the error a write gets when it reached
// shard i and no reply came back (the node died or stalled with it in
// flight): it may or may not have been applied.
func (c *Cluster) UncertainPrefix(i int) string {
	s := c.Map.Shards[i]
	return fmt.Sprintf("UNCERTAIN shard %s (%s) failed after the command was sent", s.Name, s.Addr())
}

// cleanup closes the clients, kills every process still running, reports
// data races found in the logs, and on failure shows the end of each log.
func (c *Cluster) cleanup() {
	c.closeClients()
	procs := append([]*Proc{c.Proxy}, c.Nodes...)
	for _, p := range procs {
		if p != nil {
			p.Kill()
		}
	}
	for _, p := range procs {
		if p != nil {
			p.checkLog(c.t)
		}
	}
}

// closeClients closes every client Client and ClientWith returned.
func (c *Cluster) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rdb := range c.clients {
		rdb.Close()
	}
	c.clients = nil
}

// Proc is one server process, restartable with the same arguments.
type Proc struct {
	Name     string
	Bin      string
	Args     []string
	Addr     string // where it listens
	Password string // for the readiness PING
	LogPath  string // stdout and stderr of every run, appended
	// Env is added to the environment of the next runs (the fail points of
	// the cross-shard transaction tests).
	Env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
	err  error         // the current run's exit, after done
	runs int
}

// Start runs the process; its output goes to LogPath.
func (p *Proc) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			t.Fatalf("%s: Start while running", p.Name)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.runs++
	fmt.Fprintf(f, "=== run %d: %s %s\n", p.runs, p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the current run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// WaitReady waits until the process answers PING on Addr.
func (p *Proc) WaitReady(t testing.TB) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, Password: p.Password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, PoolSize: 1})
	defer rdb.Close()
	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		if !p.Running() {
			t.Fatalf("%s exited while starting: %v\n%s", p.Name, p.exitErr(), p.LogTail(30))
		}
		if err = rdb.Ping(context.Background()).Err(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not answer PING on %s after %v: %v\n%s", p.Name, p.Addr, readyTimeout, err, p.LogTail(30))
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the current run.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.Name, err)
	}
}

// WaitExit waits for the current run to exit and returns its error; it
// fails the test (and kills the process) after exitTimeout.
func (p *Proc) WaitExit(t testing.TB) error {
	t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return p.exitErr()
	case <-time.After(exitTimeout):
		p.Kill()
		t.Fatalf("%s did not exit within %v after the signal\n%s", p.Name, exitTimeout, p.LogTail(30))
		return nil
	}
}

// WaitExitClean is WaitExit that fails the test unless the exit status is 0.
func (p *Proc) WaitExitClean(t testing.TB) {
	t.Helper()
	if err := p.WaitExit(t); err != nil {
		t.Errorf("%s did not exit cleanly: %v\n%s", p.Name, err, p.LogTail(30))
	}
}

// StopClean sends sig and waits for a clean exit.
func (p *Proc) StopClean(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.Signal(t, sig)
	p.WaitExitClean(t)
}

// Kill sends SIGKILL if the current run is still going, and waits for it.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

// LogTail returns the last n lines of the log.
func (p *Proc) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), p.LogPath, strings.Join(lines, "\n"))
}

// checkLog fails the test when the race detector reported a race in the
// process, and on failure logs the end of the log.
func (p *Proc) checkLog(t testing.TB) {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return
	}
	if i := bytes.Index(data, []byte("WARNING: DATA RACE")); i >= 0 {
		end := min(len(data), i+6000)
		t.Errorf("%s: the race detector found a data race (full log: %s):\n%s", p.Name, p.LogPath, data[i:end])
	}
	if i := bytes.Index(data, []byte("panic: ")); i >= 0 {
		end := min(len(data), i+4000)
		t.Errorf("%s panicked (full log: %s):\n%s", p.Name, p.LogPath, data[i:end])
	}
	if t.Failed() {
		t.Log(p.LogTail(40))
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago, picked below the kernel's ephemeral range so that client connections
// do not take them while a test has a node stopped.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			t.Fatal("no free ports")
		}
		port := 20000 + rand.IntN(12000)
		if portsUsed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[port] = true
		out = append(out, port)
	}
	return out
}

// CLIResult is the outcome of one run of bin/shardkv.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

// RunCLI runs bin/shardkv with args and stdin against the cluster's proxy.
func (c *Cluster) RunCLI(t testing.TB, stdin []byte, args ...string) CLIResult {
	t.Helper()
	global := []string{"-addr", c.ProxyAddr}
	if c.opts.ProxyPassword != "" {
		global = append(global, "-password", c.opts.ProxyPassword)
	}
	return runCLI(t, stdin, append(global, args...)...)
}

func runCLI(t testing.TB, stdin []byte, args ...string) CLIResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("shardkv"), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := CLIResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("shardkv %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return res
}

// lines splits text into its lines, without the final empty one.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
