package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
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

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A node that is down affects only its keys: they get a TRYAGAIN that names
// the shard, fan-out commands say which part failed, the other node's keys
// keep working, and when the node is back the proxy serves it again by
// itself.
func TestNodeDownAndBack(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		up := c.keysOn(0, 5, fmt.Sprintf("down%d-", proto))
		down := c.keysOn(1, 5, fmt.Sprintf("down%d-", proto))
		for _, k := range append(append([]string{}, up...), down...) {
			if err := r.Set(ctx, k, k, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c.nodes[1].stop()
		prefix := fmt.Sprintf("TRYAGAIN shard s1 (%s) unavailable: ", c.nodes[1].addr)
		eventually(t, 5*time.Second, func() error {
			if err := r.Get(ctx, down[0]).Err(); err == nil || !strings.HasPrefix(err.Error(), prefix) {
				return fmt.Errorf("GET on the stopped node: %v", err)
			}
			return nil
		})
		for _, k := range up {
			if v, err := r.Get(ctx, k).Result(); err != nil || v != k {
				t.Fatalf("GET %s on the live node: %q %v", k, v, err)
			}
		}
		if err := r.Set(ctx, up[0], "still", 0).Err(); err != nil {
			t.Fatalf("SET on the live node: %v", err)
		}
		err := r.MGet(ctx, up[0], down[0]).Err()
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "(1 of 2 shards failed; 'mget' needs every shard)") {
			t.Fatalf("MGET across: %v", err)
		}
		err = r.DBSize(ctx).Err()
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "'dbsize' needs every shard") {
			t.Fatalf("DBSIZE: %v", err)
		}
		// A cross-shard DEL is a transaction: with a participant down
		// nothing is deleted anywhere.
		err = r.Del(ctx, up[1], down[1]).Err()
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), "(cross-shard transaction not executed)") {
			t.Fatalf("DEL across: %v", err)
		}
		if n := r.Exists(ctx, up[1]).Val(); n != 1 {
			t.Fatalf("a DEL that failed on one shard deleted on the other")
		}
		m, _ := r.Do(ctx, "SHARD.MAP").Slice()
		if fmt.Sprint(m[1].([]any)[4]) != "0" || fmt.Sprint(m[0].([]any)[4]) != "1" {
			t.Fatalf("SHARD.MAP reachability: %v", m)
		}
		info := r.Info(ctx, "shards").Val()
		if !strings.Contains(info, "# Shard_s1\r\nshard_addr:"+c.nodes[1].addr+"\r\nshard_reachable:0\r\nshard_error:") {
			t.Fatalf("INFO shards with s1 down:\n%s", info)
		}

		c.nodes[1].start(t)
		eventually(t, 10*time.Second, func() error {
			v, err := r.Get(ctx, down[2]).Result()
			if err != nil || v != down[2] {
				return fmt.Errorf("GET after the node came back: %q %v", v, err)
			}
			return nil
		})
		if n, err := r.Exists(ctx, append(up, down...)...).Result(); err != nil || n != 10 {
			t.Fatalf("EXISTS after recovery = %d %v", n, err)
		}
	})
}

// A node that stops answering (SIGSTOP) costs its keys the timeout and a
// TRYAGAIN, not the other node's keys; when it resumes it is used again.
func TestSlowNodeTimesOut(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, timeout: 300 * time.Millisecond})
	ctx := context.Background()
	r := c.client(2)
	fast := c.keysOn(0, 1, "slow-")[0]
	slow := c.keysOn(1, 1, "slow-")[0]
	r.Set(ctx, fast, "f", 0)
	r.Set(ctx, slow, "s", 0)
	proc := c.nodes[1].cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer proc.Signal(syscall.SIGCONT)
	eventually(t, 5*time.Second, func() error {
		// The signal is asynchronous: wait until the node is stopped.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", proc.Pid))
		if err != nil {
			return err
		}
		if f := strings.Fields(string(stat)); len(f) < 3 || f[2] != "T" {
			return fmt.Errorf("node not stopped yet: %q", f[2])
		}
		return nil
	})
	var wg sync.WaitGroup
	wg.Add(1)
	var slowErr error
	var slowTook time.Duration
	go func() {
		defer wg.Done()
		start := time.Now()
		slowErr = r.Get(ctx, slow).Err()
		slowTook = time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	for i := 0; i < 20; i++ {
		if v, err := r.Get(ctx, fast).Result(); err != nil || v != "f" {
			t.Fatalf("GET on the healthy node while the other hangs: %q %v", v, err)
		}
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("the healthy node's keys waited %v", d)
	}
	wg.Wait()
	if slowErr == nil || !strings.HasPrefix(slowErr.Error(), "TRYAGAIN shard s1") || !strings.Contains(slowErr.Error(), "no reply within 300ms") {
		t.Fatalf("GET on the hung node: %v", slowErr)
	}
	if slowTook > 2*time.Second {
		t.Fatalf("timeout took %v", slowTook)
	}
	proc.Signal(syscall.SIGCONT)
	eventually(t, 10*time.Second, func() error {
		v, err := r.Get(ctx, slow).Result()
		if err != nil || v != "s" {
			return fmt.Errorf("after SIGCONT: %q %v", v, err)
		}
		return nil
	})
}

// A map that breaks a rule is refused at start with the rule and the shard;
// so is a configuration that makes no sense.
func TestBootstrapRefusesBadMaps(t *testing.T) {
	shard := func(name string, start, end float64, port int) rangemap.Shard {
		return rangemap.Shard{Name: name, Start: start, End: end, Host: "127.0.0.1", Port: port}
	}
	cases := []struct {
		name   string
		shards []rangemap.Shard
		want   string
	}{
		{"gap", []rangemap.Shard{shard("a", 0, 0.4, 1), shard("b", 0.5, 1, 2)}, `gap: [0.4,0.5) between shard "a" and shard "b"`},
		{"overlap", []rangemap.Shard{shard("a", 0, 0.6, 1), shard("b", 0.5, 1, 2)}, `overlap: shard "b" starts at 0.5 inside shard "a"`},
		{"duplicate name", []rangemap.Shard{shard("a", 0, 0.5, 1), shard("a", 0.5, 1, 2)}, `duplicate name: shard "a"`},
		{"end before start", []rangemap.Shard{shard("a", 0, 0.5, 1), shard("b", 0.5, 0.5, 2)}, `end <= start: shard "b"`},
		{"short of 1.0", []rangemap.Shard{shard("a", 0, 0.5, 1), shard("b", 0.5, 0.9, 2)}, `does not reach 1.0: last shard "b" ends at 0.9`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Map = &rangemap.Map{Shards: tc.shards}
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("map given: %v, want %q", err, tc.want)
			}
			// The same map from a file.
			data, _ := jsonMap(tc.shards)
			path := filepath.Join(t.TempDir(), "map.json")
			os.WriteFile(path, data, 0o644)
			cfg.Map, cfg.MapFile = nil, path
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("map file: %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("bad JSON", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "map.json")
		os.WriteFile(path, []byte(`{"shards": [`), 0o644)
		cfg := DefaultConfig()
		cfg.MapFile = path
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "bad JSON") {
			t.Fatalf("bad JSON: %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.MapFile = filepath.Join(t.TempDir(), "none.json")
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "none.json") {
			t.Fatalf("missing file: %v", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Map = rangemap.Default()
		cfg.MapFile = "x.json"
		cfg.Addr = "nonsense"
		cfg.Timeout = 0
		cfg.ConnsPerNode = 0
		err := cfg.Validate()
		for _, want := range []string{"both a map and a map file", `addr "nonsense"`, "timeout 0s must be positive", "conns per node 0"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Validate: %v, want %q", err, want)
			}
		}
		if err := DefaultConfig().Validate(); err != nil {
			t.Fatalf("DefaultConfig is invalid: %v", err)
		}
	})
}

func jsonMap(shards []rangemap.Shard) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`{"shards": [`)
	for i, s := range shards {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name": %q, "start": %v, "end": %v, "size": %d, "host": %q, "port": %d}`, s.Name, s.Start, s.End, s.Size, s.Host, s.Port)
	}
	b.WriteString("]}")
	return []byte(b.String()), nil
}

// A node that already holds another range refuses the proxy's assignment:
// its keys get TRYAGAIN with the node's refusal, SHARD.MAP shows it
// unreachable, and the other shard serves. A node that holds the same range
// with another size is given the map's size (FORCE).
func TestBootstrapNodeRefusesAssignment(t *testing.T) {
	ctx := context.Background()
	n0, n1 := newNode(t, "s0"), newNode(t, "s1")
	n0.start(t)
	n1.start(t)
	// n1 belongs to some other deployment; n0 had a size limit before.
	if err := n1.client(t).Do(ctx, "SHARD.ASSIGN", "elsewhere", "0", "0.5", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := n0.client(t).Do(ctx, "SHARD.ASSIGN", "s0", "0", "0.5", "1000").Err(); err != nil {
		t.Fatal(err)
	}
	m := evenMap([]*node{n0, n1})
	cfg := DefaultConfig()
	cfg.Map = m
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	r := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	defer r.Close()
	c := &cluster{m: m}
	k0, k1 := c.keysOn(0, 1, "refuse-")[0], c.keysOn(1, 1, "refuse-")[0]
	eventually(t, 5*time.Second, func() error { return r.Set(ctx, k0, "v", 0).Err() })
	err = r.Get(ctx, k1).Err()
	want := fmt.Sprintf("TRYAGAIN shard s1 (%s) unavailable: node refused SHARD.ASSIGN s1 0.5 1 0: ERR shard node already assigned elsewhere [0,0.5)", n1.addr)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("GET on the refusing node: %v\nwant prefix %s", err, want)
	}
	mp, _ := r.Do(ctx, "SHARD.MAP").Slice()
	if fmt.Sprint(mp[1].([]any)[4]) != "0" {
		t.Fatalf("SHARD.MAP: %v", mp)
	}
	if info := n0.client(t).Info(ctx, "shard").Val(); !strings.Contains(info, "shard_size_limit:0\r\n") {
		t.Fatalf("the size-only difference was not forced:\n%s", info)
	}
}

// Reload applies size and address changes without dropping clients, and
// refuses a map that would move a range.
func TestReload(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, mapFile: true})
	ctx := context.Background()
	raw := dialRaw(t, c.addr) // stays connected through every reload
	k1 := c.keysOn(1, 1, "reload-")[0]
	if got := raw.do("SET", k1, "v"); got != "+OK\r\n" {
		t.Fatal(got)
	}

	// Size change: pushed with FORCE.
	m := *c.m
	m.Shards = append([]rangemap.Shard(nil), c.m.Shards...)
	m.Shards[1].Size = 1 << 20
	c.writeMap(&m)
	if got := raw.do("SHARD.RELOAD"); got != "+OK\r\n" {
		t.Fatalf("SHARD.RELOAD (size): %q", got)
	}
	if info := c.nodes[1].client(t).Info(ctx, "shard").Val(); !strings.Contains(info, "shard_size_limit:1048576\r\n") {
		t.Fatalf("size not applied:\n%s", info)
	}

	// Range move: refused, the map stays.
	moved := m
	moved.Shards = append([]rangemap.Shard(nil), m.Shards...)
	moved.Shards[0].End, moved.Shards[1].Start = 0.4, 0.4
	c.writeMap(&moved)
	got := raw.do("SHARD.RELOAD")
	if !strings.HasPrefix(got, `-ERR range map reload refused: shard "s0" would move from [0,0.5) to [0,0.4); moving ranges is not supported yet`) {
		t.Fatalf("SHARD.RELOAD (move): %q", got)
	}
	if err := c.srv.Reload(); err == nil {
		t.Fatal("Reload accepted a range move")
	}
	if got := raw.do("GET", k1); got != "$1\r\nv\r\n" {
		t.Fatalf("GET after a refused reload: %q", got)
	}

	// Address change: s1 moves to another port with its data.
	c.nodes[1].stop()
	c.nodes[1].addr = freeAddr(t)
	c.nodes[1].start(t)
	_, port, _ := net.SplitHostPort(c.nodes[1].addr)
	m.Shards[1].Port, _ = strconv.Atoi(port)
	c.writeMap(&m)
	if got := raw.do("SHARD.RELOAD"); got != "+OK\r\n" {
		t.Fatalf("SHARD.RELOAD (address): %q", got)
	}
	eventually(t, 5*time.Second, func() error {
		if got := raw.do("GET", k1); got != "$1\r\nv\r\n" {
			return fmt.Errorf("GET after the address change: %q", got)
		}
		return nil
	})
	if got := raw.do("SHARD.LOCATE", k1); !strings.Contains(got, c.nodes[1].addr) {
		t.Fatalf("SHARD.LOCATE after the address change: %q", got)
	}
}

// FLUSHALL, FLUSHDB and INDEX.DROP never half-apply: with one node down, or
// stopped (SIGSTOP) past the timeout, they reply TRYAGAIN naming it and the
// other node keeps every key.
func TestDestructiveFanoutNeedsEveryShard(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, timeout: 300 * time.Millisecond})
	ctx := context.Background()
	r := c.client(2)
	keep := c.keysOn(0, 3, "idx:keep-")
	for _, k := range keep {
		if err := r.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(how string) {
		t.Helper()
		prefix := fmt.Sprintf("TRYAGAIN shard s1 (%s) unavailable: ", c.nodes[1].addr)
		for _, cmd := range [][]any{{"FLUSHALL"}, {"FLUSHDB"}, {"INDEX.DROP", "idx"}} {
			err := r.Do(ctx, cmd...).Err()
			if err == nil || !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("%v with s1 %s: %v", cmd, how, err)
			}
		}
		for _, k := range keep {
			if v, err := r.Get(ctx, k).Result(); err != nil || v != "v" {
				t.Fatalf("%s after the refused flushes with s1 %s: %q %v", k, how, v, err)
			}
		}
	}
	proc := c.nodes[1].cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, proc.Pid) // the signal is asynchronous
	check("stopped")
	proc.Signal(syscall.SIGCONT)
	c.nodes[1].stop()
	check("down")
	c.nodes[1].start(t)
	eventually(t, 10*time.Second, func() error { return r.FlushAll(ctx).Err() })
	if n, err := r.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FLUSHALL with every shard up = %d %v", n, err)
	}
}

// waitStopped waits until process pid is in the stopped state.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		if f := strings.Fields(string(stat)); len(f) < 3 || f[2] != "T" {
			return fmt.Errorf("process %d not stopped yet", pid)
		}
		return nil
	})
}

// TRYAGAIN only when nothing happened: go-redis retries TRYAGAIN by itself,
// so an INCR sent to a node that then stalls past the timeout must get an
// error it does not retry (UNCERTAIN), or the counter could be incremented
// twice; a read that timed out, and a write to a node that is down (never
// sent), still get TRYAGAIN.
func TestTryAgainOnlyWhenNothingHappened(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, timeout: 300 * time.Millisecond})
	ctx := context.Background()
	r := c.client(2)
	key := c.keysOn(1, 1, "ctr-")[0]
	proc := c.nodes[1].cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, proc.Pid)
	err := r.Incr(ctx, key).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "UNCERTAIN shard s1") || !strings.Contains(err.Error(), "may or may not have been applied") {
		t.Fatalf("INCR on a stalled node: %v", err)
	}
	if err := r.Get(ctx, key).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN shard s1") {
		t.Fatalf("GET on a stalled node: %v", err)
	}
	proc.Signal(syscall.SIGCONT)
	var n int64
	eventually(t, 10*time.Second, func() error {
		var err error
		n, err = r.IncrBy(ctx, key, 0).Result()
		return err
	})
	if n > 1 {
		t.Fatalf("one INCR through go-redis counted %d times", n)
	}
	c.nodes[1].stop()
	eventually(t, 5*time.Second, func() error {
		err := r.Incr(ctx, key).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN shard s1") {
			return fmt.Errorf("INCR on a node that is down: %v", err)
		}
		return nil
	})
}
