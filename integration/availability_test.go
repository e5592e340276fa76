package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNodeStopStart stops one shard node: the other shards keep serving
// reads and writes, its keys get TRYAGAIN, status shows it down; started
// again, its keys come back through the same proxy process.
func TestNodeStopStart(t *testing.T) {
	c := StartCluster(t, Options{})
	rdb := c.Client()
	ctx := context.Background()
	const victim = 1

	want := map[string]string{}
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("av:k%d", i)
		want[k] = "v" + k
		must(t, rdb.Set(ctx, k, want[k], 0).Err())
	}
	perShard := make([]int, len(c.Map.Shards))
	for k := range want {
		perShard[c.ShardOf(k)]++
	}
	proxyPid := c.Proxy.Pid()

	c.Nodes[victim].StopClean(t, syscall.SIGTERM)

	tryAgain := c.TryAgainPrefix(victim)
	for k, v := range want {
		got, err := rdb.Get(ctx, k).Result()
		if c.ShardOf(k) == victim {
			if err == nil || !strings.HasPrefix(err.Error(), tryAgain) {
				t.Fatalf("GET %s on the stopped node = %q, %v; want an error starting %q", k, got, err, tryAgain)
			}
			continue
		}
		if err != nil || got != v {
			t.Fatalf("GET %s on a live shard while s%d is down = %q, %v; want %q", k, victim, got, err, v)
		}
	}
	for i := range c.Map.Shards {
		k := c.KeysOn(i, "av:new", 1)[0]
		err := rdb.Set(ctx, k, "new", 0).Err()
		if i == victim {
			if err == nil || !strings.HasPrefix(err.Error(), tryAgain) {
				t.Fatalf("SET %s on the stopped node: %v; want an error starting %q", k, err, tryAgain)
			}
			continue
		}
		if err != nil {
			t.Fatalf("SET %s on a live shard while s%d is down: %v", k, victim, err)
		}
		want[k] = "new"
		perShard[i]++
	}
	checkStatus(t, c, map[int]bool{victim: true}, nil)

	c.Nodes[victim].Start(t)
	c.Nodes[victim].WaitReady(t)
	// The proxy finds the node again by itself, within a few seconds.
	deadline := time.Now().Add(15 * time.Second)
	var k string
	for key := range want {
		if c.ShardOf(key) == victim {
			k = key
			break
		}
	}
	for {
		got, err := rdb.Get(ctx, k).Result()
		if err == nil && got == want[k] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after the node restarted, GET %s through the proxy = %q, %v", k, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !c.Proxy.Running() || c.Proxy.Pid() != proxyPid {
		t.Fatal("the proxy was restarted")
	}
	for k, v := range want {
		if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
			t.Fatalf("after the node came back GET %s = %q, %v; want %q", k, got, err, v)
		}
	}
	checkStatus(t, c, nil, perShard)
}

// TestNodePassword runs nodes with -requirepass: the proxy authenticates
// with -node-password, a client without the password is refused by a node.
func TestNodePassword(t *testing.T) {
	c := StartCluster(t, Options{NodePassword: "n0de-secret"})
	rdb := c.Client()
	ctx := context.Background()
	for i := range c.Map.Shards {
		k := c.KeysOn(i, "pw:k", 1)[0]
		must(t, rdb.Set(ctx, k, "v", 0).Err())
		if got, err := rdb.Get(ctx, k).Result(); err != nil || got != "v" {
			t.Fatalf("GET %s = %q, %v", k, got, err)
		}
	}
	err := c.NodeClient(0, "").Get(ctx, "pw:k").Err()
	if err == nil || err == redis.Nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET on a node without its password: %v; want NOAUTH", err)
	}
	checkStatus(t, c, nil, nil)
}
