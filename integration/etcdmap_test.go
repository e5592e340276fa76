package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// etcdCluster is the cluster name the tests' maps live under in etcd.
const etcdCluster = "test"

// testEtcd is an embedded etcd member run by the test process, restartable
// on its data directory and ports.
type testEtcd struct {
	t   *testing.T
	dir string
	e   *etcdmap.Embedded
}

func startTestEtcd(t *testing.T) *testEtcd {
	t.Helper()
	te := &testEtcd{t: t, dir: t.TempDir()}
	e, err := etcdmap.StartEmbedded(te.dir)
	if err != nil {
		t.Fatal(err)
	}
	te.e = e
	t.Cleanup(func() {
		if te.e != nil {
			te.e.Close()
		}
	})
	return te
}

func (te *testEtcd) endpoint() string { return te.e.Endpoint }

func (te *testEtcd) stop() {
	te.e.Close()
	te.e = nil
}

func (te *testEtcd) restart(clientPort, peerPort int) {
	te.t.Helper()
	e, err := etcdmap.StartEmbeddedOn(te.dir, clientPort, peerPort)
	if err != nil {
		te.t.Fatal(err)
	}
	te.e = e
}

func seedEtcd(t testing.TB, endpoint string, m *rangemap.Map) {
	t.Helper()
	cli, err := etcdmap.Dial(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, err := etcdmap.Seed(ctx, cli, etcdCluster, m); err != nil || !ok {
		t.Fatalf("seeding the map: %v %v", ok, err)
	}
}

// changeMap writes the etcd map changed by edit at the next epoch and
// returns it.
func changeMap(t testing.TB, endpoint string, edit func(*rangemap.Map)) *rangemap.Map {
	t.Helper()
	cli, err := etcdmap.Dial(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := etcdmap.Read(ctx, cli, etcdCluster)
	if err != nil {
		t.Fatal(err)
	}
	next := *snap.Map
	next.Shards = append([]rangemap.Shard(nil), snap.Map.Shards...)
	edit(&next)
	if err := etcdmap.Replace(ctx, cli, etcdCluster, snap, &next); err != nil {
		t.Fatal(err)
	}
	return &next
}

// proxyEpoch is the map epoch the proxy routes by (INFO server).
func proxyEpoch(t testing.TB, do func(ctx context.Context, section ...string) *redis.StringCmd) string {
	t.Helper()
	info, err := do(context.Background(), "server").Result()
	if err != nil {
		t.Fatalf("INFO server: %v", err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "map_epoch:"); ok {
			return v
		}
	}
	t.Fatalf("INFO server has no map_epoch:\n%s", info)
	return ""
}

// waitEpoch waits until the proxy routes by the map of epoch want.
func waitEpoch(t testing.TB, do func(ctx context.Context, section ...string) *redis.StringCmd, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for proxyEpoch(t, do) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy never applied epoch %d (at %s)", want, proxyEpoch(t, do))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A proxy started with -etcd routes by the map in etcd, and applies a new
// epoch written there while a client stays connected on one connection
// and keeps working; the size the new map gives is pushed to the node.
func TestEtcdMapFollowedByProxy(t *testing.T) {
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 2, Etcd: te.endpoint()})
	ctx := context.Background()
	conn := c.Client().Conn()
	defer conn.Close()
	keys := c.KeysOn(0, "em", 3)
	must(t, conn.Set(ctx, keys[0], "before", 0).Err())
	if e := proxyEpoch(t, conn.Info); e != "1" {
		t.Fatalf("epoch of the seeded map: %s, want 1", e)
	}
	changeMap(t, te.endpoint(), func(m *rangemap.Map) { m.Shards[0].Size = 1 << 30 })
	waitEpoch(t, conn.Info, 2)
	if v, err := conn.Get(ctx, keys[0]).Result(); err != nil || v != "before" {
		t.Fatalf("GET on the same connection after the new epoch: %q %v", v, err)
	}
	must(t, conn.Set(ctx, keys[1], "after", 0).Err())
	info := conn.Info(ctx, "shard_"+c.Map.Shards[0].Name).Val()
	if !strings.Contains(info, "shard_size_limit:1073741824\r\n") {
		t.Fatalf("the new map's size was not pushed to the node:\n%s", info)
	}
	if res := c.RunCLI(t, nil, "status"); res.Code != 0 || !strings.Contains(res.Stdout, "map epoch 2 (etcd)") {
		t.Fatalf("shardkv status: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// With etcd stopped, the proxy keeps serving reads and writes on the map
// it has, to connected and new clients; when etcd is back on its
// address, the proxy reconnects and applies the next epoch.
func TestEtcdDownKeepsServing(t *testing.T) {
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 3, Etcd: te.endpoint()})
	ctx := context.Background()
	rdb := c.Client()
	for i := 0; i < 30; i++ {
		must(t, rdb.Set(ctx, fmt.Sprintf("down:%d", i), i, 0).Err())
	}
	cp, pp := te.e.ClientPort, te.e.PeerPort
	te.stop()
	fresh := c.Client()
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("down:%d", i)
		if v, err := fresh.Get(ctx, k).Int(); err != nil || v != i {
			t.Fatalf("GET %s with etcd down: %v %v", k, v, err)
		}
		must(t, rdb.Incr(ctx, k).Err())
		must(t, fresh.Set(ctx, fmt.Sprintf("while-down:%d", i), i, 0).Err())
	}
	for i := 0; i < 30; i++ {
		if v, err := rdb.Get(ctx, fmt.Sprintf("down:%d", i)).Int(); err != nil || v != i+1 {
			t.Fatalf("GET down:%d: %v %v, want %d", i, v, err, i+1)
		}
	}
	te.restart(cp, pp)
	changeMap(t, te.endpoint(), func(m *rangemap.Map) { m.Shards[1].Size = 1 << 30 })
	waitEpoch(t, rdb.Info, 2)
	if v, err := rdb.Get(ctx, "while-down:7").Int(); err != nil || v != 7 {
		t.Fatalf("GET after etcd came back: %v %v", v, err)
	}
}

// keyBetween returns a key whose position lies in [lo,hi).
func keyBetween(t testing.TB, prefix string, lo, hi float64) string {
	t.Helper()
	for i := 0; i < 1000000; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if p := rangemap.PositionString(k); lo <= p && p < hi {
			return k
		}
	}
	t.Fatalf("no key with prefix %q in [%v,%v)", prefix, lo, hi)
	return ""
}

// A proxy whose map is stale (its etcd watch off) still routes a key that
// moved to its new owner: the old owner refuses it with WRONGSHARD at a
// newer epoch, the proxy reads the map from etcd and sends the command
// again, and the client sees the right reply, neither WRONGSHARD nor
// TRYAGAIN. Reads and writes both.
func TestStaleProxyFollowsEpoch(t *testing.T) {
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 2, Etcd: te.endpoint()})
	ctx := context.Background()
	port := freePorts(t, 1)[0]
	stale := &Proc{Name: "proxy-stale", Bin: bin("shardkv-proxy"), Addr: fmt.Sprintf("127.0.0.1:%d", port),
		Args:    []string{"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-etcd", te.endpoint(), "-cluster", etcdCluster, "-etcd-watch=false", "-timeout", "2s"},
		LogPath: c.Dir + "/logs/proxy-stale.log"}
	stale.Start(t)
	t.Cleanup(stale.Kill)
	stale.WaitReady(t)
	srdb := redis.NewClient(&redis.Options{Addr: stale.Addr, MaxRetries: -1})
	defer srdb.Close()
	rdb := c.Client()
	moving := keyBetween(t, "mv", 0.25, 0.5)
	must(t, srdb.Set(ctx, moving, "old", 0).Err()) // on s0 at epoch 1
	waitEpoch(t, srdb.Info, 1)

	// Epoch 2: [0.25,0.5) belongs to s1. No data moves in this test: the
	// key is written again under the new map.
	changeMap(t, te.endpoint(), func(m *rangemap.Map) {
		m.Shards[0].End, m.Shards[1].Start = 0.25, 0.25
	})
	waitEpoch(t, rdb.Info, 2)
	must(t, rdb.Set(ctx, moving, "new", 0).Err()) // on s1 now
	if e := proxyEpoch(t, srdb.Info); e != "1" {
		t.Fatalf("the stale proxy is at epoch %s before any refusal; the test needs it at 1", e)
	}
	if v, err := srdb.Get(ctx, moving).Result(); err != nil || v != "new" {
		t.Fatalf("GET through the stale proxy: %q %v, want the new owner's value", v, err)
	}
	if e := proxyEpoch(t, srdb.Info); e != "2" {
		t.Fatalf("the stale proxy is at epoch %s after the refusal, want 2", e)
	}
	written := keyBetween(t, "mvw", 0.25, 0.5)
	must(t, srdb.Set(ctx, written, "via-stale", 0).Err())
	if v, err := rdb.Get(ctx, written).Result(); err != nil || v != "via-stale" {
		t.Fatalf("GET through the other proxy: %q %v", v, err)
	}
	if info := srdb.Info(ctx, "server").Val(); !strings.Contains(info, "shards_up:2\r\n") {
		t.Fatalf("the stale proxy marked a shard down or mismatched:\n%s", info)
	}
}
