package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/resp"
)

// proxyProcess runs the shardkv-proxy binary on a map file.
func proxyProcess(t *testing.T, nodes []*node) (addr, mapFile string, cmd *exec.Cmd) {
	t.Helper()
	c := &cluster{t: t, file: filepath.Join(t.TempDir(), "map.json")}
	c.writeMap(evenMap(nodes))
	addr = freeAddr(t)
	cmd = exec.Command(proxyBin, "-addr", addr, "-map", c.file, "-log-level", "info", "-timeout", "2s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	procs.Lock()
	procs.all[cmd] = true
	procs.Unlock()
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // not waited for by the test
			cmd.Process.Kill()
			cmd.Wait()
		}
		procs.Lock()
		delete(procs.all, cmd)
		procs.Unlock()
		if t.Failed() {
			t.Logf("proxy logs:\n%s", logs.String())
		}
	})
	eventually(t, 10*time.Second, func() error {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
		}
		return err
	})
	return addr, c.file, cmd
}

func redisCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not found in PATH: install redis-tools to run this test")
	}
	return path
}

// redis-cli one-shot commands and --pipe loading through the proxy binary;
// SIGHUP reloads the map; SIGTERM stops it cleanly.
func TestBinaryWithRedisCLI(t *testing.T) {
	cli := redisCLI(t)
	n0, n1 := newNode(t, "s0"), newNode(t, "s1")
	n0.start(t)
	n1.start(t)
	addr, mapFile, cmd := proxyProcess(t, []*node{n0, n1})
	host, port, _ := net.SplitHostPort(addr)
	run := func(stdin []byte, args ...string) string {
		t.Helper()
		c := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...)
		if stdin != nil {
			c.Stdin = bytes.NewReader(stdin)
		}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	eventually(t, 10*time.Second, func() error {
		if got := run(nil, "SET", "cli:a", "hello"); got != "OK" {
			return fmt.Errorf("SET: %q", got)
		}
		return nil
	})
	if got := run(nil, "GET", "cli:a"); got != "hello" {
		t.Fatalf("GET: %q", got)
	}
	if got := run(nil, "-3", "GET", "cli:a"); got != "hello" {
		t.Fatalf("RESP3 GET: %q", got)
	}
	if got := run(nil, "PING"); got != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	if got := run(nil, "INFO", "server"); !strings.Contains(got, "redis_version:") {
		t.Fatalf("INFO: %q", got)
	}

	// --pipe: 5000 SETs in raw protocol.
	var in []byte
	for i := 0; i < 5000; i++ {
		in = resp.AppendCommandStrings(in, "SET", fmt.Sprintf("pipe:%d", i), fmt.Sprint(i))
	}
	out := run(in, "--pipe")
	if !strings.Contains(out, "errors: 0, replies: 5000") {
		t.Fatalf("--pipe: %s", out)
	}
	if got := run(nil, "DBSIZE"); got != "5001" {
		t.Fatalf("DBSIZE after --pipe: %q", got)
	}
	if got := run(nil, "GET", "pipe:4321"); got != "4321" {
		t.Fatalf("GET after --pipe: %q", got)
	}

	// SIGHUP: a size change reaches the node.
	c := &cluster{t: t, file: mapFile}
	m := evenMap([]*node{n0, n1})
	m.Shards[0].Size = 777777
	c.writeMap(m)
	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, func() error {
		info := n0.client(t).Info(context.Background(), "shard").Val()
		if !strings.Contains(info, "shard_size_limit:777777\r\n") {
			return fmt.Errorf("SIGHUP did not apply the new size")
		}
		return nil
	})

	// SIGTERM: a clean exit.
	r := redis.NewClient(&redis.Options{Addr: addr})
	defer r.Close()
	r.Ping(context.Background())
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// Flags are checked: a bad log level or a non-loopback pprof address stops
// the binary with a message.
func TestBinaryFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-log-level", "loud"}, "-log-level"},
		{[]string{"-pprof", "0.0.0.0:6060"}, "loopback"},
		{[]string{"-map", filepath.Join(t.TempDir(), "none.json")}, "none.json"},
	} {
		out, err := exec.Command(proxyBin, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Fatalf("%v: %v %s", tc.args, err, out)
		}
	}
}
