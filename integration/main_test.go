package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// binDir holds the binaries TestMain built; empty in -short mode.
//
// The longest fault tests (kills, moves, failovers), which spend their time
// waiting for timeouts, leases and restarts rather than on the CPU, call
// t.Parallel: they run two at a time (go test's -parallel, GOMAXPROCS) after
// the others, which keeps the suite's wall time down. Tests that time
// replies against a short proxy -timeout stay sequential.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	raiseFileLimit(4096)
	dir, err := os.MkdirTemp("", "shardkv-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building the binaries failed:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinaries runs `go build` once for the three binaries, from the module
// root. With -race the servers are built with the race detector too, so a
// data race under real load fails the test that provoked it.
func buildBinaries(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/shardkv-node", "./cmd/shardkv-proxy", "./cmd/shardkv")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".." // the module root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %v: %v\n%s", args, err, out)
	}
	return nil
}

// raiseFileLimit lifts RLIMIT_NOFILE to at least want when it can: the
// 1,000-client test holds 1,000 connections in this process and as many in the
// proxy, which inherits the limit.
func raiseFileLimit(want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		lim.Max = want // works only with CAP_SYS_RESOURCE; fall back below
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// needBinaries skips the test in -short mode.
func needBinaries(t testing.TB) {
	t.Helper()
	if binDir == "" {
		t.Skip("integration tests need the binaries; skipped in -short mode")
	}
}

func bin(name string) string { return filepath.Join(binDir, name) }
