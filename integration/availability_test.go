package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
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

// TestPasswords runs nodes with -requirepass and the proxy with -requirepass
// and -node-password: clients and the CLI that give the proxy's password are
// served, clients without it get NOAUTH, and a node refuses clients without
// the node password.
func TestPasswords(t *testing.T) {
	c := StartCluster(t, Options{NodePassword: "n0de-secret", ProxyPassword: "pr0xy-secret"})
	rdb := c.Client()
	ctx := context.Background()
	for i := range c.Map.Shards {
		k := c.KeysOn(i, "pw:k", 1)[0]
		must(t, rdb.Set(ctx, k, "v", 0).Err())
		if got, err := rdb.Get(ctx, k).Result(); err != nil || got != "v" {
			t.Fatalf("GET %s = %q, %v", k, got, err)
		}
	}
	anon := c.ClientWith(func(o *redis.Options) { o.Password = "" })
	if err := anon.Get(ctx, "pw:k").Err(); err == nil || err == redis.Nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET through the proxy without its password: %v; want NOAUTH", err)
	}
	wrong := c.ClientWith(func(o *redis.Options) { o.Password = "wrong" })
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with a wrong password: %v; want WRONGPASS", err)
	}
	err := c.NodeClient(0, "").Get(ctx, "pw:k").Err()
	if err == nil || err == redis.Nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET on a node without its password: %v; want NOAUTH", err)
	}
	// Before AUTH, requests are held to Redis's small limits (README, Limits).
	for _, tt := range []struct{ send, want string }{
		{"*11\r\n", "-ERR Protocol error: unauthenticated multibulk length"},
		{"*2\r\n$16385\r\n", "-ERR Protocol error: unauthenticated bulk length"},
	} {
		conn, err := net.Dial("tcp", c.ProxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(tt.send))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if strings.TrimRight(line, "\r\n") != tt.want {
			t.Errorf("unauthenticated %q: reply %q, %v; want %q", tt.send, line, err, tt.want)
		}
		conn.Close()
	}
	res := c.RunCLI(t, []byte("a|1\nb|2\n"), "load", "cli")
	if res.Code != 0 || res.Stdout != "2 rows stored in index cli\n" {
		t.Fatalf("load -password: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	checkCat(t, c, "cli", map[string]string{"a": "1", "b": "2"})
	checkStatus(t, c, nil, nil)
	if res := runCLI(t, nil, "-addr", c.ProxyAddr, "status"); res.Code == 0 || !strings.Contains(res.Stderr, "NOAUTH") {
		t.Fatalf("status without -password: exit %d, stderr %q; want a NOAUTH failure", res.Code, res.Stderr)
	}
}

// TestMaxClients checks the README's connection limit: past -maxclients a
// client gets Redis's error.
func TestMaxClients(t *testing.T) {
	const max = 5
	c := StartCluster(t, Options{ProxyArgs: []string{"-maxclients", fmt.Sprint(max)}})
	ctx := context.Background()
	c.closeClients() // the harness's probe connections
	time.Sleep(300 * time.Millisecond)
	var held []*redis.Conn
	for len(held) < max {
		cn := c.Client().Conn()
		defer cn.Close()
		if err := cn.Ping(ctx).Err(); err != nil {
			t.Fatalf("connection %d of %d: %v", len(held)+1, max, err)
		}
		held = append(held, cn)
	}
	// As Redis, the proxy writes the error as soon as it accepts the
	// connection, then closes it; read it from a raw connection (a client
	// library may be writing its handshake into the closed socket instead).
	conn, err := net.Dial("tcp", c.ProxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if line != "-ERR max number of clients reached\r\n" {
		t.Fatalf("connection %d with -maxclients %d: read %q, %v; want -ERR max number of clients reached", max+1, max, line, err)
	}
}
