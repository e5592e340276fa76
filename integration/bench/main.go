// Command bench runs shardkv side by side with redis-server and twemproxy
// (nutcracker) under redis-benchmark, interleaving the setups round by round
// so that a noisy, shared machine slows every setup alike, and prints median
// throughput and latency per setup plus the ratios the benchmark issue asks
// for. `make bench` builds the binaries and runs it.
//
// It also measures memory and restart time: a shard node and a redis-server
// (AOF everysec) each loaded with the same keys, their RSS, and the time each
// takes from process start to serving the last key again.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

type config struct {
	binDir   string
	rounds   int
	nP1      int
	nP16     int
	clients  int
	dataSize int
	keyRange int
	memKeys  int
	skipMem  bool
	skipLoad bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.binDir, "bin", "bin", "directory holding shardkv-node and shardkv-proxy")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of every setup, interleaved")
	flag.IntVar(&cfg.nP1, "n", 200000, "requests per test at -P 1")
	flag.IntVar(&cfg.nP16, "n16", 2000000, "requests per test at -P 16")
	flag.IntVar(&cfg.clients, "c", 50, "redis-benchmark clients")
	flag.IntVar(&cfg.dataSize, "d", 100, "value size in bytes")
	flag.IntVar(&cfg.keyRange, "r", 100000, "random key range")
	flag.IntVar(&cfg.memKeys, "mem-keys", 1000000, "keys loaded for the memory and restart measurement")
	flag.BoolVar(&cfg.skipMem, "skip-mem", false, "skip the memory and restart measurement")
	flag.BoolVar(&cfg.skipLoad, "skip-load", false, "skip the throughput measurement")
	flag.Parse()
	// getOK polls a restarting server; go-redis would log every refused
	// dial to stderr, in the middle of the printed tables.
	redis.SetLogger(silent{})

	h := &harness{bin: cfg.binDir}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, h, cfg)
	h.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, h *harness, cfg config) error {
	for _, tool := range []string{"redis-benchmark", "redis-server", "redis-cli", "nutcracker"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (Debian packages redis-tools, redis-server, nutcracker; `make bench` installs them)", tool)
		}
	}
	var err error
	if h.dir, err = os.MkdirTemp("", "shardkv-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(h.dir)
	if h.bin, err = filepath.Abs(h.bin); err != nil {
		return err
	}
	fmt.Printf("# shardkv benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("redis-benchmark -c %d -d %d -r %d -t set,get, -n %d at -P 1 and -n %d at -P 16, %d interleaved rounds; %s\n\n",
		cfg.clients, cfg.dataSize, cfg.keyRange, cfg.nP1, cfg.nP16, cfg.rounds, machine())
	if !cfg.skipLoad {
		if err := throughput(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipMem {
		if err := memoryAndRestart(ctx, h, cfg); err != nil {
			return err
		}
	}
	return nil
}

// setup is one system under test, reachable on port.
type setup struct {
	name string
	port int
}

type sample struct{ rps, p50, p99 float64 }

func throughput(ctx context.Context, h *harness, cfg config) error {
	// shardkv: proxy and two nodes, everysec.
	n1, n2, proxyPort := freePort(), freePort(), freePort()
	mapFile := filepath.Join(h.dir, "map.json")
	mapJSON := fmt.Sprintf(`{"shards":[{"name":"s0","start":0,"end":0.5,"size":0,"host":"127.0.0.1","port":%d},`+
		`{"name":"s1","start":0.5,"end":1,"size":0,"host":"127.0.0.1","port":%d}]}`, n1, n2)
	if err := os.WriteFile(mapFile, []byte(mapJSON), 0o644); err != nil {
		return err
	}
	h.node("node-s0", n1, "everysec")
	h.node("node-s1", n2, "everysec")
	h.start("proxy", filepath.Join(h.bin, "shardkv-proxy"), "-addr", addr(proxyPort), "-map", mapFile, "-log-level", "warn")

	// The proxy's own cost: a proxy in front of one node, against a node alone.
	solo, soloProxy := freePort(), freePort()
	soloMap := filepath.Join(h.dir, "map-solo.json")
	soloJSON := fmt.Sprintf(`{"shards":[{"name":"solo","start":0,"end":1,"size":0,"host":"127.0.0.1","port":%d}]}`, solo)
	if err := os.WriteFile(soloMap, []byte(soloJSON), 0o644); err != nil {
		return err
	}
	h.node("node-solo", solo, "everysec")
	h.start("proxy-solo", filepath.Join(h.bin, "shardkv-proxy"), "-addr", addr(soloProxy), "-map", soloMap, "-log-level", "warn")

	// twemproxy with two redis-servers that keep nothing on disk.
	r1, r2, nutPort := freePort(), freePort(), freePort()
	h.redis("redis-nopersist-1", r1, "--appendonly", "no")
	h.redis("redis-nopersist-2", r2, "--appendonly", "no")
	if err := h.twemproxy("twemproxy", nutPort, r1, r2); err != nil {
		return err
	}
	// The same with its redis-servers under SCHED_BATCH, as shard nodes run
	// by default (-sched-batch): how much of the lead is the policy.
	b1, b2, nutBatch := freePort(), freePort(), freePort()
	h.batchRedis("redis-nopersist-batch-1", b1, "--appendonly", "no")
	h.batchRedis("redis-nopersist-batch-2", b2, "--appendonly", "no")
	if err := h.twemproxy("twemproxy-batch", nutBatch, b1, b2); err != nil {
		return err
	}

	// Single servers: redis AOF everysec / always and a shard node everysec / always.
	re, ra, ne, na := freePort(), freePort(), freePort(), freePort()
	h.redis("redis-aof-everysec", re, "--appendonly", "yes", "--appendfsync", "everysec")
	h.redis("redis-aof-always", ra, "--appendonly", "yes", "--appendfsync", "always")
	h.node("node-everysec", ne, "everysec")
	h.node("node-always", na, "always")

	setups := []setup{
		{"shardkv proxy + 2 nodes (everysec)", proxyPort},
		{"twemproxy + 2 redis (no persistence)", nutPort},
		{"redis-server (AOF everysec)", re},
		{"shard node (everysec)", ne},
		{"redis-server (AOF always)", ra},
		{"shard node (always)", na},
		{"shardkv proxy + 1 node (everysec)", soloProxy},
		{"twemproxy + 2 redis under SCHED_BATCH", nutBatch},
	}
	for _, s := range setups {
		if err := waitReady(ctx, s.port, 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", s.name, err, h.dir)
		}
	}
	for _, p := range []int{ne, na} {
		if err := assignWhole(ctx, p); err != nil {
			return err
		}
	}

	results := map[string]map[string][]sample{} // setup+P -> test -> samples
	for round := 1; round <= cfg.rounds; round++ {
		// Even rounds go backwards, so that no setup always runs right
		// after the same one: an fsync-heavy run leaves the kernel
		// writing back journal and data for a while after it ends.
		order := slices.Clone(setups)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, pipeline := range []int{1, 16} {
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				got, err := redisBenchmark(ctx, s.port, pipeline, cfg)
				if err != nil {
					return fmt.Errorf("%s -P %d: %w", s.name, pipeline, err)
				}
				k := key(s.name, pipeline)
				if results[k] == nil {
					results[k] = map[string][]sample{}
				}
				for test, v := range got {
					results[k][test] = append(results[k][test], v)
				}
				fmt.Fprintf(os.Stderr, "round %d -P %2d %-40s SET %9.0f  GET %9.0f\n", round, pipeline, s.name, got["SET"].rps, got["GET"].rps)
			}
		}
	}

	fmt.Println("| setup | -P | SET req/s | SET p50 ms | SET p99 ms | GET req/s | GET p50 ms | GET p99 ms |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	med := map[string]map[string]sample{}
	for _, pipeline := range []int{1, 16} {
		for _, s := range setups {
			k := key(s.name, pipeline)
			med[k] = map[string]sample{}
			for _, test := range []string{"SET", "GET"} {
				med[k][test] = median(results[k][test])
			}
			set, get := med[k]["SET"], med[k]["GET"]
			fmt.Printf("| %s | %d | %.0f | %.3f | %.3f | %.0f | %.3f | %.3f |\n", s.name, pipeline, set.rps, set.p50, set.p99, get.rps, get.p50, get.p99)
		}
	}
	fmt.Println()
	fmt.Println("| ratio (median req/s) | -P | SET | GET |")
	fmt.Println("|---|---|---|---|")
	for _, r := range []struct{ name, a, b string }{
		{"shardkv / twemproxy", setups[0].name, setups[1].name},
		{"node / redis everysec", setups[3].name, setups[2].name},
		{"node / redis always", setups[5].name, setups[4].name},
		{"proxy + 1 node / node directly", setups[6].name, setups[3].name},
		{"shardkv / twemproxy, redis under SCHED_BATCH", setups[0].name, setups[7].name},
	} {
		for _, pipeline := range []int{1, 16} {
			a, b := med[key(r.a, pipeline)], med[key(r.b, pipeline)]
			fmt.Printf("| %s | %d | %.2fx | %.2fx |\n", r.name, pipeline, a["SET"].rps/b["SET"].rps, a["GET"].rps/b["GET"].rps)
		}
	}
	fmt.Println()
	return nil
}

func key(name string, pipeline int) string { return name + "/" + strconv.Itoa(pipeline) }

func median(s []sample) sample {
	if len(s) == 0 {
		return sample{}
	}
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(s))
		for i := range s {
			v[i] = f(s[i])
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return sample{pick(func(x sample) float64 { return x.rps }), pick(func(x sample) float64 { return x.p50 }), pick(func(x sample) float64 { return x.p99 })}
}

func redisBenchmark(ctx context.Context, port, pipeline int, cfg config) (map[string]sample, error) {
	n := cfg.nP1
	if pipeline > 1 {
		n = cfg.nP16
	}
	cmd := exec.CommandContext(ctx, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", strconv.Itoa(cfg.clients), "-d", strconv.Itoa(cfg.dataSize), "-r", strconv.Itoa(cfg.keyRange),
		"-n", strconv.Itoa(n), "-P", strconv.Itoa(pipeline), "-t", "set,get", "--csv", "--precision", "3")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w: %s", err, out)
	}
	rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark csv: %w: %s", err, out)
	}
	got := map[string]sample{}
	for _, row := range rows {
		if len(row) < 7 || row[0] == "test" {
			continue
		}
		rps, _ := strconv.ParseFloat(row[1], 64)
		p50, _ := strconv.ParseFloat(row[4], 64)
		p99, _ := strconv.ParseFloat(row[6], 64)
		got[row[0]] = sample{rps, p50, p99}
	}
	if _, ok := got["SET"]; !ok {
		return nil, fmt.Errorf("no SET result in: %s", out)
	}
	if _, ok := got["GET"]; !ok {
		return nil, fmt.Errorf("no GET result in: %s", out)
	}
	return got, nil
}

// memoryAndRestart loads memKeys keys `idx:key:N` with 100-byte values into a
// shard node and into redis-server (AOF everysec), compares their RSS, then
// restarts each and times start-to-serving-the-last-key.
func memoryAndRestart(ctx context.Context, h *harness, cfg config) error {
	payload := filepath.Join(h.dir, "load.resp")
	if err := writeLoad(payload, cfg.memKeys, cfg.dataSize); err != nil {
		return err
	}
	lastKey := fmt.Sprintf("idx:key:%d", cfg.memKeys-1)
	np, rp := freePort(), freePort()
	nodeDir := filepath.Join(h.dir, "mem-node")
	redisDir := filepath.Join(h.dir, "mem-redis")
	type system struct {
		name  string
		port  int
		start func() *exec.Cmd
	}
	systems := []system{
		{"shard node (everysec)", np, func() *exec.Cmd {
			return h.start("mem-node", filepath.Join(h.bin, "shardkv-node"), "-addr", addr(np), "-dir", nodeDir, "-appendfsync", "everysec", "-log-level", "warn")
		}},
		{"redis-server (AOF everysec)", rp, func() *exec.Cmd {
			return h.startRedisIn("mem-redis", rp, redisDir, "--appendonly", "yes", "--appendfsync", "everysec")
		}},
	}
	fmt.Printf("Memory and restart with %d keys `idx:key:N`, %d-byte values:\n\n", cfg.memKeys, cfg.dataSize)
	fmt.Println("| system | RSS after load (MiB) | restart to serving last key (s) |")
	fmt.Println("|---|---|---|")
	rss := map[string]float64{}
	restart := map[string]float64{}
	for _, s := range systems {
		cmd := s.start()
		if err := waitReady(ctx, s.port, 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if s.port == np {
			if err := assignWhole(ctx, np); err != nil {
				return err
			}
		}
		if err := pipeLoad(ctx, s.port, payload); err != nil {
			return fmt.Errorf("%s load: %w", s.name, err)
		}
		if err := getOK(ctx, s.port, lastKey); err != nil {
			return fmt.Errorf("%s after load: %w", s.name, err)
		}
		rss[s.name] = vmRSS(cmd.Process.Pid)
		if err := h.terminate(cmd); err != nil {
			return fmt.Errorf("%s stop: %w", s.name, err)
		}
		began := time.Now()
		s.start()
		for {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if getOK(ctx, s.port, lastKey) == nil {
				break
			}
			if time.Since(began) > 5*time.Minute {
				return fmt.Errorf("%s did not serve %s within 5 minutes of restart", s.name, lastKey)
			}
			time.Sleep(5 * time.Millisecond)
		}
		restart[s.name] = time.Since(began).Seconds()
		fmt.Printf("| %s | %.1f | %.2f |\n", s.name, rss[s.name]/(1<<20), restart[s.name])
	}
	a, b := systems[0].name, systems[1].name
	fmt.Printf("\nnode / redis: RSS %.2fx, restart time %.2fx\n", rss[a]/rss[b], restart[a]/restart[b])
	return nil
}

func writeLoad(path string, keys, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	value := strings.Repeat("x", size)
	for i := 0; i < keys; i++ {
		k := "idx:key:" + strconv.Itoa(i)
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, size, value)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func pipeLoad(ctx context.Context, port int, payload string) error {
	in, err := os.Open(payload)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "--pipe")
	cmd.Stdin = in
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "errors: 0") {
		return fmt.Errorf("redis-cli --pipe: %v: %s", err, out)
	}
	return nil
}

func getOK(ctx context.Context, port int, k string) error {
	c := redis.NewClient(&redis.Options{Addr: addr(port), Protocol: 2, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	_, err := c.Get(ctx, k).Result()
	return err
}

func vmRSS(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

func assignWhole(ctx context.Context, port int) error {
	c := redis.NewClient(&redis.Options{Addr: addr(port), Protocol: 2})
	defer c.Close()
	return c.Do(ctx, "SHARD.ASSIGN", "bench", "0", "1", "0").Err()
}

// waitReady sends a raw PING until the server answers: twemproxy closes the
// connection on the HELLO that client libraries open with.
func waitReady(ctx context.Context, port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err = rawPing(port); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready on port %d after %s: %v", port, limit, err)
}

func rawPing(port int) error {
	c, err := net.DialTimeout("tcp", addr(port), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING replied %q", line)
	}
	return nil
}

func machine() string {
	cpus := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strconv.Itoa(strings.Count(string(data), "processor\t:")) + " cores"
	}
	return cpus
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// givenPorts are the ports freePort handed out in this run. The kernel may
// offer a port again once its probe listener is closed, and a server given
// a port may not have bound it yet when the next is picked (a proxy and
// nutcracker's stats port once met that way), so no port is handed out
// twice.
var givenPorts = map[int]bool{}

func freePort() int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !givenPorts[port] {
			givenPorts[port] = true
			return port
		}
	}
}

// harness owns every process it starts and stops them all on exit.
type harness struct {
	bin   string // directory of the shardkv binaries
	dir   string // temporary directory for data and logs
	procs []*exec.Cmd
}

func (h *harness) start(name, bin string, args ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(h.dir, name+".log"))
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		panic(fmt.Sprintf("start %s: %v", name, err))
	}
	h.procs = append(h.procs, cmd)
	return cmd
}

func (h *harness) node(name string, port int, fsync string) *exec.Cmd {
	return h.start(name, filepath.Join(h.bin, "shardkv-node"), "-addr", addr(port), "-dir", filepath.Join(h.dir, name), "-appendfsync", fsync, "-log-level", "warn")
}

func (h *harness) redis(name string, port int, args ...string) *exec.Cmd {
	return h.startRedisIn(name, port, filepath.Join(h.dir, name), args...)
}

func (h *harness) startRedisIn(name string, port int, dir string, args ...string) *exec.Cmd {
	return h.start(name, "redis-server", redisArgs(port, dir, args)...)
}

// batchRedis starts a redis-server under SCHED_BATCH (chrt execs it, so the
// process is redis-server itself).
func (h *harness) batchRedis(name string, port int, args ...string) *exec.Cmd {
	argv := append([]string{"-b", "0", "redis-server"}, redisArgs(port, filepath.Join(h.dir, name), args)...)
	return h.start(name, "chrt", argv...)
}

// redisArgs creates dir and returns the arguments of a redis-server on
// 127.0.0.1:port that keeps its files there, followed by args.
func redisArgs(port int, dir string, args []string) []string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	base := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--daemonize", "no"}
	return append(base, args...)
}

// twemproxy starts nutcracker on port in front of the redis-servers on r1
// and r2.
func (h *harness) twemproxy(name string, port, r1, r2 int) error {
	conf := filepath.Join(h.dir, name+".yml")
	yml := fmt.Sprintf("shardkv_bench:\n  listen: 127.0.0.1:%d\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n"+
		"  server_connections: 1\n  servers:\n   - 127.0.0.1:%d:1\n   - 127.0.0.1:%d:1\n", port, r1, r2)
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		return err
	}
	// Its stats port defaults to a fixed 22222; a free one lets two run.
	h.start(name, "nutcracker", "-c", conf, "-s", strconv.Itoa(freePort()), "-o", filepath.Join(h.dir, name+"-nutcracker.log"))
	return nil
}

// terminate asks a process to stop (SIGTERM) and waits for it, as an operator
// restarting it would.
func (h *harness) terminate(cmd *exec.Cmd) error {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("exited with %v", err)
		}
		return err
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return errors.New("did not stop within 2 minutes of SIGTERM")
	}
}

func (h *harness) stopAll() {
	for _, p := range h.procs {
		if p.ProcessState == nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range h.procs {
		if p.ProcessState != nil {
			continue
		}
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
		}
	}
	h.procs = nil
}

// silent discards go-redis's log lines.
type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}
