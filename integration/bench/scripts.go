package main

// The scripting row of issue 15: EVALSHA of a one-key INCR script through
// shardkv's proxy against twemproxy in front of in-memory redis-servers
// (twemproxy routes EVALSHA by its first key; it has no SCRIPT LOAD, so the
// script is loaded on each redis-server directly).

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const benchIncrScript = "return redis.call('incr', KEYS[1])"

func scriptsPhase(ctx context.Context, h *harness, cfg config) error {
	proxyPort, err := h.shardkv("lua-proxy2", h.bin, "everysec", 2)
	if err != nil {
		return err
	}
	r1, r2, nutPort := freePort(), freePort(), freePort()
	h.redis("lua-redis-1", r1, "--appendonly", "no")
	h.redis("lua-redis-2", r2, "--appendonly", "no")
	if err := h.twemproxy("lua-twemproxy", nutPort, r1, r2); err != nil {
		return err
	}
	setups := []setup{
		{name: "shardkv proxy + 2 nodes (everysec)", port: proxyPort},
		{name: "twemproxy + 2 redis (no persistence)", port: nutPort},
	}
	if err := h.ready(ctx, setups); err != nil {
		return err
	}
	var sha string
	for _, port := range []int{proxyPort, r1, r2} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), DisableIdentity: true})
			sha, err = c.ScriptLoad(ctx, benchIncrScript).Result()
			c.Close()
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "TRYAGAIN") || time.Now().After(deadline) {
				return fmt.Errorf("SCRIPT LOAD on port %d: %w", port, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	results := map[string][]sample{}
	width := max(40, nameWidth(setups))
	for round := 1; round <= cfg.rounds; round++ {
		for _, pipeline := range []int{1, 16} {
			for _, s := range roundOrder(setups, round) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				got, err := runEvalSha(ctx, s.port, pipeline, cfg, sha)
				if err != nil {
					return fmt.Errorf("%s -P %d: %w", s.name, pipeline, err)
				}
				results[key(s.name, pipeline)] = append(results[key(s.name, pipeline)], got)
				fmt.Fprintf(os.Stderr, "round %d -P %2d %-*s  EVALSHA %8.0f\n", round, pipeline, width, s.name, got.rps)
			}
		}
	}
	fmt.Printf("Scripts: redis-benchmark -c %d -r %d EVALSHA <incr script> 1 key:__rand_int__, -n %d at -P 1 and -n %d at -P 16, median req/s of %d interleaved rounds:\n\n",
		cfg.clients, cfg.keyRange, cfg.nP1, cfg.nP16, cfg.rounds)
	fmt.Println("| setup | -P | EVALSHA req/s | p50 ms | p99 ms |")
	fmt.Println("|---|---|---|---|---|")
	rps := func(x sample) float64 { return x.rps }
	for _, pipeline := range []int{1, 16} {
		for _, s := range setups {
			r := results[key(s.name, pipeline)]
			fmt.Printf("| %s | %d | %.0f | %.3f | %.3f |\n", s.name, pipeline, medianOf(r, rps),
				medianOf(r, func(x sample) float64 { return x.p50 }), medianOf(r, func(x sample) float64 { return x.p99 }))
		}
	}
	fmt.Println()
	fmt.Println("| ratio shardkv / twemproxy | -P | EVALSHA |")
	fmt.Println("|---|---|---|")
	for _, pipeline := range []int{1, 16} {
		fmt.Printf("| median [lowest-highest] of the rounds | %d | %s |\n", pipeline,
			spread(results[key(setups[0].name, pipeline)], results[key(setups[1].name, pipeline)], rps))
	}
	fmt.Println()
	return nil
}

// runEvalSha runs redis-benchmark's custom command EVALSHA sha 1 key.
func runEvalSha(ctx context.Context, port, pipeline int, cfg config, sha string) (sample, error) {
	n := cfg.nP1
	if pipeline > 1 {
		n = cfg.nP16
	}
	cmd := exec.CommandContext(ctx, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", strconv.Itoa(cfg.clients), "-r", strconv.Itoa(cfg.keyRange),
		"-n", strconv.Itoa(n), "-P", strconv.Itoa(pipeline), "--csv", "--precision", "3",
		"EVALSHA", sha, "1", "lua:__rand_int__")
	out, err := cmd.Output()
	if err != nil {
		return sample{}, fmt.Errorf("redis-benchmark: %w: %s", err, out)
	}
	rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return sample{}, fmt.Errorf("redis-benchmark csv: %w: %s", err, out)
	}
	for _, row := range rows {
		if len(row) < 7 || row[0] == "test" {
			continue
		}
		rps, _ := strconv.ParseFloat(row[1], 64)
		p50, _ := strconv.ParseFloat(row[4], 64)
		p99, _ := strconv.ParseFloat(row[6], 64)
		return sample{rps, p50, p99}, nil
	}
	return sample{}, fmt.Errorf("no result in: %s", out)
}
