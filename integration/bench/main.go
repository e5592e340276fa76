// Command bench runs shardkv side by side with redis-server and twemproxy
// (nutcracker) under redis-benchmark, interleaving the setups round by round
// so that a noisy, shared machine slows every setup alike, and prints median
// throughput and latency per setup plus the ratios the benchmark issue asks
// for. `make bench` builds the binaries and runs it.
//
// It also measures memory and restart time: a shard node and a redis-server
// (AOF everysec) each loaded with the same keys, their RSS, and the time each
// takes from process start to serving the last key again; and the
// many-connections shape of issue 12 (conns.go).
//
// With -baseline-bin, every shardkv setup runs a second time with the
// binaries of an older revision, as its own row in the same rounds, and the
// report adds the ratio current / baseline of each row: a change is judged
// against the code before it under the same load from elsewhere on the
// machine, not against numbers from another hour.
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

	conns     int // clients of the many-connections shape
	pairs     int // SET/GET pairs each of them does
	skipConns bool

	pubN       int // messages of the Pub/Sub shape
	skipPubsub bool

	skipColl  bool // skip the collection rows
	collElems int  // elements of each big collection of the memory measurement

	skipScripts    bool
	baselineBin    string // directory of the baseline revision's binaries; empty: no baseline rows
	baselineRev    string // how the rows of the baseline are labelled ("@REV")
	baselineCommit string // the commit it resolved to, for the report's header
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
	flag.IntVar(&cfg.conns, "conns", 1000, "clients of the many-connections measurement, each on its own connection")
	flag.IntVar(&cfg.pairs, "pairs", 200, "SET/GET pairs each client of the many-connections measurement does")
	flag.BoolVar(&cfg.skipConns, "skip-conns", false, "skip the many-connections measurement")
	flag.IntVar(&cfg.pubN, "pub-n", 200000, "messages the Pub/Sub measurement publishes to 100 subscribers")
	flag.BoolVar(&cfg.skipPubsub, "skip-pubsub", false, "skip the Pub/Sub measurement")
	flag.BoolVar(&cfg.skipScripts, "skip-scripts", false, "skip the EVALSHA row")
	flag.BoolVar(&cfg.skipColl, "skip-coll", false, "skip the collection rows (hash, set and sorted-set throughput, memory and restart)")
	flag.IntVar(&cfg.collElems, "coll-elems", 1000000, "elements of each big collection for the collection memory and restart measurement")
	flag.StringVar(&cfg.baselineBin, "baseline-bin", "", "directory holding the baseline revision's shardkv-node and shardkv-proxy (scripts/bench.sh --baseline builds it)")
	flag.StringVar(&cfg.baselineRev, "baseline-rev", "baseline", "label of the baseline rows")
	flag.StringVar(&cfg.baselineCommit, "baseline-commit", "", "commit the baseline was built from, for the header")
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
	if cfg.rounds < 1 || cfg.conns < 1 || cfg.pairs < 1 || cfg.keyRange < 1 {
		return errors.New("-rounds, -conns, -pairs and -r must be at least 1")
	}
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
	if cfg.baselineBin != "" {
		if cfg.baselineBin, err = filepath.Abs(cfg.baselineBin); err != nil {
			return err
		}
		for _, b := range []string{"shardkv-node", "shardkv-proxy"} {
			if _, err := os.Stat(filepath.Join(cfg.baselineBin, b)); err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
		}
	}
	fmt.Printf("# shardkv benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("redis-benchmark -c %d -d %d -r %d -t set,get, -n %d at -P 1 and -n %d at -P 16, %d interleaved rounds; %s\n\n",
		cfg.clients, cfg.dataSize, cfg.keyRange, cfg.nP1, cfg.nP16, cfg.rounds, machine())
	if cfg.baselineBin != "" {
		commit := ""
		if cfg.baselineCommit != "" {
			commit = " (" + cfg.baselineCommit + ")"
		}
		fmt.Printf("Rows marked @%s run the binaries of %s%s, in the same rounds as the current ones.\n\n", cfg.baselineRev, cfg.baselineRev, commit)
	}
	if !cfg.skipLoad {
		if err := throughput(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipColl {
		if err := collectionsPhase(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipScripts {
		if err := scriptsPhase(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipConns {
		if err := connsPhase(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipPubsub {
		if err := pubsubPhase(ctx, h, cfg); err != nil {
			return err
		}
		h.stopAll()
	}
	if !cfg.skipMem {
		if err := memoryAndRestart(ctx, h, cfg); err != nil {
			return err
		}
		if !cfg.skipColl {
			h.stopAll()
			if err := collectionMemory(ctx, h, cfg); err != nil {
				return err
			}
		}
	}
	return nil
}

// setup is one system under test, reachable on port.
type setup struct {
	name string
	port int
	// current names the setup of the current binaries that this one runs
	// with the baseline's; empty for every other setup.
	current string
}

// withBaseline returns setups with, right after each shardkv setup, the
// same setup started by shardkv[name] with the baseline's binaries, so that
// the two run back to back in every round.
func withBaseline(setups []setup, cfg config, shardkv map[string]func(bin string) (int, error)) ([]setup, error) {
	if cfg.baselineBin == "" {
		return setups, nil
	}
	var out []setup
	for _, s := range setups {
		out = append(out, s)
		start, ok := shardkv[s.name]
		if !ok {
			continue
		}
		port, err := start(cfg.baselineBin)
		if err != nil {
			return nil, err
		}
		out = append(out, setup{name: s.name + " @" + cfg.baselineRev, port: port, current: s.name})
	}
	return out, nil
}

// roundOrder is the order of setups in a round. Even rounds go backwards, so
// that no setup always runs right after the same one: an fsync-heavy run
// leaves the kernel writing back journal and data for a while after it
// ends, and a baseline row runs once before and once after its current one.
func roundOrder(setups []setup, round int) []setup {
	order := slices.Clone(setups)
	if round%2 == 0 {
		slices.Reverse(order)
	}
	return order
}

func nameWidth(setups []setup) int {
	w := 0
	for _, s := range setups {
		w = max(w, len(s.name))
	}
	return w
}

func (h *harness) ready(ctx context.Context, setups []setup) error {
	for _, s := range setups {
		if err := waitReady(ctx, s.port, 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", s.name, err, h.dir)
		}
	}
	return nil
}

type sample struct{ rps, p50, p99 float64 }

func throughput(ctx context.Context, h *harness, cfg config) error {
	// How each shardkv setup is started, by the binaries in bin: the
	// current ones here, the baseline's in withBaseline. The suffix keeps
	// their data directories and logs apart.
	suffix := func(bin string) string {
		if bin == h.bin {
			return ""
		}
		return "-baseline"
	}
	shardkv := map[string]func(bin string) (int, error){
		// The proxy and two nodes, everysec.
		"shardkv proxy + 2 nodes (everysec)": func(bin string) (int, error) {
			return h.shardkv("proxy2"+suffix(bin), bin, "everysec", 2)
		},
		"shard node (everysec)": func(bin string) (int, error) {
			return h.wholeNode("node-everysec"+suffix(bin), bin, "everysec"), nil
		},
		"shard node (always)": func(bin string) (int, error) {
			return h.wholeNode("node-always"+suffix(bin), bin, "always"), nil
		},
		// The proxy's own cost: a proxy in front of one node, against a node alone.
		"shardkv proxy + 1 node (everysec)": func(bin string) (int, error) {
			return h.shardkv("proxy1"+suffix(bin), bin, "everysec", 1)
		},
	}
	proxyPort, err := shardkv["shardkv proxy + 2 nodes (everysec)"](h.bin)
	if err != nil {
		return err
	}
	soloProxy, err := shardkv["shardkv proxy + 1 node (everysec)"](h.bin)
	if err != nil {
		return err
	}

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
	re, ra := freePort(), freePort()
	h.redis("redis-aof-everysec", re, "--appendonly", "yes", "--appendfsync", "everysec")
	h.redis("redis-aof-always", ra, "--appendonly", "yes", "--appendfsync", "always")
	ne, _ := shardkv["shard node (everysec)"](h.bin)
	na, _ := shardkv["shard node (always)"](h.bin)

	setups := []setup{
		{name: "shardkv proxy + 2 nodes (everysec)", port: proxyPort},
		{name: "twemproxy + 2 redis (no persistence)", port: nutPort},
		{name: "redis-server (AOF everysec)", port: re},
		{name: "shard node (everysec)", port: ne},
		{name: "redis-server (AOF always)", port: ra},
		{name: "shard node (always)", port: na},
		{name: "shardkv proxy + 1 node (everysec)", port: soloProxy},
		{name: "twemproxy + 2 redis under SCHED_BATCH", port: nutBatch},
	}
	// The rows and ratios of the current binaries are printed from these;
	// the baseline's rows follow them.
	current := setups
	if setups, err = withBaseline(setups, cfg, shardkv); err != nil {
		return err
	}
	if err := h.ready(ctx, setups); err != nil {
		return err
	}
	for _, p := range h.assign {
		if err := assignWhole(ctx, p); err != nil {
			return err
		}
	}

	results := map[string]map[string][]sample{} // setup+P -> test -> samples
	width := max(40, nameWidth(setups))
	for round := 1; round <= cfg.rounds; round++ {
		order := roundOrder(setups, round)
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
				fmt.Fprintf(os.Stderr, "round %d -P %2d %-*s SET %9.0f  GET %9.0f\n", round, pipeline, width, s.name, got["SET"].rps, got["GET"].rps)
			}
		}
	}

	fmt.Println("| setup | -P | SET req/s | SET p50 ms | SET p99 ms | GET req/s | GET p50 ms | GET p99 ms |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	med := map[string]map[string]sample{}
	for _, pipeline := range []int{1, 16} {
		// The current rows first, in their usual order, then the baseline's.
		for _, s := range append(slices.Clone(current), baselineOnly(setups)...) {
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
		{"shardkv / twemproxy", current[0].name, current[1].name},
		{"node / redis everysec", current[3].name, current[2].name},
		{"node / redis always", current[5].name, current[4].name},
		{"proxy + 1 node / node directly", current[6].name, current[3].name},
		{"shardkv / twemproxy, redis under SCHED_BATCH", current[0].name, current[7].name},
	} {
		for _, pipeline := range []int{1, 16} {
			a, b := med[key(r.a, pipeline)], med[key(r.b, pipeline)]
			fmt.Printf("| %s | %d | %.2fx | %.2fx |\n", r.name, pipeline, a["SET"].rps/b["SET"].rps, a["GET"].rps/b["GET"].rps)
		}
	}
	fmt.Println()
	if cfg.baselineBin != "" {
		// A ratio per round, of two runs minutes apart at most, says more
		// than the ratio of two medians: their spread is the noise.
		fmt.Printf("Current / @%s, req/s: the ratio of each round's pair, median [lowest-highest] of %d rounds:\n\n", cfg.baselineRev, cfg.rounds)
		fmt.Println("| setup | -P | SET | GET |")
		fmt.Println("|---|---|---|---|")
		rps := func(x sample) float64 { return x.rps }
		for _, pipeline := range []int{1, 16} {
			for _, s := range baselineOnly(setups) {
				cur, base := results[key(s.current, pipeline)], results[key(s.name, pipeline)]
				fmt.Printf("| %s | %d | %s | %s |\n", s.current, pipeline, spread(cur["SET"], base["SET"], rps), spread(cur["GET"], base["GET"], rps))
			}
		}
		fmt.Println()
	}
	return nil
}

func baselineOnly(setups []setup) []setup {
	var out []setup
	for _, s := range setups {
		if s.current != "" {
			out = append(out, s)
		}
	}
	return out
}

// spread is the median and the range of cur[i]/base[i] by f, i a round.
func spread[T any](cur, base []T, f func(T) float64) string {
	n := min(len(cur), len(base))
	if n == 0 {
		return "-"
	}
	r := make([]float64, n)
	for i := range n {
		r[i] = f(cur[i]) / f(base[i])
	}
	sort.Float64s(r)
	if n == 1 {
		return fmt.Sprintf("%.2fx", r[0])
	}
	return fmt.Sprintf("%.2fx [%.2f-%.2f]", r[n/2], r[0], r[n-1])
}

func key(name string, pipeline int) string { return name + "/" + strconv.Itoa(pipeline) }

func median(s []sample) sample {
	return sample{
		medianOf(s, func(x sample) float64 { return x.rps }),
		medianOf(s, func(x sample) float64 { return x.p50 }),
		medianOf(s, func(x sample) float64 { return x.p99 }),
	}
}

// medianOf is the median of s by f (the upper one of an even count); each
// figure of a setup is the median of its own, across rounds.
func medianOf[T any](s []T, f func(T) float64) float64 {
	if len(s) == 0 {
		return 0
	}
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func redisBenchmark(ctx context.Context, port, pipeline int, cfg config) (map[string]sample, error) {
	return runBenchmark(ctx, port, pipeline, cfg, "set,get", []string{"SET", "GET"})
}

// runBenchmark runs redis-benchmark's tests (its -t list) against port and
// returns a sample per test name it reports; every name in want must be there.
func runBenchmark(ctx context.Context, port, pipeline int, cfg config, tests string, want []string) (map[string]sample, error) {
	n := cfg.nP1
	if pipeline > 1 {
		n = cfg.nP16
	}
	cmd := exec.CommandContext(ctx, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", strconv.Itoa(cfg.clients), "-d", strconv.Itoa(cfg.dataSize), "-r", strconv.Itoa(cfg.keyRange),
		"-n", strconv.Itoa(n), "-P", strconv.Itoa(pipeline), "-t", tests, "--csv", "--precision", "3")
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
	for _, test := range want {
		if _, ok := got[test]; !ok {
			return nil, fmt.Errorf("no %s result in: %s", test, out)
		}
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
		node  bool // a shard node, to be assigned the whole range
		start func() *exec.Cmd
	}
	systems := []system{
		{"shard node (everysec)", np, true, func() *exec.Cmd {
			return h.start("mem-node", filepath.Join(h.bin, "shardkv-node"), "-addr", addr(np), "-dir", nodeDir, "-appendfsync", "everysec", "-log-level", "warn")
		}},
		{"redis-server (AOF everysec)", rp, false, func() *exec.Cmd {
			return h.startRedisIn("mem-redis", rp, redisDir, "--appendonly", "yes", "--appendfsync", "everysec")
		}},
	}
	if cfg.baselineBin != "" {
		bp, baseDir := freePort(), filepath.Join(h.dir, "mem-node-baseline")
		systems = append(systems, system{"shard node (everysec) @" + cfg.baselineRev, bp, true, func() *exec.Cmd {
			return h.start("mem-node-baseline", filepath.Join(cfg.baselineBin, "shardkv-node"), "-addr", addr(bp), "-dir", baseDir, "-appendfsync", "everysec", "-log-level", "warn")
		}})
	}
	fmt.Printf("Memory and restart with %d keys `idx:key:N`, %d-byte values:\n\n", cfg.memKeys, cfg.dataSize)
	fmt.Println("| system | RSS after load (MiB) | restart to serving last key (s) |")
	fmt.Println("|---|---|---|")
	rss := map[string]float64{}
	restart := map[string]float64{}
	for _, s := range systems {
		var err error
		rss[s.name], restart[s.name], _, err = h.loadAndRestart(ctx, s.port, s.node, s.start, payload, lastKey, func() error {
			return getOK(ctx, s.port, lastKey)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("| %s | %.1f | %.2f |\n", s.name, rss[s.name]/(1<<20), restart[s.name])
	}
	a, b := systems[0].name, systems[1].name
	fmt.Printf("\nnode / redis: RSS %.2fx, restart time %.2fx\n", rss[a]/rss[b], restart[a]/restart[b])
	if len(systems) > 2 {
		// One measurement each, not rounds: the restart time in particular
		// moves by ±0.1x between runs on a shared machine.
		c := systems[2].name
		fmt.Printf("node / node @%s: RSS %.2fx, restart time %.2fx\n", cfg.baselineRev, rss[a]/rss[c], restart[a]/restart[c])
	}
	return nil
}

// loadAndRestart starts a server with start, assigns it the whole range
// if it is a node, loads payload with redis-cli --pipe, and once served
// (served returns nil, for what) reads its RSS; then stops it with SIGTERM,
// starts it again and times start to served. It returns the RSS, the
// restart time in seconds and the restarted process, left running.
func (h *harness) loadAndRestart(ctx context.Context, port int, node bool, start func() *exec.Cmd, payload, what string, served func() error) (rss, restart float64, cmd *exec.Cmd, err error) {
	cmd = start()
	if err := waitReady(ctx, port, 30*time.Second); err != nil {
		return 0, 0, nil, err
	}
	if node {
		if err := assignWhole(ctx, port); err != nil {
			return 0, 0, nil, err
		}
	}
	if err := pipeLoad(ctx, port, payload); err != nil {
		return 0, 0, nil, fmt.Errorf("load: %w", err)
	}
	if err := served(); err != nil {
		return 0, 0, nil, fmt.Errorf("after load: %w", err)
	}
	rss = vmRSS(cmd.Process.Pid)
	if err := h.terminate(cmd); err != nil {
		return 0, 0, nil, fmt.Errorf("stop: %w", err)
	}
	began := time.Now()
	cmd = start()
	for served() != nil {
		if ctx.Err() != nil {
			return 0, 0, nil, ctx.Err()
		}
		if time.Since(began) > 5*time.Minute {
			return 0, 0, nil, fmt.Errorf("did not serve %s within 5 minutes of restart", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rss, time.Since(began).Seconds(), cmd, nil
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
	// assign are the ports of nodes started without a proxy, which must be
	// given the whole range (assignWhole) once they listen.
	assign []int
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

func (h *harness) node(name, bin string, port int, fsync string) *exec.Cmd {
	return h.start(name, filepath.Join(bin, "shardkv-node"), "-addr", addr(port), "-dir", filepath.Join(h.dir, name), "-appendfsync", fsync, "-log-level", "warn")
}

// wholeNode starts a node of bin that serves directly, without a proxy, and
// returns its port; its range is assigned by throughput once it listens.
func (h *harness) wholeNode(name, bin, fsync string) int {
	port := freePort()
	h.node(name, bin, port, fsync)
	h.assign = append(h.assign, port)
	return port
}

// shardkv starts a proxy of bin in front of n nodes of bin that split the
// hash range evenly, and returns the proxy's port.
func (h *harness) shardkv(name, bin, fsync string, n int) (int, error) {
	var shards []string
	for i := range n {
		port := freePort()
		h.node(fmt.Sprintf("%s-node%d", name, i), bin, port, fsync)
		// The same formatting of i/n ends one range and starts the next,
		// so they touch exactly as the map requires.
		shards = append(shards, fmt.Sprintf(`{"name":"s%d","start":%s,"end":%s,"size":0,"host":"127.0.0.1","port":%d}`,
			i, strconv.FormatFloat(float64(i)/float64(n), 'g', -1, 64), strconv.FormatFloat(float64(i+1)/float64(n), 'g', -1, 64), port))
	}
	mapFile := filepath.Join(h.dir, name+"-map.json")
	if err := os.WriteFile(mapFile, []byte(`{"shards":[`+strings.Join(shards, ",")+`]}`), 0o644); err != nil {
		return 0, err
	}
	port := freePort()
	h.start(name+"-proxy", filepath.Join(bin, "shardkv-proxy"), "-addr", addr(port), "-map", mapFile, "-log-level", "warn")
	return port, nil
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

// twemproxy starts nutcracker on port in front of the redis-servers on the
// ports servers. One connection to each, as the shardkv proxy keeps one to
// each node by default.
func (h *harness) twemproxy(name string, port int, servers ...int) error {
	conf := filepath.Join(h.dir, name+".yml")
	yml := fmt.Sprintf("shardkv_bench:\n  listen: 127.0.0.1:%d\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n"+
		"  server_connections: 1\n  servers:\n", port)
	for _, s := range servers {
		yml += fmt.Sprintf("   - 127.0.0.1:%d:1\n", s)
	}
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
	h.assign = nil
}

// silent discards go-redis's log lines.
type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}
