package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/rangemap"
)

// Grace periods of `cluster`: how long a process may take to start listening,
// and to exit after SIGTERM before it gets SIGKILL.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
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
	if _, err := parseSub(fs, args, 0, "[--data DIR] [--map FILE] [--proxy-addr HOST:PORT] [--bin DIR] [--appendfsync MODE] [--log-level LEVEL] [--strict-indexes]", stderr); err != nil {
		return err
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

	// A port held by another process would answer our readiness check
	// while our process fails to bind it.
	addrs := []string{*proxyAddr}
	for _, s := range m.Shards {
		addrs = append(addrs, s.Addr())
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is not free (is another cluster running?): %w", a, err)
		}
		ln.Close()
	}

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)

	c := &localCluster{stderr: stderr, exited: make(chan *child, len(m.Shards)+1)}
	err := func() error {
		for _, s := range m.Shards {
			dir := filepath.Join(*data, s.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			args := []string{"-addr", s.Addr(), "-dir", dir, "-appendfsync", *appendfsync, "-log-level", *logLevel}
			if *strict {
				args = append(args, "-strict-indexes")
			}
			if err := c.spawn(s.Name, nodeBin, args, s.Addr(), sigc); err != nil {
				return err
			}
		}
		args := []string{"-addr", *proxyAddr, "-log-level", *logLevel}
		if *mapFile != "" {
			args = append(args, "-map", *mapFile)
		}
		return c.spawn("proxy", proxyBin, args, *proxyAddr, sigc)
	}()
	if err == nil {
		printConnect(stdout, m, *proxyAddr, *data)
		err = c.wait(sigc)
	}
	// A signal during start-up is a normal stop, unless a process then
	// failed to exit cleanly.
	if stopErr := c.stop(sigc); err == nil || errors.Is(err, errStopped) && !errors.Is(stopErr, errStopped) {
		err = stopErr
	}
	if errors.Is(err, errStopped) {
		fmt.Fprintln(stderr, "shardkv cluster: stopped; data kept in", *data)
		return nil
	}
	return err
}

// errStopped means a signal asked the cluster to stop and every process
// exited cleanly.
var errStopped = errors.New("stopped by signal")

func isLocalHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
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
	fmt.Fprintf(w, `shardkv is running: proxy on %s, %d shard nodes (%s), data in %s/

Connect with any Redis client, for example:
  %s SET idx:a 1
  %s GET idx:a
  %s%s status

Press Ctrl-C to stop; the data stays in %s/ for the next run.
`, proxyAddr, len(m.Shards), strings.Join(nodes, ", "), data, cli, cli, self, addrFlag, data)
}

// localCluster is the set of processes `cluster` runs.
type localCluster struct {
	stderr   io.Writer
	outMu    sync.Mutex // serializes the children's prefixed output lines
	children []*child   // in start order: nodes, then the proxy
	exited   chan *child
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and err is set
	err  error
}

// spawn starts one process and waits until it accepts connections on addr.
func (c *localCluster) spawn(name, bin string, args []string, addr string, sigc chan os.Signal) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &prefixWriter{mu: &c.outMu, w: c.stderr, prefix: "[" + name + "] "}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = childProcAttr()
	fmt.Fprintf(c.stderr, "shardkv cluster: starting %s: %s %s\n", name, bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	ch := &child{name: name, cmd: cmd, done: make(chan struct{})}
	c.children = append(c.children, ch)
	go func() {
		ch.err = cmd.Wait()
		cmd.Stdout.(*prefixWriter).flush()
		close(ch.done)
		c.exited <- ch
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			if name == "proxy" {
				return pingProxy(addr)
			}
			return nil
		}
		select {
		case <-ch.done:
			return fmt.Errorf("%s exited while starting: %v", name, exitText(ch.err))
		case sig := <-sigc:
			return fmt.Errorf("%v while starting %s: %w", sig, name, errStopped)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections on %s after %v", name, addr, startTimeout)
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

// wait blocks until a signal asks the cluster to stop (errStopped) or a
// process exits on its own (an error).
func (c *localCluster) wait(sigc chan os.Signal) error {
	select {
	case sig := <-sigc:
		fmt.Fprintf(c.stderr, "shardkv cluster: %v: stopping\n", sig)
		return errStopped
	case ch := <-c.exited:
		return fmt.Errorf("%s exited on its own (%v); stopping the cluster", ch.name, exitText(ch.err))
	}
}

// stop sends SIGTERM to the proxy, waits for it, then does the same for the
// nodes, so no client write is cut between the two. A process that outlives
// stopTimeout, or a second signal, gets SIGKILL. It reports the processes
// that did not exit cleanly.
func (c *localCluster) stop(sigc chan os.Signal) error {
	var nodes, proxy []*child
	for _, ch := range c.children {
		if ch.name == "proxy" {
			proxy = append(proxy, ch)
		} else {
			nodes = append(nodes, ch)
		}
	}
	var bad []string
	for _, group := range [][]*child{proxy, nodes} {
		for _, ch := range group {
			select {
			case <-ch.done:
			default:
				_ = ch.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		timer := time.NewTimer(stopTimeout)
		for _, ch := range group {
			select {
			case <-ch.done:
			case <-timer.C:
				fmt.Fprintf(c.stderr, "shardkv cluster: %s did not exit %v after SIGTERM: killing it\n", ch.name, stopTimeout)
				c.killAll()
			case sig := <-sigc:
				fmt.Fprintf(c.stderr, "shardkv cluster: %v again: killing every process\n", sig)
				c.killAll()
			}
			<-ch.done
			if ch.err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", ch.name, exitText(ch.err)))
			}
		}
		timer.Stop()
	}
	if len(bad) > 0 {
		return fmt.Errorf("not every process exited cleanly: %s", strings.Join(bad, "; "))
	}
	return errStopped
}

func (c *localCluster) killAll() {
	for _, ch := range c.children {
		select {
		case <-ch.done:
		default:
			_ = ch.cmd.Process.Kill()
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
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
