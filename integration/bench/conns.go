package main

// The many-connections load shape of issue 12: a thousand clients, each on
// its own connection with one command in flight, doing SET/GET pairs. What
// it measures is how a server copes with many mostly idle sockets that each
// send one small request at a time: no pipelining to amortize a read, a
// write or a wakeup over several commands.
//
// The clients speak RESP over raw connections rather than through go-redis:
// go-redis opens every connection with HELLO (and CLIENT SETINFO), which
// twemproxy answers by closing the connection, and a raw client costs the
// same few microseconds of the shared CPUs in front of every setup.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// connsSample is one run of the many-connections shape against one setup.
type connsSample struct {
	cmds float64 // commands per second, from the start signal to the last client done
	p50  float64 // latency of one command, ms
	p99  float64
	p999 float64
}

// connsRunLimit bounds one run, so that a server that stops answering fails
// the benchmark instead of hanging it.
const connsRunLimit = 5 * time.Minute

// manyConns connects cfg.conns clients to port, then releases them at once;
// each does cfg.pairs pairs of `SET key:N value` and `GET key:N`, N random in
// [0, cfg.keyRange) as redis-benchmark's -r draws it, waiting for each reply
// before sending the next command. seed varies the keys between rounds.
func manyConns(ctx context.Context, port int, cfg config, seed uint64) (connsSample, error) {
	conns := make([]net.Conn, cfg.conns)
	errs := make([]error, cfg.conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	// All connections are open and answered a PING before the clock starts:
	// the shape is many established connections, not a storm of connects.
	// 32 dials at a time stay well inside any listen backlog.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = dialPinged(ctx, port)
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return connsSample{}, fmt.Errorf("connecting %d clients: %w", cfg.conns, err)
	}
	deadline := time.Now().Add(connsRunLimit)
	for _, c := range conns {
		_ = c.SetDeadline(deadline)
	}
	// Closing the sockets is what unblocks clients waiting for a reply.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stop()

	value := []byte(strings.Repeat("x", cfg.dataSize))
	lat := make([][]time.Duration, cfg.conns)
	start := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			lat[i], errs[i] = setGetPairs(conns[i], rand.New(rand.NewPCG(seed, uint64(i))), value, cfg)
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	if ctx.Err() != nil {
		return connsSample{}, ctx.Err()
	}
	if err := firstError(errs); err != nil {
		return connsSample{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return connsSample{
		cmds: float64(len(all)) / elapsed.Seconds(),
		p50:  ms(quantile(all, 0.50)),
		p99:  ms(quantile(all, 0.99)),
		p999: ms(quantile(all, 0.999)),
	}, nil
}

func dialPinged(ctx context.Context, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr(port))
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := roundTrip(c, bufio.NewReader(c), []byte("*1\r\n$4\r\nPING\r\n"))
	if err == nil && string(line) != "+PONG" {
		err = fmt.Errorf("PING replied %q", line)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// setGetPairs runs one client. It returns the latency of every command, a
// SET's and a GET's alike, as a client sees it: from just before the write
// to the end of the reply.
func setGetPairs(c net.Conn, rng *rand.Rand, value []byte, cfg config) ([]time.Duration, error) {
	// The connection was read only by PING's own reader, which ended at the
	// end of a reply; a fresh reader loses nothing.
	r := bufio.NewReaderSize(c, 4096)
	lat := make([]time.Duration, 0, 2*cfg.pairs)
	var key, req []byte
	for range cfg.pairs {
		key = strconv.AppendInt(append(key[:0], "key:"...), int64(rng.IntN(cfg.keyRange)), 10)
		req = appendCommand(req[:0], []byte("SET"), key, value)
		t := time.Now()
		line, err := roundTrip(c, r, req)
		if err != nil {
			return nil, fmt.Errorf("SET %s: %w", key, err)
		}
		if string(line) != "+OK" {
			return nil, fmt.Errorf("SET %s replied %q", key, line)
		}
		lat = append(lat, time.Since(t))

		req = appendCommand(req[:0], []byte("GET"), key)
		t = time.Now()
		line, err = roundTrip(c, r, req)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", key, err)
		}
		// Any client may have set the key since, always to a value of this
		// size, and nobody deletes keys: the reply is a bulk of that size.
		if want := "$" + strconv.Itoa(len(value)); string(line) != want {
			return nil, fmt.Errorf("GET %s replied %q, want %q", key, line, want)
		}
		if _, err := r.Discard(len(value) + 2); err != nil {
			return nil, fmt.Errorf("GET %s: %w", key, err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// roundTrip writes req and returns the first line of the reply without its
// CRLF; the caller reads the rest of a bulk reply.
func roundTrip(c net.Conn, r *bufio.Reader, req []byte) ([]byte, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if len(line) > 0 && line[0] == '-' {
		return nil, fmt.Errorf("server error: %s", line[1:])
	}
	return line, nil
}

func appendCommand(b []byte, args ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// quantile of sorted durations: the smallest that at least q of them do not
// exceed.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// firstError returns the first error and how many clients failed: a
// thousand copies of one refused connection say nothing more than one.
func firstError(errs []error) error {
	n := 0
	var first error
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w (and %d more clients failed)", first, n-1)
	}
	return first
}

// checkFileLimit fails early when the servers the harness starts could not
// hold the clients' connections. A Go program raises its own soft limit on
// open files at start but hands its children the one it was started with,
// so the children's limit is asked of a child.
func checkFileLimit(conns int) error {
	need := conns + 256 // the clients, plus backends, data files and logs
	out, err := exec.Command("sh", "-c", "ulimit -n").Output()
	if err != nil {
		return fmt.Errorf("ulimit -n: %w", err)
	}
	s := strings.TrimSpace(string(out))
	if s == "unlimited" {
		return nil
	}
	limit, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("ulimit -n printed %q", s)
	}
	if limit < need {
		return fmt.Errorf("open files limit (ulimit -n) is %d; %d clients through a proxy need at least %d per process: raise it (scripts/bench.sh does) or lower -conns", limit, conns, need)
	}
	return nil
}

// connsPhase is the phase of the many-connections shape: shardkv's proxy
// with three nodes against twemproxy with three redis-servers, both with
// appendfsync always and everysec, as issue 12 ran them.
func connsPhase(ctx context.Context, h *harness, cfg config) error {
	if err := checkFileLimit(cfg.conns); err != nil {
		return err
	}
	var setups []setup
	for _, fsync := range []string{"always", "everysec"} {
		name := "shardkv proxy + 3 nodes (" + fsync + ")"
		p, err := h.shardkv("conns-"+fsync, h.bin, fsync, 3)
		if err != nil {
			return err
		}
		setups = append(setups, setup{name: name, port: p})
		if cfg.baselineBin != "" {
			bp, err := h.shardkv("conns-"+fsync+"-baseline", cfg.baselineBin, fsync, 3)
			if err != nil {
				return err
			}
			setups = append(setups, setup{name: name + " @" + cfg.baselineRev, port: bp, current: name})
		}
		var rs []int
		for i := range 3 {
			r := freePort()
			h.redis(fmt.Sprintf("conns-redis-%s-%d", fsync, i), r, "--appendonly", "yes", "--appendfsync", fsync)
			rs = append(rs, r)
		}
		tp := freePort()
		if err := h.twemproxy("conns-twemproxy-"+fsync, tp, rs...); err != nil {
			return err
		}
		setups = append(setups, setup{name: "twemproxy + 3 redis (AOF " + fsync + ")", port: tp})
	}
	if err := h.ready(ctx, setups); err != nil {
		return err
	}

	results := map[string][]connsSample{}
	width := nameWidth(setups)
	for round := 1; round <= cfg.rounds; round++ {
		for _, s := range roundOrder(setups, round) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			got, err := manyConns(ctx, s.port, cfg, uint64(round))
			if err != nil {
				return fmt.Errorf("%s, %d clients: %w (logs in %s)", s.name, cfg.conns, err, h.dir)
			}
			results[s.name] = append(results[s.name], got)
			fmt.Fprintf(os.Stderr, "round %d conns %-*s %9.0f cmd/s  p99 %7.2f ms\n", round, width, s.name, got.cmds, got.p99)
		}
	}

	fmt.Printf("Many connections: %d clients, each on its own connection with one command in flight, %d SET/GET pairs each "+
		"(-d %d, keys of -r %d), median of %d interleaved rounds:\n\n", cfg.conns, cfg.pairs, cfg.dataSize, cfg.keyRange, cfg.rounds)
	fmt.Println("| setup | commands/s | p50 ms | p99 ms | p99.9 ms |")
	fmt.Println("|---|---|---|---|---|")
	med := map[string]connsSample{}
	for _, s := range setups {
		m := medianConns(results[s.name])
		med[s.name] = m
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %.2f |\n", s.name, m.cmds, m.p50, m.p99, m.p999)
	}
	fmt.Println()
	fmt.Println("| ratio shardkv / twemproxy (medians) | commands/s (higher is better) | p99 (lower is better) |")
	fmt.Println("|---|---|---|")
	for _, fsync := range []string{"always", "everysec"} {
		a, b := med["shardkv proxy + 3 nodes ("+fsync+")"], med["twemproxy + 3 redis (AOF "+fsync+")"]
		fmt.Printf("| appendfsync %s | %.2fx | %.2fx |\n", fsync, a.cmds/b.cmds, a.p99/b.p99)
	}
	fmt.Println()
	if cfg.baselineBin != "" {
		fmt.Printf("Current / @%s, many connections: the ratio of each round's pair, median [lowest-highest] of %d rounds:\n\n", cfg.baselineRev, cfg.rounds)
		fmt.Println("| setup | commands/s | p99 |")
		fmt.Println("|---|---|---|")
		for _, s := range setups {
			if s.current == "" {
				continue
			}
			cur, base := results[s.current], results[s.name]
			fmt.Printf("| %s | %s | %s |\n", s.current,
				spread(cur, base, func(x connsSample) float64 { return x.cmds }),
				spread(cur, base, func(x connsSample) float64 { return x.p99 }))
		}
		fmt.Println()
	}
	return nil
}

func medianConns(s []connsSample) connsSample {
	return connsSample{
		cmds: medianOf(s, func(x connsSample) float64 { return x.cmds }),
		p50:  medianOf(s, func(x connsSample) float64 { return x.p50 }),
		p99:  medianOf(s, func(x connsSample) float64 { return x.p99 }),
		p999: medianOf(s, func(x connsSample) float64 { return x.p999 }),
	}
}
