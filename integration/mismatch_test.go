package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A node whose assignment is not the proxy's map (forced with the node
// password) refuses the proxy's keys with WRONGSHARD. Through the proxy,
// clients get TRYAGAIN, never WRONGSHARD; the proxy logs the mismatch once
// and SHARD.MAP and INFO show the shard unhealthy with the reason. A
// restart does not repair it (the node keeps its assignment), forcing the
// map's assignment on the node does: the shard is healthy again and serves
// the data it had.
func TestMapMismatchRepair(t *testing.T) {
	const pw = "node-secret"
	c := StartCluster(t, Options{Shards: 2, NodePassword: pw})
	ctx := context.Background()
	rdb := c.Client()
	k0 := c.KeysOn(0, "mm", 2)
	k1 := c.KeysOn(1, "mm", 1)[0]
	must(t, rdb.Set(ctx, k0[0], "before", 0).Err())
	must(t, rdb.Set(ctx, k1, "other", 0).Err())

	s0 := c.Map.Shards[0]
	node := c.NodeClient(0, pw)
	must(t, node.Do(ctx, "SHARD.ASSIGN", s0.Name, "0.5", "1", "0", "FORCE").Err())

	wantTryAgain := fmt.Sprintf("TRYAGAIN shard %s (%s) ", s0.Name, s0.Addr())
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), wantTryAgain) || strings.HasPrefix(err.Error(), "WRONGSHARD") {
			t.Fatalf("%s: %v; want %s...", what, err, wantTryAgain)
		}
	}
	for i := 0; i < 20; i++ {
		check("GET", rdb.Get(ctx, k0[0]).Err())
		check("SET", rdb.Set(ctx, k0[1], "x", 0).Err())
	}
	err := rdb.Get(ctx, k0[0]).Err()
	if !strings.Contains(err.Error(), "map mismatch, nothing was executed: the node answered WRONGSHARD ") {
		t.Fatalf("GET: %v; want the map mismatch with the node's WRONGSHARD", err)
	}
	check("MGET across shards", rdb.MGet(ctx, k0[0], k1).Err())
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, k0[1])
		return nil
	})
	check("MULTI/EXEC", err)
	if v, err := rdb.Get(ctx, k1).Result(); err != nil || v != "other" {
		t.Fatalf("the other shard: %q %v", v, err)
	}

	mapEntry := func() []any {
		t.Helper()
		m, err := rdb.Do(ctx, "SHARD.MAP").Slice()
		if err != nil || len(m) != 2 {
			t.Fatalf("SHARD.MAP: %v %v", m, err)
		}
		return m[0].([]any)
	}
	if e := mapEntry(); e[4] != int64(0) || !strings.HasPrefix(fmt.Sprint(e[5]), "map mismatch: ") {
		t.Fatalf("SHARD.MAP entry of the mismatched shard: %v", e)
	}
	if res := c.RunCLI(t, nil, "status"); res.Code != 1 || !strings.Contains(res.Stdout, " mismatch ") {
		t.Fatalf("shardkv status: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	info := rdb.Info(ctx, "shard_"+s0.Name).Val()
	if !strings.Contains(info, "shard_health:map_mismatch\r\n") || !strings.Contains(info, "shard_error:") {
		t.Fatalf("INFO lacks the mismatch:\n%s", info)
	}
	if info := rdb.Info(ctx, "server").Val(); !strings.Contains(info, "shards_up:1\r\n") {
		t.Fatalf("INFO server counts the mismatched shard as up:\n%s", info)
	}

	// A restart keeps the forced assignment: the node refuses the proxy's
	// on the new connections, and the shard stays unhealthy.
	c.Nodes[0].StopClean(t, syscall.SIGTERM)
	c.Nodes[0].Start(t)
	c.Nodes[0].WaitReady(t)
	eventually(t, func() error {
		err := rdb.Get(ctx, k0[0]).Err()
		if err == nil || !strings.Contains(err.Error(), "node refused SHARD.ASSIGN") {
			return fmt.Errorf("GET after the restart: %v", err)
		}
		return nil
	})
	check("GET after the restart", rdb.Get(ctx, k0[0]).Err())
	if e := mapEntry(); e[4] != int64(0) || !strings.Contains(fmt.Sprint(e[5]), "already assigned s0 [0.5,1)") {
		t.Fatalf("SHARD.MAP after the restart: %v", e)
	}

	// The repair: the map's assignment, forced on the node.
	node = c.NodeClient(0, pw)
	must(t, node.Do(ctx, "SHARD.ASSIGN", s0.Name, "0", "0.5", "0", "FORCE").Err())
	eventually(t, func() error {
		if e := mapEntry(); e[4] != int64(1) || e[5] != "ok" {
			return fmt.Errorf("SHARD.MAP after the repair: %v", e)
		}
		return nil
	})
	eventually(t, func() error {
		v, err := rdb.Get(ctx, k0[0]).Result()
		if err != nil || v != "before" {
			return fmt.Errorf("GET after the repair: %q %v", v, err)
		}
		return nil
	})
	must(t, rdb.Set(ctx, k0[1], "after", 0).Err())
	if info := rdb.Info(ctx, "shard_"+s0.Name).Val(); !strings.Contains(info, "shard_health:ok\r\n") {
		t.Fatalf("INFO after the repair:\n%s", info)
	}

	log, err := os.ReadFile(c.Proxy.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "assignment differs from the map"); n != 1 {
		t.Fatalf("the proxy logged the mismatch %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(string(log), "assignment matches the map again") {
		t.Fatalf("the proxy did not log the repair:\n%s", log)
	}
}

// eventually retries f until it returns nil, for up to readyTimeout.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two nodes restarted on each other's data directories hold each other's
// assignments: both shards are mismatched (their keys get TRYAGAIN, never
// the other shard's data), and restarting each on its own directory
// repairs them with their data.
func TestMapMismatchSwappedDataDirs(t *testing.T) {
	const pw = "node-secret"
	c := StartCluster(t, Options{Shards: 2, NodePassword: pw})
	ctx := context.Background()
	rdb := c.Client()
	keys := []string{c.KeysOn(0, "sw", 1)[0], c.KeysOn(1, "sw", 1)[0]}
	for i, k := range keys {
		must(t, rdb.Set(ctx, k, fmt.Sprint("value-", i), 0).Err())
	}
	dirArg := func(p *Proc) *string {
		for i, a := range p.Args {
			if a == "-dir" {
				return &p.Args[i+1]
			}
		}
		t.Fatalf("%s has no -dir", p.Name)
		return nil
	}
	d0, d1 := dirArg(c.Nodes[0]), dirArg(c.Nodes[1])
	swap := func() {
		for _, n := range c.Nodes {
			n.StopClean(t, syscall.SIGTERM)
		}
		*d0, *d1 = *d1, *d0
		for _, n := range c.Nodes {
			n.Start(t)
			n.WaitReady(t)
		}
	}
	swap()
	for i, k := range keys {
		s := c.Map.Shards[i]
		eventually(t, func() error {
			err := rdb.Get(ctx, k).Err()
			if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("TRYAGAIN shard %s (%s) ", s.Name, s.Addr())) {
				return fmt.Errorf("GET %s on the swapped node: %v", k, err)
			}
			return nil
		})
	}
	eventually(t, func() error {
		m, err := rdb.Do(ctx, "SHARD.MAP").Slice()
		if err != nil {
			return err
		}
		for _, e := range m {
			if f := e.([]any); f[4] != int64(0) || !strings.HasPrefix(fmt.Sprint(f[5]), "map mismatch: ") {
				return fmt.Errorf("SHARD.MAP entry %v", f)
			}
		}
		return nil
	})
	swap() // each node back on its own directory
	c.WaitServing()
	for i, k := range keys {
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v != fmt.Sprint("value-", i) {
			t.Fatalf("GET %s after the repair: %q %v", k, v, err)
		}
	}
	eventually(t, func() error {
		m, err := rdb.Do(ctx, "SHARD.MAP").Slice()
		if err != nil {
			return err
		}
		for _, e := range m {
			if f := e.([]any); f[4] != int64(1) || f[5] != "ok" {
				return fmt.Errorf("SHARD.MAP after the repair: %v", f)
			}
		}
		return nil
	})
}
