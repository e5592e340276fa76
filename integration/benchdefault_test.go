package integration

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisBenchmarkDefaultTests are the tests redis-benchmark 7.0 runs when
// given no -t, as its CSV output names them.
var redisBenchmarkDefaultTests = []string{
	"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET",
	"SPOP", "ZADD", "ZPOPMIN", "LPUSH (needed to benchmark LRANGE)", "LRANGE_100 (first 100 elements)",
	"LRANGE_300 (first 300 elements)", "LRANGE_500 (first 500 elements)", "LRANGE_600 (first 600 elements)",
	"MSET (10 keys)",
}

// TestRedisBenchmarkDefaultSet: redis-benchmark with its default test set
// (no -t) through `shardkv cluster`, what `make run` starts, completes all
// 20 tests. redis-benchmark 7 exits at the first error reply, so a clean
// exit with every test's row means none came back.
func TestRedisBenchmarkDefaultSet(t *testing.T) {
	path, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Skip("redis-benchmark not installed")
	}
	needBinaries(t)
	cc := newClusterCmd(t, 3)
	cc.Start()
	defer func() {
		if err := cc.Stop(syscall.SIGINT); err != nil {
			t.Errorf("shardkv cluster exited with %v", err)
		}
	}()
	host, port, _ := strings.Cut(cc.ProxyAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-h", host, "-p", port, "-n", "5000", "-c", "20", "-P", "4", "-r", "10000", "--csv"}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("redis-benchmark %s: %v\n%s", strings.Join(args, " "), err, text)
	}
	for _, name := range redisBenchmarkDefaultTests {
		if !strings.Contains(text, `"`+name+`","`) {
			t.Errorf("redis-benchmark's output has no row for %s", name)
		}
	}
	if n := strings.Count(text, "\n"); n != len(redisBenchmarkDefaultTests)+1 {
		t.Errorf("redis-benchmark printed %d lines; want a header and %d rows", n, len(redisBenchmarkDefaultTests))
	}
	if strings.Contains(strings.ToLower(text), "error") {
		t.Errorf("redis-benchmark reported an error")
	}
	t.Logf("redis-benchmark's default set through shardkv cluster:\n%s", text)
}
