package integration

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRedisBenchmarkSets runs redis-benchmark's SADD and SPOP tests
// through the proxy: redis-benchmark 7 exits at the first error reply, so
// a clean exit with both tests' results means none came back.
func TestRedisBenchmarkSets(t *testing.T) {
	path, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Skip("redis-benchmark not installed")
	}
	c := StartCluster(t, Options{})
	host, port, _ := strings.Cut(c.ProxyAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 20000
	out, err := exec.CommandContext(ctx, path, "-h", host, "-p", port, "-t", "sadd,spop",
		"-n", strconv.Itoa(n), "-c", "20", "-P", "8", "-r", "100000", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "rror") || !strings.Contains(text, "SADD: ") || !strings.Contains(text, "SPOP: ") || strings.Count(text, "requests per second") != 2 {
		t.Fatalf("redis-benchmark output:\n%s", text)
	}
	t.Logf("redis-benchmark through the proxy:\n%s", text)
	r := c.Client()
	if typ, err := r.Type(ctx, "myset").Result(); err != nil || (typ != "set" && typ != "none") {
		t.Fatalf("TYPE myset: %q %v", typ, err)
	}
}
