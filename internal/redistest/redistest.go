// Package redistest starts a real redis-server for tests that compare
// shardkv's replies with Redis's own. Only tests import it.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Start runs redis-server without persistence on a free loopback port until
// the test ends and returns its address. The test is skipped when
// redis-server is not installed (.ci/run installs it).
func Start(t testing.TB) string {
	t.Helper()
	return start(t, freePorts(t, 1)[0])
}

// StartCluster runs redis-server with cluster mode on, as a cluster of one
// master that owns every slot (CLUSTER ADDSLOTSRANGE 0 16383), and returns
// its address once CLUSTER INFO says cluster_state:ok (a few seconds after
// the slots are added).
func StartCluster(t testing.TB) string {
	t.Helper()
	ports := freePorts(t, 2)
	// The bus port is given: Redis's default, the port plus 10000, may
	// not exist or be taken.
	addr := start(t, ports[0], "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[1]),
		"--cluster-config-file", "nodes.conf")
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	do := func(args ...string) string {
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := nc.Write([]byte(b.String())); err != nil {
			t.Fatalf("redis-server %v: %v", args, err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("redis-server %v: %v", args, err)
		}
		if line[0] != '$' {
			return strings.TrimRight(line, "\r\n")
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		body := make([]byte, n+2)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("redis-server %v: %v", args, err)
		}
		return string(body[:n])
	}
	if r := do("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); r != "+OK" {
		t.Fatalf("redis-server CLUSTER ADDSLOTSRANGE 0 16383: %s", r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.HasPrefix(do("CLUSTER", "INFO"), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s: the cluster is not ok 30s after its slots were added", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr
}

func start(t testing.TB, port int, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "warning"}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			nc.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1: all are
// held open together, then released.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
