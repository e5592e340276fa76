package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// startReplica runs a shard node as a replica of primary, killed when the
// test ends.
func startReplica(t *testing.T, c *Cluster, name, primary string, extra ...string) *Proc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	args := []string{"-addr", addr, "-dir", filepath.Join(c.Dir, "data", name), "-log-level", "info",
		"-replicaof", primary}
	if pw := c.opts.NodePassword; pw != "" {
		args = append(args, "-requirepass", pw)
	}
	args = append(args, extra...)
	p := &Proc{Name: name, Bin: bin("shardkv-node"), Args: args, Addr: addr, Password: c.opts.NodePassword,
		LogPath: filepath.Join(c.Dir, "logs", name+".log")}
	t.Cleanup(func() {
		p.Kill()
		p.checkLog(t)
	})
	p.Start(t)
	p.WaitReady(t)
	return p
}

// nodeInfo reads a node's INFO section as fields.
func nodeInfo(t testing.TB, rdb *redis.Client, section string) map[string]string {
	t.Helper()
	s, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// waitCaughtUp waits until the replica took the primary's offset.
func waitCaughtUp(t testing.TB, primary, replica *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, r := nodeInfo(t, primary, "replication"), nodeInfo(t, replica, "replication")
		if r["master_link_status"] == "up" && r["slave_repl_offset"] == p["master_repl_offset"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not catch up: primary %v, replica %v", p, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeEveryType writes group i of keys of every type through the proxy,
// with TTLs and deletes; it returns the first error.
func writeEveryType(ctx context.Context, rdb *redis.Client, prefix string, i int) error {
	k := fmt.Sprintf("%s:%d", prefix, i)
	p := rdb.Pipeline()
	p.Set(ctx, k+":s", i, 0)
	p.HSet(ctx, k+":h", "a", i, "b", "x")
	p.SAdd(ctx, k+":set", "m", i)
	p.ZAdd(ctx, k+":z", redis.Z{Score: float64(i), Member: "a"})
	p.RPush(ctx, k+":l", "x", i)
	if i%3 == 0 {
		p.PExpire(ctx, k+":s", time.Hour)
		p.Expire(ctx, k+":h", 2*time.Hour)
	}
	if i%5 == 0 {
		p.Del(ctx, k+":set")
		p.LPop(ctx, k+":l")
	}
	_, err := p.Exec(ctx)
	return err
}

// TestReplicaThroughBinaries: a replica of a running node copies it (every
// type, TTLs, deletes), refuses writes, catches up after a SIGKILL and a
// restart while writes go on, and WAIT counts it.
func TestReplicaThroughBinaries(t *testing.T) {
	ctx := context.Background()
	c := StartCluster(t, Options{Shards: 1, NodePassword: "nodepw"})
	rdb := c.Client()
	for i := 0; i < 300; i++ {
		if err := writeEveryType(ctx, rdb, "before", i); err != nil {
			t.Fatal(err)
		}
	}
	r := startReplica(t, c, "replica", c.Nodes[0].Addr)
	primary := c.NodeClient(0, "nodepw")
	replica := c.ClientWith(func(o *redis.Options) {
		o.Addr, o.Password = r.Addr, "nodepw"
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	})
	waitCaughtUp(t, primary, replica)
	if err := replica.Set(ctx, "x", "1", 0).Err(); err == nil || err.Error() != "READONLY You can't write against a read only replica." {
		t.Fatalf("SET on the replica: %v", err)
	}

	// Writes go on while the replica is killed and restarted.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var writeErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if err := writeEveryType(ctx, rdb, "during", i); err != nil {
				writeErr.Store(err)
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // some writes before the kill; not a timing assertion
	r.Signal(t, syscall.SIGKILL)
	r.WaitExit(t)
	r.Start(t)
	r.WaitReady(t)
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatalf("writes through the proxy: %v", err)
	}
	// The last write of the connection is on the replica once WAIT says so.
	pc := primary.Conn()
	defer pc.Close()
	pc.Set(ctx, "last", "1", 0)
	if n, err := pc.Do(ctx, "WAIT", 1, 0).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 0: %d, %v", n, err)
	}
	if n, err := pc.Do(ctx, "WAIT", 2, 100).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 2 100 with one replica: %d, %v", n, err)
	}
	waitCaughtUp(t, primary, replica)
	all := func(string) bool { return true }
	want, got := redistest.Dump(t, primary, all), redistest.Dump(t, replica, all)
	if len(want) < 1000 {
		t.Fatalf("only %d keys written", len(want))
	}
	if !reflect.DeepEqual(got, want) {
		n := 0
		for k, v := range want {
			if got[k] != v && n < 10 {
				t.Errorf("%s: replica %q, primary %q", k, got[k], v)
				n++
			}
		}
		t.Fatalf("the replica differs from the primary (%d keys vs %d)", len(got), len(want))
	}
	if role, err := replica.Do(ctx, "ROLE").Slice(); err != nil || role[0] != "slave" || role[3] != "connected" {
		t.Fatalf("ROLE on the replica: %v, %v", role, err)
	}
}

// TestReplicaKilledDuringFullSync: a replica SIGKILLed in the middle of its
// full sync holds a partial copy; restarted, it syncs again and ends equal
// to the primary.
func TestReplicaKilledDuringFullSync(t *testing.T) {
	ctx := context.Background()
	c := StartCluster(t, Options{Shards: 1, NodePassword: "nodepw"})
	primary := c.NodeClient(0, "nodepw")
	val := strings.Repeat("v", 1024)
	const n = 40000
	for i := 0; i < n; i += 1000 {
		p := primary.Pipeline()
		for j := i; j < i+1000; j++ {
			p.Set(ctx, fmt.Sprintf("k%d", j), fmt.Sprintf("%d-%s", j, val), 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := startReplica(t, c, "replica", c.Nodes[0].Addr)
	replica := c.ClientWith(func(o *redis.Options) {
		o.Addr, o.Password = r.Addr, "nodepw"
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := nodeInfo(t, replica, "replication")
		if st["master_sync_in_progress"] == "1" && replica.DBSize(ctx).Val() > 0 {
			break
		}
		if st["master_link_status"] == "up" {
			t.Fatal("the full sync ended before the test could kill the replica in it")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no full sync: %v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.Signal(t, syscall.SIGKILL)
	r.WaitExit(t)
	r.Start(t)
	r.WaitReady(t)
	waitCaughtUp(t, primary, replica)
	if got := replica.DBSize(ctx).Val(); got != n {
		t.Fatalf("the replica holds %d keys after its second full sync, want %d", got, n)
	}
	for i := 0; i < n; i += 1000 {
		keys := make([]string, 0, 1000)
		for j := i; j < i+1000; j++ {
			keys = append(keys, fmt.Sprintf("k%d", j))
		}
		vs, err := replica.MGet(ctx, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range vs {
			if want := fmt.Sprintf("%d-%s", i+j, val); v != want {
				t.Fatalf("k%d on the replica: %.20v", i+j, v)
			}
		}
	}
}
