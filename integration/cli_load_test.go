package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoadIdenticalErrors: 20,000 rows into an index that strict nodes do
// not have are reported in three lines, with the hint that fixes it, and the
// fix works.
func TestLoadIdenticalErrors(t *testing.T) {
	c := StartCluster(t, Options{StrictIndexes: true})
	var in bytes.Buffer
	const n = 20000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&in, "k%d|v%d\n", i, i)
	}
	res := c.RunCLI(t, in.Bytes(), "load", "miss")
	if res.Code != 1 || res.Stdout != "0 rows stored in index miss\n" {
		t.Fatalf("load into a missing index: exit %d, stdout %q", res.Code, res.Stdout)
	}
	want := "line 1: ERR no such index 'miss'\n" +
		"lines 2-20000: 19999 more rows with the same error\n" +
		"hint: the nodes run with -strict-indexes and index 'miss' was never created: load with --create (shardkv load miss --create) or send INDEX.CREATE miss first\n" +
		"shardkv: 20000 rows rejected (see the lines above)\n"
	if res.Stderr != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", res.Stderr, want)
	}

	res = c.RunCLI(t, in.Bytes(), "load", "miss", "--create")
	if res.Code != 0 || res.Stdout != fmt.Sprintf("%d rows stored in index miss\n", n) || res.Stderr != "" {
		t.Fatalf("load --create as the hint says: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
}

// TestCLIConnectError: every command that cannot reach the proxy says which
// address it tried, once, and exits 1; a proxy that wants a password says so.
func TestCLIConnectError(t *testing.T) {
	needBinaries(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]) // nothing listens there
	for _, args := range [][]string{{"load", "idx"}, {"cat", "idx"}, {"status"}, {"locate", "k"}} {
		res := runCLI(t, []byte("a|1\n"), append([]string{"-addr", addr}, args...)...)
		want := "shardkv: cannot connect to the proxy at " + addr + ": connect: connection refused"
		if res.Code != 1 || !strings.HasPrefix(res.Stderr, want) || strings.Count(res.Stderr, addr) != 1 || res.Stdout != "" {
			t.Errorf("shardkv %s against %s: exit %d, stdout %q, stderr %q; want exit 1 and %q...", strings.Join(args, " "), addr, res.Code, res.Stdout, res.Stderr, want)
		}
	}

	c := StartCluster(t, Options{ProxyPassword: "pw"})
	res := runCLI(t, []byte("a|1\n"), "-addr", c.ProxyAddr, "load", "idx")
	if want := "shardkv: the proxy at " + c.ProxyAddr + " requires a password: give it with -password"; res.Code != 1 || !strings.HasPrefix(res.Stderr, want) {
		t.Errorf("load without the proxy's password: exit %d, stderr %q; want %q...", res.Code, res.Stderr, want)
	}
}

// TestLoadProgressOnTerminal runs load with its stderr on a pseudo-terminal:
// it draws the rows and the rate there, clears the line at the end, and
// keeps stdout (a pipe) to the result line. With stderr a pipe, as in every
// other test, load prints nothing but the rejected rows.
func TestLoadProgressOnTerminal(t *testing.T) {
	c := StartCluster(t, Options{})
	master, slave := openPty(t)
	var in bytes.Buffer
	const n = 50000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "k%d|v%d\n", i, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("shardkv"), "-addr", c.ProxyAddr, "load", "prog", "--batch", "100")
	cmd.Stdin = &in
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, slave
	cmd.Env = append(os.Environ(), "TERM=xterm")
	terminal := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once every slave is closed
		terminal <- string(b)
	}()
	err := cmd.Run()
	slave.Close()
	out := <-terminal
	if err != nil {
		t.Fatalf("load on a terminal: %v\nterminal: %q", err, out)
	}
	if want := fmt.Sprintf("%d rows stored in index prog\n", n); stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	for _, want := range []string{"loading prog: ", " rows (", " rows/s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal shows no %q: %q", want, out)
		}
	}
	if last := out[strings.LastIndexAny(out, "\r\n")+1:]; strings.TrimSpace(last) != "" {
		t.Errorf("the progress line is not cleared at the end: %q", last)
	}
}

// openPty opens a pseudo-terminal pair; the test skips where there is none.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pty's slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}
