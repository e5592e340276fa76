package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/config"
	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// Grace periods of `cluster`: how long a process may take to start listening,
// and to exit after SIGTERM before it gets SIGKILL.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
)

// The restart policy of `cluster`. A process that exits on its own is
// restarted after restartDelay. A run has started when it accepts
// connections and is still running minUptime later; a run that exits
// sooner, or never accepts connections, failed to start, and each failed
// start in a row doubles the delay before the next try (0.25, 0.5, 1, 2,
// 4 s). After maxFailedStarts in a row the process is given up: a node's
// keys then get TRYAGAIN while the other shards keep serving; without the
// proxy nothing can be served, so giving up on it stops the cluster.
const (
	restartDelay    = 250 * time.Millisecond
	minUptime       = time.Second
	maxFailedStarts = 5
)

// Files of the data directory that are not a shard's: the nodes' password
// and the config files that hand it to the nodes and the proxy. The password
// travels in files of mode 0600 because a command line can be read by every
// user of the machine (ps, /proc/PID/cmdline).
const (
	secretFile     = "node-password"
	nodeConfFile   = "node-auth.conf"
	proxyConfFile  = "proxy-auth.conf"
	secretBytes    = 32
	secretFileMode = 0o600
)

func cmdCluster(args []string, stdout, stderr io.Writer) error {
	fs := subFlags("cluster", nil, stderr)
	data := fs.String("data", "data", "data directory; shard NAME keeps its files in DIR/NAME")
	mapFile := fs.String("map", "", "range map `FILE` (default: the embedded map, three nodes on 127.0.0.1:7001-7003)")
	proxyAddr := fs.String("proxy-addr", "127.0.0.1:6380", "address the proxy listens on")
	binDir := fs.String("bin", "", "directory holding shardkv-node and shardkv-proxy (default: this executable's directory)")
	appendfsync := fs.String("appendfsync", "everysec", "shard nodes' appendfsync: always, everysec or no")
	logLevel := fs.String("log-level", "info", "log level of every process")
	strict := fs.Bool("strict-indexes", false, "start the nodes with -strict-indexes")
	staticMap := fs.Bool("static-map", false, "no embedded etcd: the proxy reads the map file (SHARD.RELOAD rereads it) and the map cannot be split")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics: the proxy's on `HOST:PORT`, the i-th node's (0, 1, ... in map order) on HOST:PORT+1+i (empty: off)")
	if _, err := parseSub(fs, args, 0, "[--data DIR] [--map FILE] [--proxy-addr HOST:PORT] [--bin DIR] [--appendfsync MODE] [--log-level LEVEL] [--strict-indexes] [--static-map] [--metrics-addr HOST:PORT]", stderr); err != nil {
		return err
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return &exitError{code: 2, msg: fmt.Sprintf("--log-level %q: want trace, debug, info, warn or error", *logLevel)}
	}

	var m *rangemap.Map
	if *mapFile == "" {
		m = rangemap.Default()
	} else {
		var err error
		if m, err = rangemap.Load(*mapFile); err != nil {
			return err
		}
	}
	for _, s := range m.Shards {
		if !isLocalHost(s.Host) {
			return fmt.Errorf("shard %s is on host %q: cluster runs every node on this machine, so every host must be 127.0.0.1, ::1 or localhost (start nodes on other machines with shardkv-node)", s.Name, s.Host)
		}
		switch s.Name {
		case secretFile, nodeConfFile, proxyConfFile, placementFile, defaultMapFile, etcdDir, etcdLog, etcdEndpointFile:
			return fmt.Errorf("shard %s: cluster keeps a file of that name in --data; rename the shard", s.Name)
		}
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the binaries: %w (use --bin DIR)", err)
		}
		*binDir = filepath.Dir(exe)
	}
	nodeBin := filepath.Join(*binDir, "shardkv-node")
	proxyBin := filepath.Join(*binDir, "shardkv-proxy")
	for _, b := range []string{nodeBin, proxyBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%v (build the binaries with `make build`, or point --bin at them)", err)
		}
	}

	metrics, err := metricsAddrs(*metricsAddr, len(m.Shards))
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}

	// A port held by another process would answer our readiness check
	// while our process fails to bind it.
	addrs := []string{*proxyAddr}
	for _, s := range m.Shards {
		addrs = append(addrs, s.Addr())
	}
	addrs = append(addrs, metrics...)
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is not free (is another cluster running?): %w", a, err)
		}
		ln.Close()
	}

	c := &localCluster{stderr: stderr, fatal: make(chan error, 1)}
	c.log = hclog.New(&hclog.LoggerOptions{
		Name:   "shardkv-cluster",
		Level:  level,
		Output: &lockedWriter{mu: &c.outMu, w: stderr},
	})

	if err := os.MkdirAll(*data, 0o755); err != nil {
		return err
	}
	if err := clusterPlacement(*data, m, *mapFile != ""); err != nil {
		return err
	}
	proxyMap := *mapFile
	if proxyMap == "" {
		if proxyMap, err = writeDefaultMap(*data, m); err != nil {
			return err
		}
	}
	c.log.Info("placement", "hash_tags", m.HashTags, "recorded_in", filepath.Join(*data, placementFile))
	secret, err := nodeSecret(*data, c.log)
	if err != nil {
		return err
	}
	nodeConf := filepath.Join(*data, nodeConfFile)
	proxyConf := filepath.Join(*data, proxyConfFile)
	if err := writeSecretConf(nodeConf, "requirepass", secret); err != nil {
		return err
	}
	if err := writeSecretConf(proxyConf, "node-password", secret); err != nil {
		return err
	}

	for i, s := range m.Shards {
		dir := filepath.Join(*data, s.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		args := []string{"-addr", s.Addr(), "-dir", dir, "-appendfsync", *appendfsync, "-log-level", *logLevel, "-config", nodeConf}
		if *strict {
			args = append(args, "-strict-indexes")
		}
		if metrics != nil {
			args = append(args, "-metrics-addr", metrics[1+i])
		}
		c.children = append(c.children, &child{name: s.Name, bin: nodeBin, args: args, addr: s.Addr()})
	}
	pargs := []string{"-addr", *proxyAddr, "-log-level", *logLevel, "-config", proxyConf}
	if *staticMap {
		pargs = append(pargs, "-map", proxyMap)
	} else {
		// The map's source of truth is etcd (docs/RESHARDING.md): a
		// single-member etcd embedded in this process, its data in
		// DIR/etcd, seeded from the bootstrap map when it has none.
		emb, err := etcdmap.StartEmbedded(*data)
		if err != nil {
			return err
		}
		defer emb.Close()
		epoch, err := seedMap(emb.Endpoint, m)
		if err != nil {
			return err
		}
		c.log.Info("range map in embedded etcd", "endpoint", emb.Endpoint, "key", etcdmap.MapKey(etcdmap.DefaultCluster), "epoch", epoch)
		if err := writeEtcdEndpoint(*data, emb.Endpoint); err != nil {
			return err
		}
		pargs = append(pargs, "-etcd", emb.Endpoint, "-cluster", etcdmap.DefaultCluster)
		// A node whose move fence outlives its timeout reads the move's
		// outcome there.
		for _, ch := range c.children {
			ch.args = append(ch.args, "-etcd", emb.Endpoint, "-cluster", etcdmap.DefaultCluster)
		}
		// The controller that carries out `shardkv split`, in this
		// process; another `shardkv controller` may stand by.
		ccli, err := etcdmap.Dial(emb.Endpoint)
		if err != nil {
			return err
		}
		defer ccli.Close()
		cctx, stopController := context.WithCancel(context.Background())
		controllerDone := make(chan struct{})
		go func() {
			defer close(controllerDone)
			etcdmap.RunController(cctx, ccli, etcdmap.Config{Cluster: etcdmap.DefaultCluster, ID: "cluster-" + strconv.Itoa(os.Getpid()), NodePassword: secret}, c.log.Named("controller"))
		}()
		defer func() { stopController(); <-controllerDone }()
	}
	if metrics != nil {
		pargs = append(pargs, "-metrics-addr", metrics[0])
	}
	c.children = append(c.children, &child{name: "proxy", bin: proxyBin, args: pargs, addr: *proxyAddr, isProxy: true})

	// The first SIGINT or SIGTERM stops the cluster in order; another one
	// kills every process at once.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	hurry := make(chan struct{})
	go func() {
		sig, ok := <-sigc
		if !ok {
			return
		}
		c.log.Info("stopping the cluster", "signal", sig.String())
		cancel()
		if _, ok := <-sigc; ok {
			close(hurry)
		}
	}()
	defer func() {
		signal.Stop(sigc)
		close(sigc)
	}()

	err = c.startAll(ctx)
	if err == nil {
		printConnect(stdout, m, *proxyAddr, *data)
		if metrics != nil {
			printMetrics(stdout, m, metrics)
		}
		var wg sync.WaitGroup
		for _, ch := range c.children {
			wg.Add(1)
			go func() { defer wg.Done(); c.supervise(ctx, ch) }()
		}
		select {
		case <-ctx.Done():
		case err = <-c.fatal:
		}
		cancel()
		wg.Wait()
	}
	stopErr := c.stop(hurry)
	switch {
	case err == nil && ctx.Err() != nil && stopErr == nil:
		if given := c.givenUp(); len(given) > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("stopped; %s had been given up (see the log above); data kept in %s", strings.Join(given, ", "), *data)}
		}
		fmt.Fprintln(stderr, "shardkv cluster: stopped; data kept in", *data)
		return nil
	case err == nil:
		return stopErr
	case errors.Is(err, errStopped) && stopErr == nil:
		// A signal during start-up is a normal stop.
		fmt.Fprintln(stderr, "shardkv cluster: stopped while starting; data kept in", *data)
		return nil
	case stopErr != nil:
		return fmt.Errorf("%w; %v", err, stopErr)
	}
	return err
}

// Files of the embedded etcd in the data directory.
const (
	etcdDir = "etcd"
	etcdLog = "etcd.log"
)

// seedMap writes the bootstrap map into etcd when the cluster has none and
// returns the epoch of the map etcd holds; a present map is kept, whatever
// the bootstrap map says (splits since the first run live only there).
func seedMap(endpoint string, m *rangemap.Map) (uint64, error) {
	cli, err := etcdmap.Dial(endpoint)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := etcdmap.Seed(ctx, cli, etcdmap.DefaultCluster, m); err != nil {
		return 0, err
	}
	cur, err := etcdmap.Get(ctx, cli, etcdmap.DefaultCluster)
	if err != nil {
		return 0, err
	}
	return cur.Epoch, nil
}

// etcdEndpointFile names, in the data directory, the embedded etcd's
// client URL of the running cluster, for the CLI (split, status) on this
// machine: its port is a free one, new at every start.
const etcdEndpointFile = "etcd-endpoint"

func writeEtcdEndpoint(dir, endpoint string) error {
	return writeFileAtomic(filepath.Join(dir, etcdEndpointFile), []byte(endpoint+"\n"))
}

// errStopped means a signal asked the cluster to stop while it was starting.
var errStopped = errors.New("stopped by signal")

// nodeSecret returns the password of the cluster's nodes, kept in the data
// directory so that every run (and a user with redis-cli) finds the same
// one: read from the file when there, else made from crypto/rand and
// written with mode 0600. Without it any local process could connect to a
// node and, with SHARD.ASSIGN ... FORCE or CONFIG SET, change what it
// stores behind the proxy's back.
func nodeSecret(dir string, log hclog.Logger) (string, error) {
	path := filepath.Join(dir, secretFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		secret := strings.TrimSpace(string(data))
		if secret == "" || strings.ContainsAny(secret, "\r\n") {
			return "", fmt.Errorf("%s must hold one line, the nodes' password (delete it to have a new one made)", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the nodes' password file was readable by other users; making it 0600", "file", path, "mode", fi.Mode().Perm().String())
			if err := os.Chmod(path, secretFileMode); err != nil {
				return "", err
			}
		}
		return secret, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	secret := newSecret()
	if err := writeFileAtomic(path, []byte(secret+"\n")); err != nil {
		return "", fmt.Errorf("writing the nodes' password: %w", err)
	}
	log.Info("made a password for the nodes", "file", path)
	return secret, nil
}

// newSecret is secretBytes from crypto/rand in hex: printable, so it can be
// typed after redis-cli -a, and needs no quoting in a config file.
func newSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails on Linux (crypto/rand panics rather)
	return hex.EncodeToString(b)
}

// writeSecretConf writes a config file (redis.conf syntax) that sets one
// directive to the secret, for -config.
func writeSecretConf(path, directive, secret string) error {
	text := fmt.Sprintf("# Written by `shardkv cluster` at every start from %s; edits are lost.\n%s %s\n",
		secretFile, directive, config.Quote(secret))
	return writeFileAtomic(path, []byte(text))
}

// writeFileAtomic writes data to path with mode 0600: to a temporary file
// first, so a crash never leaves half a password, and so the mode holds
// from the first byte on.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(secretFileMode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func isLocalHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// metricsAddrs is where --metrics-addr HOST:PORT puts the metrics
// endpoints: the proxy's on PORT, then each of n nodes' on the next ports;
// nil when the flag is empty.
func metricsAddrs(flag string, n int) ([]string, error) {
	if flag == "" {
		return nil, nil
	}
	host, p, err := net.SplitHostPort(flag)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port < 1 || port+n > 65535 {
		return nil, fmt.Errorf("--metrics-addr %q: want HOST:PORT with PORT+%d at most 65535 (the nodes' metrics take the ports after PORT)", flag, n)
	}
	out := make([]string, 0, n+1)
	for i := 0; i <= n; i++ {
		out = append(out, net.JoinHostPort(host, strconv.Itoa(port+i)))
	}
	return out, nil
}

// printMetrics lists the metrics endpoints: the proxy's, then each node's.
func printMetrics(w io.Writer, m *rangemap.Map, addrs []string) {
	fmt.Fprintf(w, "Prometheus metrics: proxy http://%s/metrics", addrs[0])
	for i, s := range m.Shards {
		fmt.Fprintf(w, ", %s http://%s/metrics", s.Name, addrs[1+i])
	}
	fmt.Fprintln(w)
}

func printConnect(w io.Writer, m *rangemap.Map, proxyAddr, data string) {
	host, port, _ := net.SplitHostPort(proxyAddr)
	cli := "redis-cli -h " + host + " -p " + port
	if host == "127.0.0.1" {
		cli = "redis-cli -p " + port
	}
	var nodes []string
	for _, s := range m.Shards {
		nodes = append(nodes, s.Name+" "+s.Addr())
	}
	self := os.Args[0]
	addrFlag := ""
	if proxyAddr != "127.0.0.1:6380" {
		addrFlag = " -addr " + proxyAddr
	}
	first := m.Shards[0]
	_, firstPort, _ := net.SplitHostPort(first.Addr())
	secret := filepath.Join(data, secretFile)
	fmt.Fprintf(w, `shardkv is running: proxy on %s, %d shard nodes (%s), data in %s/

Connect with any Redis client, for example:
  %s SET idx:a 1
  %s GET idx:a
  %s%s status

A node that exits is restarted. The nodes require the password in %s
(the proxy has it): redis-cli -p %s -a "$(cat %s)" reaches %s.
Press Ctrl-C to stop; the data stays in %s/ for the next run.
`, proxyAddr, len(m.Shards), strings.Join(nodes, ", "), data, cli, cli, self, addrFlag,
		secret, firstPort, secret, first.Name, data)
}

// localCluster is the set of processes `cluster` runs and supervises.
type localCluster struct {
	stderr   io.Writer
	log      hclog.Logger
	outMu    sync.Mutex // serializes lines written to stderr: the children's and the log's
	children []*child   // in start order: nodes, then the proxy
	fatal    chan error // a supervisor gave up on the proxy
}

// child is one supervised process and its current run.
type child struct {
	name    string
	bin     string
	args    []string
	addr    string // where it accepts connections once ready
	isProxy bool

	mu       sync.Mutex
	cmd      *exec.Cmd     // the current run; nil before the first
	done     chan struct{} // closed when the current run has exited and err is set
	err      error         // the current run's exit
	started  time.Time     // when the current run was started
	restarts int           // runs started by the supervisor after the first
	given    bool          // the supervisor gave up on it
}

// run returns the current run's process and its done channel.
func (ch *child) run() (*exec.Cmd, chan struct{}) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.cmd, ch.done
}

func (ch *child) exitErr() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

func (ch *child) running() bool {
	_, done := ch.run()
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

// startAll starts every process in order, waiting for each to accept
// connections: the nodes first, so the proxy finds them at once. A process
// that cannot start stops the cluster: at start-up it is a mistake to fix
// (a port, a flag, a data directory), not a crash to ride out.
func (c *localCluster) startAll(ctx context.Context) error {
	for _, ch := range c.children {
		if err := c.start(ctx, ch); err != nil {
			return err
		}
		if err := c.waitReady(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

// start runs a new process for ch, unless the cluster is stopping.
func (c *localCluster) start(ctx context.Context, ch *child) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ctx.Err() != nil {
		return errStopped
	}
	cmd := exec.Command(ch.bin, ch.args...)
	out := &prefixWriter{mu: &c.outMu, w: c.stderr, prefix: "[" + ch.name + "] "}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr()
	if ch.cmd == nil {
		c.log.Info("starting", "name", ch.name, "cmd", ch.bin+" "+strings.Join(ch.args, " "))
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", ch.name, err)
	}
	done := make(chan struct{})
	if ch.cmd != nil {
		ch.restarts++
	}
	ch.cmd, ch.done, ch.err, ch.started = cmd, done, nil, time.Now()
	go func() {
		err := cmd.Wait()
		out.flush()
		ch.mu.Lock()
		ch.err = err
		ch.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady waits until ch's current run accepts connections on its address
// (for the proxy: answers PING).
func (c *localCluster) waitReady(ctx context.Context, ch *child) error {
	_, done := ch.run()
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", ch.addr, time.Second)
		if err == nil {
			conn.Close()
			if ch.isProxy {
				return pingProxy(ch.addr)
			}
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting: %v", ch.name, exitText(ch.exitErr()))
		case <-ctx.Done():
			return fmt.Errorf("while starting %s: %w", ch.name, errStopped)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections on %s after %v", ch.name, ch.addr, startTimeout)
		}
	}
}

// pingProxy checks that the proxy answers commands, not only connections.
func pingProxy(addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil && !strings.HasPrefix(err.Error(), "NOAUTH") {
		return fmt.Errorf("proxy on %s does not answer PING: %w", addr, err)
	}
	return nil
}

// supervise restarts ch whenever it exits on its own, by the policy above,
// until ctx is done (the cluster stops) or it gives up. ch's current run
// is ready when it is called.
func (c *localCluster) supervise(ctx context.Context, ch *child) {
	failed := 0 // failed starts in a row
	ready := true
	for {
		cmd, done := ch.run()
		pid := cmd.Process.Pid
		var up bool // the run has started
		var readyErr error
		if !ready {
			readyErr = c.waitReady(ctx, ch)
		}
		if ctx.Err() != nil {
			return
		}
		if readyErr == nil {
			select {
			case <-done:
			case <-ctx.Done():
				return
			case <-time.After(minUptime):
				up = true
			}
		}
		if up {
			ch.mu.Lock()
			restarts := ch.restarts
			ch.mu.Unlock()
			if restarts > 0 {
				c.log.Info("restarted and serving", "name", ch.name, "pid", pid, "restarts", restarts)
			}
			failed = 0
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
		} else if readyErr != nil && !errors.Is(readyErr, errStopped) {
			select {
			case <-done:
			default:
				// Started but never accepting: it cannot serve like this.
				_ = cmd.Process.Kill()
				<-done
			}
		}
		select {
		case <-ctx.Done():
			return // it exited because the cluster is stopping
		default:
		}
		ch.mu.Lock()
		uptime := time.Since(ch.started).Round(time.Millisecond)
		restarts := ch.restarts
		ch.mu.Unlock()
		exit := exitText(ch.exitErr())
		if !up {
			failed++
		}
		if failed >= maxFailedStarts {
			what := "its keys get TRYAGAIN until you fix it and restart the cluster; the other shards keep serving"
			if ch.isProxy {
				what = "nothing can be served without it: stopping the cluster"
			}
			c.log.Error(fmt.Sprintf("GIVING UP on %s: it failed to start %d times in a row; %s (its own lines above, prefixed [%s], say why)",
				ch.name, failed, what, ch.name), "name", ch.name, "last_exit", exit)
			ch.mu.Lock()
			ch.given = true
			ch.mu.Unlock()
			if ch.isProxy {
				c.fatal <- fmt.Errorf("the proxy failed to start %d times in a row (last: %s)", failed, exit)
			}
			return
		}
		delay := restartDelay << failed
		if up {
			c.log.Error("process exited on its own; restarting it", "name", ch.name, "pid", pid, "exit", exit,
				"uptime", uptime.String(), "restarts_so_far", restarts, "restart_in", delay.String())
		} else {
			reason := exit
			if readyErr != nil {
				reason = readyErr.Error()
			}
			c.log.Error("process failed to start; retrying", "name", ch.name, "pid", pid, "reason", reason,
				"failed_starts", fmt.Sprintf("%d/%d", failed, maxFailedStarts), "restart_in", delay.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if err := c.start(ctx, ch); err != nil {
			if errors.Is(err, errStopped) {
				return
			}
			// The binary itself cannot be run (removed, not executable):
			// no retry will help.
			c.log.Error(fmt.Sprintf("GIVING UP on %s: %v", ch.name, err), "name", ch.name)
			ch.mu.Lock()
			ch.given = true
			ch.mu.Unlock()
			if ch.isProxy {
				c.fatal <- err
			}
			return
		}
		ready = false
	}
}

// givenUp names the processes the supervisors gave up on.
func (c *localCluster) givenUp() []string {
	var out []string
	for _, ch := range c.children {
		ch.mu.Lock()
		if ch.given {
			out = append(out, ch.name)
		}
		ch.mu.Unlock()
	}
	return out
}

// stop sends SIGTERM to the proxy, waits for it, then does the same for the
// nodes, so no client write is cut between the two. A process that outlives
// stopTimeout, or a closed hurry (a second signal), gets SIGKILL. It reports
// the processes that did not exit cleanly. The supervisors have returned,
// so no process starts meanwhile.
func (c *localCluster) stop(hurry chan struct{}) error {
	var nodes, proxy []*child
	for _, ch := range c.children {
		if !ch.running() {
			continue // never started, or exited already, which its supervisor logged
		}
		if ch.isProxy {
			proxy = append(proxy, ch)
		} else {
			nodes = append(nodes, ch)
		}
	}
	var bad []string
	for _, group := range [][]*child{proxy, nodes} {
		for _, ch := range group {
			cmd, _ := ch.run()
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		timer := time.NewTimer(stopTimeout)
		for _, ch := range group {
			_, done := ch.run()
			select {
			case <-done:
			case <-timer.C:
				c.log.Error("did not exit after SIGTERM: killing every process", "name", ch.name, "waited", stopTimeout.String())
				c.killAll()
			case <-hurry:
				c.log.Warn("signal again: killing every process")
				c.killAll()
			}
			<-done
			if err := ch.exitErr(); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", ch.name, exitText(err)))
			}
		}
		timer.Stop()
	}
	if len(bad) > 0 {
		return fmt.Errorf("not every process exited cleanly: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (c *localCluster) killAll() {
	for _, ch := range c.children {
		if ch.running() {
			cmd, _ := ch.run()
			_ = cmd.Process.Kill()
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lockedWriter lets the cluster's own log share stderr with the children's
// prefixed lines without a line of one landing inside a line of another.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// prefixWriter writes each complete line with a prefix, so the output of the
// processes stays readable when interleaved.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.emit(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.emit(append(p.buf, '\n'))
		p.buf = nil
	}
}

func (p *prefixWriter) emit(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, p.prefix)
	_, _ = p.w.Write(line)
}
