package shardnode

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// The tests in this file build cmd/shardkv-node and run it as a child
// process: what a crash or a signal does can only be seen from outside.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// nodeBinary builds the shard node once per test run.
func nodeBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process tests need Linux (/proc, signals)")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "shardkv-node-test")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "shardkv-node")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/shardkv/shardkv/cmd/shardkv-node").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// nodeProc is a shard node child process.
type nodeProc struct {
	cmd  *exec.Cmd
	addr string
	logs *syncWriter
	// exited is closed when the process is gone; err is Wait's result.
	exited chan struct{}
	err    error
}

// wait waits for the process to exit and returns Wait's result.
func (p *nodeProc) wait() error {
	<-p.exited
	return p.err
}

func startProc(t *testing.T, dir string, args ...string) *nodeProc {
	t.Helper()
	bin := nodeBinary(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := &nodeProc{addr: addr, logs: &syncWriter{buf: &bytes.Buffer{}}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"-addr", addr, "-dir", dir}, args...)...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.wait()
		if t.Failed() {
			t.Logf("node log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("node exited at start: %v\n%s", p.err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node does not listen on %s:\n%s", addr, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vmKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status in KiB.
func (p *nodeProc) vmKB(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// TestSIGKILLLosesNoAcknowledgedWrite: under appendfsync always, every
// write whose reply the client received is there after SIGKILL and a
// restart. Writers pipeline SETs and INCRs on several connections while the
// node is killed.
func TestSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, "-appendfsync", "always")
	c := dialRaw(t, p.addr)
	if got := c.do("SHARD.ASSIGN", "s", "0", "1", "0"); got != ok {
		t.Fatal(got)
	}
	const writers = 6
	type acked struct {
		sets    int // SETs w<g>:0 .. w<g>:sets-1 acknowledged
		counter int64
	}
	results := make([]acked, writers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			nc, err := net.Dial("tcp", p.addr)
			if err != nil {
				return
			}
			defer nc.Close()
			rr := resp.NewReplyReader(nc, 4096)
			w := bufio.NewWriter(nc)
			next := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A pipeline of 8 SETs and one INCR.
				for i := 0; i < 8; i++ {
					k := fmt.Sprintf("w%d:%d", g, next+i)
					w.Write(resp.AppendCommandStrings(nil, "SET", k, "value-"+k))
				}
				w.Write(resp.AppendCommandStrings(nil, "INCR", fmt.Sprintf("ctr%d", g)))
				if w.Flush() != nil {
					return
				}
				for i := 0; i < 8; i++ {
					b, err := rr.Next()
					if err != nil || string(b) != ok {
						return
					}
					results[g].sets = next + i + 1
				}
				b, err := rr.Next()
				if err != nil {
					return
				}
				v, _ := strconv.ParseInt(strings.Trim(string(b), ":\r\n"), 10, 64)
				results[g].counter = v
				next += 8
			}
		}(g)
	}
	time.Sleep(700 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()
	close(stop)
	wg.Wait()
	total := 0
	for _, r := range results {
		total += r.sets
	}
	if total < 100 {
		t.Fatalf("only %d writes acknowledged before the kill", total)
	}
	t.Logf("%d SETs acknowledged before SIGKILL", total)

	p2 := startProc(t, dir, "-appendfsync", "always")
	c2 := dialRaw(t, p2.addr)
	for g, r := range results {
		for i := 0; i < r.sets; i++ {
			k := fmt.Sprintf("w%d:%d", g, i)
			c2.send("GET", k)
		}
		for i := 0; i < r.sets; i++ {
			k := fmt.Sprintf("w%d:%d", g, i)
			if got := c2.next(); got != bs("value-"+k) {
				t.Fatalf("acknowledged %s lost after SIGKILL: %q", k, got)
			}
		}
		got := c2.do("GET", fmt.Sprintf("ctr%d", g))
		v, _ := strconv.ParseInt(strings.TrimSpace(got[strings.Index(got, "\n")+1:]), 10, 64)
		if v < r.counter {
			t.Fatalf("counter %d is %d after restart, %d was acknowledged", g, v, r.counter)
		}
	}
	// The assignment survived too, and the recovery was summarised.
	if got := c2.do("SET", "after", "1"); got != ok {
		t.Errorf("SET after restart: %q", got)
	}
	if !strings.Contains(p2.logs.String(), "storage recovered") {
		t.Errorf("no recovery summary in the log:\n%s", p2.logs.String())
	}
}

// TestSIGTERMGraceful: SIGTERM stops the node with exit status 0, after
// the replies it owed; the data is on disk; JSON logs parse as lines.
func TestSIGTERMGraceful(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, "-log-format", "json", "-appendfsync", "no")
	c := dialRaw(t, p.addr)
	c.do("SHARD.ASSIGN", "s", "0", "1", "0")
	for i := 0; i < 100; i++ {
		c.send("SET", fmt.Sprintf("k%d", i), "v")
	}
	for i := 0; i < 100; i++ {
		if got := c.next(); got != ok {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("node did not exit after SIGTERM")
	}
	logs := p.logs.String()
	for _, want := range []string{`"@message":"shard node listening"`, `"@message":"assignment accepted"`,
		`"@message":"signal received: shutting down"`, `"@message":"shard node stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not a JSON log line: %q", line)
		}
	}
	p2 := startProc(t, dir)
	if got := dialRaw(t, p2.addr).do("DBSIZE"); got != in(100) {
		t.Errorf("DBSIZE after SIGTERM and restart: %q", got)
	}
}

// TestProcessMemoryUnderAttack measures the child's resident memory while
// it receives a 600 MB bulk header, a two-billion multibulk count and a
// 100 MB inline line: each gets Redis's error and the peak RSS barely
// moves.
func TestProcessMemoryUnderAttack(t *testing.T) {
	p := startProc(t, t.TempDir())
	dialRaw(t, p.addr).do("SHARD.ASSIGN", "s", "0", "1", "0")
	base := p.vmKB(t, "VmHWM")
	for _, a := range []struct {
		name, payload, want string
		junk                int
	}{
		{"600 MB bulk", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n", "Protocol error: invalid bulk length", 16 << 20},
		{"2e9 multibulk", "*2000000000\r\n$3\r\nSET\r\n", "Protocol error: invalid multibulk length", 16 << 20},
		{"100 MB inline", "SET k ", "Protocol error: too big inline request", 100 << 20},
	} {
		c := dialRaw(t, p.addr)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nc.Write([]byte(a.payload))
			junk := bytes.Repeat([]byte("A"), 1<<20)
			for sent := 0; sent < a.junk; sent += len(junk) {
				if _, err := c.nc.Write(junk); err != nil {
					return
				}
			}
		}()
		if got := c.readAll(10 * time.Second); got != "-ERR "+a.want+"\r\n" {
			t.Errorf("%s: got %q", a.name, got)
		}
		c.close()
		wg.Wait()
	}
	peak := p.vmKB(t, "VmHWM")
	t.Logf("peak RSS %d KiB before, %d KiB after the attacks", base, peak)
	if peak-base > 64<<10 {
		t.Errorf("peak RSS grew by %d MiB", (peak-base)>>10)
	}
	if got := dialRaw(t, p.addr).do("PING"); got != "+PONG\r\n" {
		t.Errorf("PING after the attacks: %q", got)
	}
}

// TestBinaryFlags: bad flags fail fast with status 2; -pprof refuses a
// non-loopback address.
func TestBinaryFlags(t *testing.T) {
	bin := nodeBinary(t)
	for _, args := range [][]string{
		{"-appendfsync", "sometimes"},
		{"-log-format", "xml"},
		{"-log-level", "loud"},
		{"-pprof", "0.0.0.0:0"},
		{"-nosuchflag"},
	} {
		cmd := exec.Command(bin, append([]string{"-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errorsAs(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
