package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// clusterCmd runs `bin/shardkv cluster` (what `make run` runs) on free
// ports, with a generated map and its data in a temporary directory. Each
// Start is a new run on the same data; a run still going when the test ends
// is stopped, and killed if it does not stop.
type clusterCmd struct {
	t         *testing.T
	Map       *rangemap.Map
	MapFile   string
	ProxyAddr string
	Data      string // --data
	LogPath   string // stderr of every run, appended
	ports     []int

	cmd    *exec.Cmd
	out    *syncBuffer // stdout of the current run
	exited chan error  // receives the current run's exit once
	done   bool        // the current run's exit was received
}

func newClusterCmd(t *testing.T, shards int) *clusterCmd {
	t.Helper()
	needBinaries(t)
	dir := t.TempDir()
	cc := &clusterCmd{t: t, ports: freePorts(t, shards+1), Data: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "cluster.log"), MapFile: filepath.Join(dir, "map.json"), done: true}
	cc.Map = &rangemap.Map{}
	for i := 0; i < shards; i++ {
		cc.Map.Shards = append(cc.Map.Shards, rangemap.Shard{Name: fmt.Sprintf("s%d", i),
			Start: float64(i) / float64(shards), End: float64(i+1) / float64(shards), Host: "127.0.0.1", Port: cc.ports[i]})
	}
	cc.Map.Shards[shards-1].End = 1
	writeMap(t, cc.MapFile, cc.Map)
	cc.ProxyAddr = fmt.Sprintf("127.0.0.1:%d", cc.ports[shards])
	t.Cleanup(func() {
		if !cc.done {
			cc.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-cc.exited:
			case <-time.After(2 * exitTimeout):
				cc.cmd.Process.Kill()
				<-cc.exited
			}
			t.Log(logTail(cc.LogPath, 80))
		}
		// The children's lines are in the same log.
		(&Proc{Name: "shardkv cluster", LogPath: cc.LogPath}).checkLog(t)
	})
	return cc
}

// Start runs the cluster and waits until it says it is running.
func (cc *clusterCmd) Start(extra ...string) {
	t := cc.t
	t.Helper()
	logf, err := os.OpenFile(cc.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cc.out = &syncBuffer{}
	args := append([]string{"cluster", "--data", cc.Data, "--map", cc.MapFile, "--proxy-addr", cc.ProxyAddr,
		"--log-level", "info"}, extra...)
	cc.cmd = exec.Command(bin("shardkv"), args...)
	cc.cmd.Stdout, cc.cmd.Stderr = cc.out, logf
	cc.cmd.SysProcAttr = procAttr()
	if err := cc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cc.exited, cc.done = make(chan error, 1), false
	go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(cc.cmd, cc.exited)

	deadline := time.Now().Add(2 * readyTimeout)
	for !strings.Contains(cc.out.String(), "shardkv is running") {
		select {
		case err := <-cc.exited:
			cc.done = true
			t.Fatalf("shardkv cluster exited while starting: %v\nstdout:\n%s\n%s", err, cc.out.String(), logTail(cc.LogPath, 60))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("shardkv cluster did not report running after %v; stdout:\n%s", 2*readyTimeout, cc.out.String())
		}
	}
}

// Stop sends sig and returns the run's exit; it checks that nothing
// listens on the cluster's ports afterwards: every child stopped with it.
func (cc *clusterCmd) Stop(sig syscall.Signal) error {
	t := cc.t
	t.Helper()
	if err := cc.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-cc.exited:
		cc.done = true
	case <-time.After(2 * exitTimeout):
		t.Fatalf("shardkv cluster did not exit within %v after %v", 2*exitTimeout, sig)
	}
	for _, p := range cc.ports {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			conn.Close()
			t.Errorf("port %d still accepts connections after the cluster stopped", p)
		}
	}
	return err
}

// Running reports whether the current run has not exited.
func (cc *clusterCmd) Running() bool {
	if cc.done {
		return false
	}
	select {
	case err := <-cc.exited:
		cc.exited <- err // keep it for Stop and the cleanup
		return false
	default:
		return true
	}
}

// Log is the cluster's stderr so far: its own log and its children's lines.
func (cc *clusterCmd) Log() string {
	data, _ := os.ReadFile(cc.LogPath)
	return string(data)
}

// ChildPid is the pid of the cluster's child process that listens on addr
// (its -addr), found in /proc; 0 when there is none.
func (cc *clusterCmd) ChildPid(addr string) int {
	cc.t.Helper()
	for _, pid := range childPids(cc.t, cc.cmd.Process.Pid) {
		args := cmdline(pid)
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-addr" && args[i+1] == addr {
				return pid
			}
		}
	}
	return 0
}

// childPids lists the live (not zombie) children of a process.
func childPids(t testing.TB, parent int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == parent {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// waitGone waits until process pid has exited (and been reaped, or is a
// zombie), so nothing it held still answers.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(exitTimeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d still runs %v after SIGKILL", pid, exitTimeout)
}

// shardOf is the index of the shard of m that owns key.
func shardOf(m *rangemap.Map, key string) int { return m.Find(m.Position([]byte(key))) }

// keyOn returns a key "prefix-N" that shard i of m owns.
func keyOn(m *rangemap.Map, i int, prefix string) string {
	for j := 0; ; j++ {
		if k := prefix + "-" + strconv.Itoa(j); shardOf(m, k) == i {
			return k
		}
	}
}

// TestClusterCommand is `make run` on free ports: `shardkv cluster` starts
// three nodes and a proxy from a map, prints how to connect, serves SET and
// GET (with redis-cli when it is installed), protects the nodes with a
// secret kept in the data directory, stops everything on SIGINT, and finds
// its data and the same secret again on the next start.
func TestClusterCommand(t *testing.T) {
	cc := newClusterCmd(t, 3)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1})
	defer rdb.Close()

	var secret string
	checkSecret := func() {
		t.Helper()
		path := filepath.Join(cc.Data, "node-password")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("the nodes' password is not in the data directory: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(path)
		s := strings.TrimSpace(string(data))
		if b, err := hex.DecodeString(s); err != nil || len(b) < 32 {
			t.Errorf("the nodes' password %q is not 32 random bytes in hex", s)
		}
		if secret != "" && s != secret {
			t.Errorf("the nodes' password changed between runs")
		}
		secret = s
		for _, f := range []string{"node-auth.conf", "proxy-auth.conf"} {
			if fi, err := os.Stat(filepath.Join(cc.Data, f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, mode %v; want mode 0600", f, err, fi.Mode().Perm())
			}
		}
		// Whoever reaches a node's port without the secret can do nothing,
		// least of all change its range.
		for _, s := range cc.Map.Shards {
			anon := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			for _, args := range [][]any{{"PING"}, {"SHARD.ASSIGN", "s0", "0.5", "1", "0", "FORCE"}, {"CONFIG", "SET", "maxmemory", "1"}} {
				if err := anon.Do(ctx, args...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
					t.Errorf("%v to node %s without the secret: %v; want NOAUTH", args, s.Name, err)
				}
			}
			anon.Close()
			authed := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: secret, MaxRetries: -1})
			if err := authed.Ping(ctx).Err(); err != nil {
				t.Errorf("PING to node %s with the secret: %v", s.Name, err)
			}
			authed.Close()
		}
		// The secret reaches the processes in files, never on a command
		// line, which every user of the machine can read.
		for _, addr := range append([]string{cc.ProxyAddr}, nodeAddrs(cc.Map)...) {
			pid := cc.ChildPid(addr)
			if pid == 0 {
				t.Fatalf("no child of the cluster listens on %s", addr)
			}
			if strings.Contains(strings.Join(cmdline(pid), " "), secret) {
				t.Errorf("the secret is on the command line of %s: %q", addr, cmdline(pid))
			}
		}
	}

	cc.Start()
	if want := fmt.Sprintf("redis-cli -p %d SET idx:a 1", cc.ports[3]); !strings.Contains(cc.out.String(), want) {
		t.Errorf("cluster output lacks %q:\n%s", want, cc.out.String())
	}
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		for _, step := range []struct{ args, want string }{
			{"SET idx:a 1", "OK"},
			{"GET idx:a", "1"},
		} {
			args := append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(cc.ports[3])}, strings.Fields(step.args)...)
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
	checkSecret()
	if err := cc.Stop(syscall.SIGINT); err != nil {
		t.Fatalf("shardkv cluster exited with %v after SIGINT\n%s", err, logTail(cc.LogPath, 60))
	}
	for _, s := range cc.Map.Shards {
		if _, err := os.Stat(filepath.Join(cc.Data, s.Name)); err != nil {
			t.Errorf("data of shard %s not under --data: %v", s.Name, err)
		}
	}

	// The data and the secret are kept for the next run.
	cc.Start()
	if got, err := rdb.Get(ctx, "idx:a").Result(); err != nil || got != "1" {
		t.Fatalf("after a restart GET idx:a = %q, %v; want 1", got, err)
	}
	for i := 0; i < 100; i++ {
		if got, err := rdb.Get(ctx, fmt.Sprintf("idx:k%d", i)).Int(); err != nil || got != i {
			t.Fatalf("after a restart GET idx:k%d = %d, %v", i, got, err)
		}
	}
	checkSecret()
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("shardkv cluster exited with %v after SIGTERM\n%s", err, logTail(cc.LogPath, 60))
	}
}

func nodeAddrs(m *rangemap.Map) []string {
	var out []string
	for _, s := range m.Shards {
		out = append(out, s.Addr())
	}
	return out
}

// TestClusterSurvivesNodeKills is issue 12's demand on `make run`: SIGKILL
// one node every two seconds, twenty times (the three nodes in turn), under
// write load on every shard. The supervisor restarts each killed node; the
// shards of the other nodes answer every write meanwhile, the killed shard
// answers again within seconds, the proxy is never restarted, and every
// acknowledged write is there at the end.
func TestClusterSurvivesNodeKills(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	const (
		rounds     = 20
		every      = 2 * time.Second
		backWithin = 15 * time.Second // "within seconds"; generous for -race on a shared machine
	)
	cc := newClusterCmd(t, 3)
	cc.Start()
	ctx := context.Background()
	proxyPid := cc.ChildPid(cc.ProxyAddr)
	shards := len(cc.Map.Shards)

	// A failed request: which shard, when it was sent, when it failed.
	type failure struct {
		shard      int
		start, end time.Time
		err        error
	}
	var (
		mu       sync.Mutex
		failures []failure
		acked    = map[string]string{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	// One writer per shard, each writing new keys of its shard only, so a
	// write is acknowledged or not, never overwritten by another.
	for i := 0; i < shards; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
			defer rdb.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keyOn(cc.Map, i, fmt.Sprintf("kill:w%d-%d", i, n))
				val := fmt.Sprintf("v%d", n)
				start := time.Now()
				err := rdb.Set(ctx, key, val, 0).Err()
				if err == nil {
					// and reads keep answering too
					var got string
					if got, err = rdb.Get(ctx, key).Result(); err == nil && got != val {
						err = fmt.Errorf("GET %s right after SET = %q, want %q", key, got, val)
					}
				}
				mu.Lock()
				if err == nil {
					acked[key] = val
				} else {
					failures = append(failures, failure{shard: i, start: start, end: time.Now(), err: err})
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // leave the shared CPUs some air
			}
		}()
	}

	// [kill, back] of each round: the only times the victim's keys may fail.
	type window struct {
		shard      int
		kill, back time.Time
	}
	var windows []window
	var recoveries []time.Duration
	probe := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1, ReadTimeout: 10 * time.Second})
	defer probe.Close()
	killed := map[int]bool{}
	for r := 0; r < rounds; r++ {
		v := r % shards
		addr := cc.Map.Shards[v].Addr()
		pid := cc.ChildPid(addr)
		if pid == 0 {
			t.Fatalf("round %d: no node serves %s\n%s", r, addr, logTail(cc.LogPath, 40))
		}
		if killed[pid] {
			t.Fatalf("round %d: node %s still runs as pid %d, which was killed", r, cc.Map.Shards[v].Name, pid)
		}
		killAt := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed[pid] = true
		waitGone(t, pid)
		key := keyOn(cc.Map, v, "kill:probe")
		var err error
		for {
			if err = probe.Get(ctx, key).Err(); err == nil || err == redis.Nil {
				break
			}
			if time.Since(killAt) > backWithin {
				t.Fatalf("round %d: shard %s does not answer %v after its node was killed: %v\n%s",
					r, cc.Map.Shards[v].Name, backWithin, err, logTail(cc.LogPath, 40))
			}
			time.Sleep(20 * time.Millisecond)
		}
		back := time.Now()
		windows = append(windows, window{shard: v, kill: killAt, back: back})
		recoveries = append(recoveries, back.Sub(killAt))
		if !cc.Running() {
			t.Fatalf("round %d: shardkv cluster exited\n%s", r, logTail(cc.LogPath, 40))
		}
		time.Sleep(time.Until(killAt.Add(every)))
	}
	close(stop)
	wg.Wait()

	allowed := func(f failure) bool {
		for _, w := range windows {
			if w.shard == f.shard && !f.start.After(w.back) && !f.end.Before(w.kill) {
				return true
			}
		}
		return false
	}
	bad := 0
	for _, f := range failures {
		if !allowed(f) {
			if bad++; bad <= 10 {
				t.Errorf("shard %s failed outside its node's outage, at %v: %v", cc.Map.Shards[f.shard].Name, f.start.Format(time.StampMicro), f.err)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d such failures in all", bad)
	}

	// Every acknowledged write is there.
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		pipe := probe.Pipeline()
		cmds := make([]*redis.StringCmd, n)
		for i, k := range keys[:n] {
			cmds[i] = pipe.Get(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		for i, cmd := range cmds {
			if got, err := cmd.Result(); err != nil || got != acked[keys[i]] {
				t.Fatalf("acknowledged write lost: GET %s = %q, %v; want %q", keys[i], got, err, acked[keys[i]])
			}
		}
		keys = keys[n:]
	}
	if pid := cc.ChildPid(cc.ProxyAddr); pid != proxyPid {
		t.Errorf("the proxy was restarted (pid %d, then %d)", proxyPid, pid)
	}
	log := cc.Log()
	// A node killed less than a second after it came up counts as a failed
	// start; either way it is restarted.
	if n := strings.Count(log, "process exited on its own; restarting it") +
		strings.Count(log, "process failed to start; retrying"); n != rounds {
		t.Errorf("the cluster logged %d restarts, want %d", n, rounds)
	}
	if strings.Contains(log, "GIVING UP") {
		t.Errorf("the cluster gave up on a node that was killed, not broken")
	}
	slow := time.Duration(0)
	var sum time.Duration
	for _, d := range recoveries {
		slow = max(slow, d)
		sum += d
	}
	t.Logf("%d kills: shard back after %v on average, %v at most; %d writes acknowledged, %d failed on the killed shards during their outages",
		rounds, (sum / time.Duration(len(recoveries))).Round(time.Millisecond), slow.Round(time.Millisecond), len(acked), len(failures))
	if err := cc.Stop(syscall.SIGINT); err != nil {
		t.Fatalf("shardkv cluster exited with %v after SIGINT\n%s", err, logTail(cc.LogPath, 60))
	}
}

// TestClusterGivesUpOnNode: a node that cannot start any more (its data
// directory replaced by a file) is retried with backoff and then given up,
// loudly; the cluster keeps running and serving the other shards, and
// Ctrl-C still stops everything, with exit status 1 for the lost node.
func TestClusterGivesUpOnNode(t *testing.T) {
	cc := newClusterCmd(t, 3)
	cc.Start()
	ctx := context.Background()
	const victim = 1
	name := cc.Map.Shards[victim].Name
	dir := filepath.Join(cc.Data, name)
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := cc.ChildPid(cc.Map.Shards[victim].Addr())
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)

	rdb := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(cc.Log(), "GIVING UP on "+name) {
		// The other shards serve throughout.
		for i := range cc.Map.Shards {
			if i == victim {
				continue
			}
			if err := rdb.Set(ctx, keyOn(cc.Map, i, "gu:k"), "v", 0).Err(); err != nil {
				t.Fatalf("SET on shard %s while %s is retried: %v", cc.Map.Shards[i].Name, name, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not give up on %s within a minute\n%s", name, logTail(cc.LogPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(cc.Log(), "process failed to start; retrying: name="+name); n != 4 {
		t.Errorf("%d retries logged before giving up, want 4", n)
	}
	if !cc.Running() {
		t.Fatalf("the cluster exited after giving up on a node\n%s", logTail(cc.LogPath, 40))
	}
	tryAgain := fmt.Sprintf("TRYAGAIN shard %s (%s) unavailable: ", name, cc.Map.Shards[victim].Addr())
	if err := rdb.Get(ctx, keyOn(cc.Map, victim, "gu:k")).Err(); err == nil || !strings.HasPrefix(err.Error(), tryAgain) {
		t.Errorf("GET on the given-up shard: %v; want %q...", err, tryAgain)
	}
	for i := range cc.Map.Shards {
		if i != victim {
			if err := rdb.Set(ctx, keyOn(cc.Map, i, "gu:k"), "v", 0).Err(); err != nil {
				t.Errorf("SET on shard %s after %s was given up: %v", cc.Map.Shards[i].Name, name, err)
			}
		}
	}
	err := cc.Stop(syscall.SIGINT)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("shardkv cluster exited with %v after SIGINT with a node given up; want exit status 1", err)
	}
	if !strings.Contains(cc.Log(), name+" had been given up") {
		t.Errorf("the cluster's last words do not name the node it gave up on\n%s", logTail(cc.LogPath, 10))
	}
}

func logTail(path string, n int) string {
	p := &Proc{LogPath: path}
	return p.LogTail(n)
}
