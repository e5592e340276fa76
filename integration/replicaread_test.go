package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// readOnlyClient is a client of the proxy at addr whose connections send
// READONLY (or none, when readonly is false).
func readOnlyClient(t *testing.T, addr string, readonly bool) *redis.Client {
	o := &redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1, ReadTimeout: 10 * time.Second}
	if readonly {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// waitReplicaGets reads key through c until the replica counted a GET more
// than before (the proxy made its replica backends on the first read and
// uses them once a probe found the replica in sync).
func waitReplicaGets(t *testing.T, c, replica *redis.Client, key, want string, before int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for nodeCalls(t, replica, "get") == before {
		if v, err := c.Get(ctx, key).Result(); err != nil || v != want {
			t.Fatalf("GET %s through the proxy: %q, %v; want %q", key, v, err, want)
		}
		if time.Now().After(deadline) {
			t.Fatal("no GET through the proxy reached the replica")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProxyReadsFromReplica: a client that sent READONLY to the proxy has
// its GETs served by the shard's replica (the replica counts them, and
// they are answered while the primary is frozen), its SETs by the primary,
// and its reads by the primary once the replica is dead;
// a client without READONLY reads from the primary only; a proxy with
// -read-from-replicas reads from the replica for every client.
func TestProxyReadsFromReplica(t *testing.T) {
	rc := startReplCluster(t, 1, 1, 0)
	ctx := context.Background()
	m := rc.etcdMap()
	paddr, raddr := m.Shards[0].Addr(), m.Shards[0].ReplicaAddrs()[0]
	primary, replica := rc.nodeClient(paddr, false), rc.nodeClient(raddr, true)
	if err := rc.rdb.Set(ctx, "rk", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, primary, replica)

	ro := readOnlyClient(t, rc.proxy.Addr, true)
	waitReplicaGets(t, ro, replica, "rk", "v1", nodeCalls(t, replica, "get"))

	// Without READONLY: the primary serves every GET.
	plain := readOnlyClient(t, rc.proxy.Addr, false)
	rGets, pGets := nodeCalls(t, replica, "get"), nodeCalls(t, primary, "get")
	for i := 0; i < 50; i++ {
		if v, err := plain.Get(ctx, "rk").Result(); err != nil || v != "v1" {
			t.Fatalf("GET without READONLY: %q, %v", v, err)
		}
	}
	if r, p := nodeCalls(t, replica, "get")-rGets, nodeCalls(t, primary, "get")-pGets; r != 0 || p != 50 {
		t.Fatalf("50 GETs without READONLY: %d on the replica, %d on the primary; want 0 and 50", r, p)
	}

	// A write of the READONLY client goes to the primary (the replica
	// would refuse it).
	if err := ro.Set(ctx, "rk", "v2", 0).Err(); err != nil {
		t.Fatalf("SET through a READONLY client: %v", err)
	}
	if v, err := primary.Get(ctx, "rk").Result(); err != nil || v != "v2" {
		t.Fatalf("the primary holds %q, %v after SET through a READONLY client", v, err)
	}
	waitCaughtUp(t, primary, replica)
	waitReplicaGets(t, ro, replica, "rk", "v2", nodeCalls(t, replica, "get"))

	// Inside MULTI the READONLY client reads from the primary: the
	// transaction runs on one node.
	rGets = nodeCalls(t, replica, "get")
	if _, err := ro.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "rk"); p.Get(ctx, "rk"); return nil }); err != nil {
		t.Fatal(err)
	}
	if r := nodeCalls(t, replica, "get") - rGets; r != 0 {
		t.Fatalf("%d GETs inside MULTI reached the replica", r)
	}

	// READWRITE turns it off.
	rw := readOnlyClient(t, rc.proxy.Addr, false)
	conn := rw.Conn()
	defer conn.Close()
	if err := conn.ReadOnly(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := conn.ReadWrite(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rGets = nodeCalls(t, replica, "get")
	for i := 0; i < 20; i++ {
		if err := conn.Get(ctx, "rk").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if r := nodeCalls(t, replica, "get") - rGets; r != 0 {
		t.Fatalf("%d GETs after READWRITE reached the replica", r)
	}

	// -read-from-replicas: every client reads from the replica.
	ports := freePorts(t, 1)
	p2addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p2 := &Proc{Name: "proxy2", Bin: bin("shardkv-proxy"), Addr: p2addr, LogPath: filepath.Join(rc.dir, "logs", "proxy2.log"),
		Args: []string{"-addr", p2addr, "-etcd", rc.etcd.endpoint(), "-cluster", etcdCluster, "-node-password", failoverPass,
			"-timeout", "2s", "-read-from-replicas"}}
	p2.Start(t)
	defer p2.Kill()
	p2.WaitReady(t)
	waitCaughtUp(t, primary, replica)
	waitReplicaGets(t, readOnlyClient(t, p2addr, false), replica, "rk", "v2", nodeCalls(t, replica, "get"))

	// The primary frozen: the READONLY client still reads, as long as the
	// map says it is the primary (the failover has not happened yet).
	rc.nodes[paddr].Signal(t, syscall.SIGSTOP)
	v, err := ro.Get(ctx, "rk").Result()
	epoch := rc.etcdMap().Epoch
	rc.nodes[paddr].Signal(t, syscall.SIGCONT)
	if err != nil || v != "v2" {
		t.Fatalf("GET through a READONLY client with the primary frozen: %q, %v", v, err)
	}
	if epoch != m.Epoch {
		t.Fatalf("the map changed (epoch %d to %d) during a freeze of one GET", m.Epoch, epoch)
	}

	// The replica killed: once the proxy's probe saw it, the READONLY
	// client's reads go to the primary. Reads in flight to it when it died
	// fail as any node's do (TRYAGAIN, which clients retry).
	rc.nodes[raddr].Kill()
	deadline := time.Now().Add(30 * time.Second)
	for ro.Get(ctx, "rk").Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("reads through a READONLY client fail with the replica dead: %v", ro.Get(ctx, "rk").Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pGets = nodeCalls(t, primary, "get")
	for i := 0; i < 20; i++ {
		if v, err := ro.Get(ctx, "rk").Result(); err != nil || v != "v2" {
			t.Fatalf("GET through a READONLY client with the replica dead: %q, %v", v, err)
		}
	}
	if p := nodeCalls(t, primary, "get") - pGets; p != 20 {
		t.Fatalf("20 GETs with the replica dead: %d on the primary", p)
	}
}
