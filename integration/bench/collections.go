package main

// The collection rows of issues 13 and 14: redis-benchmark's own hash,
// set, sorted-set and list tests through shardkv's proxy against twemproxy in front of
// in-memory redis-servers, and the memory and restart time of one node
// holding one big collection against redis-server holding the same.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// collectionTests are redis-benchmark's tests of the collection types as
// its CSV names them, in the order it runs them (SPOP after SADD, ZPOPMIN
// after ZADD, the pops after the pushes: each pops what the one before it
// added; LRANGE_100 after an LPUSH of its own). Each works on one key
// (mylist, myhash, myset, myzset), so through a proxy each runs against
// one shard.
var collectionTests = []string{"LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LRANGE_100 (first 100 elements)"}

// benchmarkTests is redis-benchmark's -t list for tests: each CSV name's
// first word, in lower case.
func benchmarkTests(tests []string) string {
	var out []string
	for _, t := range tests {
		name, _, _ := strings.Cut(t, " ")
		out = append(out, strings.ToLower(name))
	}
	return strings.Join(out, ",")
}

// collectionsPhase runs collectionTests at -P 1 and -P 16 against shardkv's
// proxy with two nodes (everysec) and twemproxy with two redis-servers that
// keep nothing on disk, the same pair as the string rows.
func collectionsPhase(ctx context.Context, h *harness, cfg config) error {
	proxyPort, err := h.shardkv("coll-proxy2", h.bin, "everysec", 2)
	if err != nil {
		return err
	}
	r1, r2, nutPort := freePort(), freePort(), freePort()
	h.redis("coll-redis-1", r1, "--appendonly", "no")
	h.redis("coll-redis-2", r2, "--appendonly", "no")
	if err := h.twemproxy("coll-twemproxy", nutPort, r1, r2); err != nil {
		return err
	}
	setups := []setup{
		{name: "shardkv proxy + 2 nodes (everysec)", port: proxyPort},
		{name: "twemproxy + 2 redis (no persistence)", port: nutPort},
	}
	if cfg.baselineBin != "" {
		bp, err := h.shardkv("coll-proxy2-baseline", cfg.baselineBin, "everysec", 2)
		if err != nil {
			return err
		}
		setups = append(setups, setup{name: setups[0].name + " @" + cfg.baselineRev, port: bp, current: setups[0].name})
	}
	if err := h.ready(ctx, setups); err != nil {
		return err
	}
	// redis-benchmark counts an error reply as a request done; a setup that
	// refuses one of the commands must fail the run, not look fast.
	// A proxy answers PING before its nodes listen: TRYAGAIN is waited out.
	for _, s := range setups {
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := collectionsAnswer(s.port)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "TRYAGAIN") || time.Now().After(deadline) {
				return fmt.Errorf("%s: %w (logs in %s)", s.name, err, h.dir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	tests := benchmarkTests(collectionTests)
	results := map[string]map[string][]sample{}
	width := max(40, nameWidth(setups))
	for round := 1; round <= cfg.rounds; round++ {
		for _, pipeline := range []int{1, 16} {
			for _, s := range roundOrder(setups, round) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				got, err := runBenchmark(ctx, s.port, pipeline, cfg, tests, collectionTests)
				if err != nil {
					return fmt.Errorf("%s -P %d: %w", s.name, pipeline, err)
				}
				k := key(s.name, pipeline)
				if results[k] == nil {
					results[k] = map[string][]sample{}
				}
				line := ""
				for _, test := range collectionTests {
					results[k][test] = append(results[k][test], got[test])
					line += fmt.Sprintf("  %s %8.0f", test, got[test].rps)
				}
				fmt.Fprintf(os.Stderr, "round %d -P %2d %-*s%s\n", round, pipeline, width, s.name, line)
			}
		}
	}
	// The servers must still hold what the benchmark left: a setup that
	// dropped the connection or refused the writes midway shows here.
	for _, s := range setups {
		if err := collectionsAnswer(s.port); err != nil {
			return fmt.Errorf("%s after the run: %w", s.name, err)
		}
	}

	fmt.Printf("Collections: redis-benchmark -c %d -d %d -r %d -t %s, -n %d at -P 1 and -n %d at -P 16, median req/s of %d interleaved rounds:\n\n",
		cfg.clients, cfg.dataSize, cfg.keyRange, tests, cfg.nP1, cfg.nP16, cfg.rounds)
	fmt.Println("| setup | -P | " + strings.Join(collectionTests, " | ") + " |")
	fmt.Println("|---|---|" + strings.Repeat("---|", len(collectionTests)))
	rps := func(x sample) float64 { return x.rps }
	for _, pipeline := range []int{1, 16} {
		for _, s := range setups {
			row := fmt.Sprintf("| %s | %d |", s.name, pipeline)
			for _, test := range collectionTests {
				row += fmt.Sprintf(" %.0f |", medianOf(results[key(s.name, pipeline)][test], rps))
			}
			fmt.Println(row)
		}
	}
	fmt.Println()
	fmt.Println("| ratio shardkv / twemproxy | -P | " + strings.Join(collectionTests, " | ") + " |")
	fmt.Println("|---|---|" + strings.Repeat("---|", len(collectionTests)))
	for _, pipeline := range []int{1, 16} {
		row := fmt.Sprintf("| median [lowest-highest] of the rounds | %d |", pipeline)
		for _, test := range collectionTests {
			cur := results[key(setups[0].name, pipeline)][test]
			base := results[key(setups[1].name, pipeline)][test]
			row += " " + spread(cur, base, rps) + " |"
		}
		fmt.Println(row)
	}
	fmt.Println()
	if cfg.baselineBin != "" {
		fmt.Printf("| current / @%s | -P | %s |\n", cfg.baselineRev, strings.Join(collectionTests, " | "))
		fmt.Println("|---|---|" + strings.Repeat("---|", len(collectionTests)))
		for _, pipeline := range []int{1, 16} {
			row := fmt.Sprintf("| %s | %d |", setups[0].name, pipeline)
			for _, test := range collectionTests {
				row += " " + spread(results[key(setups[0].name, pipeline)][test], results[key(setups[2].name, pipeline)][test], rps) + " |"
			}
			fmt.Println(row)
		}
		fmt.Println()
	}
	return nil
}

// collectionsAnswer sends each collection command of the benchmark once over
// a raw connection (twemproxy closes connections that open with HELLO) and
// fails on an error reply.
func collectionsAnswer(port int) error {
	c, err := net.DialTimeout("tcp", addr(port), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for _, args := range [][]string{
		{"HSET", "bench:check:hash", "f", "v"},
		{"SADD", "bench:check:set", "m"},
		{"SPOP", "bench:check:set"},
		{"ZADD", "bench:check:zset", "1", "m"},
		{"ZPOPMIN", "bench:check:zset"},
		{"LPUSH", "bench:check:list", "a"},
		{"RPUSH", "bench:check:list", "b"},
		{"LRANGE", "bench:check:list", "0", "99"},
		{"LPOP", "bench:check:list"},
		{"RPOP", "bench:check:list"},
	} {
		req := fmt.Sprintf("*%d\r\n", len(args))
		for _, a := range args {
			req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			return err
		}
		if err := skipReply(r); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
	}
	return nil
}

// skipReply reads one RESP2 reply and returns its error text as an error.
func skipReply(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '-':
		return fmt.Errorf("error reply %q", line)
	case '+', ':':
		return nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		if n >= 0 {
			_, err = r.Discard(n + 2)
		}
		return err
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := skipReply(r); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unexpected reply %q", line)
}

// bigCollection is one collection for the memory and restart measurement:
// elems elements written by add, checked by check on the last one.
type bigCollection struct {
	name  string
	elems int
	// add returns the command adding element i.
	add func(i int) []string
	// check returns a command whose reply is not nil once the last element
	// is served.
	check []string
}

func bigCollections(n, size int) []bigCollection {
	value := strings.Repeat("v", size)
	member := func(i int) string { return fmt.Sprintf("member:%09d", i) } // 16 bytes
	return []bigCollection{
		{fmt.Sprintf("hash of %d fields, %d-byte values", n, size), n, func(i int) []string { return []string{"HSET", "bighash", member(i), value} },
			[]string{"HGET", "bighash", member(n - 1)}},
		{fmt.Sprintf("set of %d 16-byte members", n), n, func(i int) []string { return []string{"SADD", "bigset", member(i)} },
			[]string{"SRANDMEMBER", "bigset"}},
		{fmt.Sprintf("sorted set of %d 16-byte members", n), n, func(i int) []string {
			return []string{"ZADD", "bigzset", strconv.Itoa(i), member(i)}
		}, []string{"ZSCORE", "bigzset", member(n - 1)}},
		{fmt.Sprintf("list of %d %d-byte elements", n, size), n, func(i int) []string { return []string{"RPUSH", "biglist", value} },
			[]string{"LINDEX", "biglist", strconv.Itoa(n - 1)}},
	}
}

// collectionMemory loads each big collection into a fresh shard node and a
// fresh redis-server (AOF everysec), compares their RSS, then restarts each
// and times start to serving the collection's last element again.
func collectionMemory(ctx context.Context, h *harness, cfg config) error {
	fmt.Printf("\nMemory and restart of one big collection per server:\n\n")
	fmt.Println("| collection | system | RSS after load (MiB) | restart to serving it (s) |")
	fmt.Println("|---|---|---|---|")
	var ratios []string
	for ci, bc := range bigCollections(cfg.collElems, cfg.dataSize) {
		label := bc.name
		payload := filepath.Join(h.dir, fmt.Sprintf("coll-%d.resp", ci))
		if err := writeCommands(payload, bc.elems, bc.add); err != nil {
			return err
		}
		np, rp := freePort(), freePort()
		nodeDir := filepath.Join(h.dir, fmt.Sprintf("coll-mem-node-%d", ci))
		redisDir := filepath.Join(h.dir, fmt.Sprintf("coll-mem-redis-%d", ci))
		systems := []struct {
			name  string
			port  int
			node  bool
			start func() *exec.Cmd
		}{
			{"shard node (everysec)", np, true, func() *exec.Cmd {
				return h.start(fmt.Sprintf("coll-mem-node-%d", ci), filepath.Join(h.bin, "shardkv-node"), "-addr", addr(np), "-dir", nodeDir, "-appendfsync", "everysec", "-log-level", "warn")
			}},
			{"redis-server (AOF everysec)", rp, false, func() *exec.Cmd {
				return h.startRedisIn(fmt.Sprintf("coll-mem-redis-%d", ci), rp, redisDir, "--appendonly", "yes", "--appendfsync", "everysec")
			}},
		}
		rss := make([]float64, len(systems))
		restart := make([]float64, len(systems))
		for si, s := range systems {
			var cmd *exec.Cmd
			var err error
			rss[si], restart[si], cmd, err = h.loadAndRestart(ctx, s.port, s.node, s.start, payload, label, func() error {
				return doOK(ctx, s.port, bc.check)
			})
			if err != nil {
				return fmt.Errorf("%s, %s: %w", label, s.name, err)
			}
			fmt.Printf("| %s | %s | %.1f | %.2f |\n", label, s.name, rss[si]/(1<<20), restart[si])
			// One server at a time: each measurement has the machine's
			// memory and disk to itself.
			if err := h.terminate(cmd); err != nil {
				return fmt.Errorf("%s stop: %w", s.name, err)
			}
		}
		ratios = append(ratios, fmt.Sprintf("%s: node / redis RSS %.2fx, restart time %.2fx", label, rss[0]/rss[1], restart[0]/restart[1]))
	}
	fmt.Println()
	for _, r := range ratios {
		fmt.Println("- " + r)
	}
	fmt.Println()
	return nil
}

// writeCommands writes n commands add(0..n-1) in RESP to path, for
// redis-cli --pipe.
func writeCommands(path string, n int, add func(i int) []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		args := add(i)
		fmt.Fprintf(w, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// doOK runs args and fails unless the reply is a value (not nil, not an error).
func doOK(ctx context.Context, port int, args []string) error {
	c := redis.NewClient(&redis.Options{Addr: addr(port), Protocol: 2, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	return c.Do(ctx, a...).Err()
}
