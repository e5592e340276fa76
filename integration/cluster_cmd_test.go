package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/rangemap"
)

// syncBuffer is a bytes.Buffer safe for a writing process and a polling test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClusterCommand is `make run` on free ports: `shardkv cluster` starts
// three nodes and a proxy from a map, prints how to connect, serves SET and
// GET (with redis-cli when it is installed), stops everything on SIGINT, and
// finds its data again on the next start.
func TestClusterCommand(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	ports := freePorts(t, 4)
	m := &rangemap.Map{}
	for i := 0; i < 3; i++ {
		m.Shards = append(m.Shards, rangemap.Shard{Name: fmt.Sprintf("s%d", i),
			Start: float64(i) / 3, End: float64(i+1) / 3, Host: "127.0.0.1", Port: ports[i]})
	}
	m.Shards[2].End = 1
	mapFile := filepath.Join(dir, "map.json")
	writeMap(t, mapFile, m)
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", ports[3])
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "cluster.log")

	run := func(sig syscall.Signal, check func()) {
		t.Helper()
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		var out syncBuffer
		cmd := exec.Command(bin("shardkv"), "cluster", "--data", data, "--map", mapFile,
			"--proxy-addr", proxyAddr, "--log-level", "info")
		cmd.Stdout, cmd.Stderr = &out, logf
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stopped := false
		defer func() {
			if !stopped {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(exitTimeout):
					cmd.Process.Kill()
					<-exited
				}
				t.Log(logTail(logPath, 60))
			}
		}()

		deadline := time.Now().Add(2 * readyTimeout)
		for !strings.Contains(out.String(), "shardkv is running") {
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("shardkv cluster exited while starting: %v\nstdout:\n%s\n%s", err, out.String(), logTail(logPath, 60))
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("shardkv cluster did not report running after %v; stdout:\n%s", 2*readyTimeout, out.String())
			}
		}
		port := ports[3]
		if want := fmt.Sprintf("redis-cli -p %d SET idx:a 1", port); !strings.Contains(out.String(), want) {
			t.Errorf("cluster output lacks %q:\n%s", want, out.String())
		}

		check()

		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Fatalf("shardkv cluster exited with %v after %v\n%s", err, sig, logTail(logPath, 60))
			}
		case <-time.After(2 * exitTimeout):
			t.Fatalf("shardkv cluster did not exit within %v after %v", 2*exitTimeout, sig)
		}
		// Nothing listens any more: every child stopped with it.
		for _, p := range ports {
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
				conn.Close()
				t.Errorf("port %d still accepts connections after the cluster stopped", p)
			}
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: proxyAddr, MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	run(syscall.SIGINT, func() {
		if cli, err := exec.LookPath("redis-cli"); err == nil {
			for _, step := range []struct{ args, want string }{
				{"SET idx:a 1", "OK"},
				{"GET idx:a", "1"},
			} {
				args := append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(ports[3])}, strings.Fields(step.args)...)
				out, err := exec.Command(cli, args...).CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != step.want {
					t.Fatalf("redis-cli %s = %q, %v; want %q", step.args, out, err, step.want)
				}
			}
		} else {
			t.Log("redis-cli is not installed; using go-redis only")
			must(t, rdb.Set(ctx, "idx:a", "1", 0).Err())
		}
		if got, err := rdb.Get(ctx, "idx:a").Result(); err != nil || got != "1" {
			t.Fatalf("GET idx:a = %q, %v; want 1", got, err)
		}
		for i := 0; i < 100; i++ {
			must(t, rdb.Set(ctx, fmt.Sprintf("idx:k%d", i), i, 0).Err())
		}
	})
	for _, s := range m.Shards {
		if _, err := os.Stat(filepath.Join(data, s.Name)); err != nil {
			t.Errorf("data of shard %s not under --data: %v", s.Name, err)
		}
	}
	// The data is kept for the next run.
	run(syscall.SIGTERM, func() {
		if got, err := rdb.Get(ctx, "idx:a").Result(); err != nil || got != "1" {
			t.Fatalf("after a restart GET idx:a = %q, %v; want 1", got, err)
		}
		for i := 0; i < 100; i++ {
			if got, err := rdb.Get(ctx, fmt.Sprintf("idx:k%d", i)).Int(); err != nil || got != i {
				t.Fatalf("after a restart GET idx:k%d = %d, %v", i, got, err)
			}
		}
	})
	if data, err := os.ReadFile(logPath); err == nil && bytes.Contains(data, []byte("WARNING: DATA RACE")) {
		t.Errorf("the race detector found a data race; see %s", logPath)
	}
}

func logTail(path string, n int) string {
	p := &Proc{LogPath: path}
	return p.LogTail(n)
}
