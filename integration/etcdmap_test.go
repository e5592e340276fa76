package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"

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

// startBenchEtcd is an embedded etcd for a benchmark, stopped at its end.
func startBenchEtcd(b *testing.B) string {
	b.Helper()
	e, err := etcdmap.StartEmbedded(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	return e.Endpoint
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

// withEtcd runs fn with a client of the etcd at endpoint and a context
// of 30 seconds.
func withEtcd(t testing.TB, endpoint string, fn func(ctx context.Context, cli *clientv3.Client)) {
	t.Helper()
	cli, err := etcdmap.Dial(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fn(ctx, cli)
}

func seedEtcd(t testing.TB, endpoint string, m *rangemap.Map) {
	t.Helper()
	withEtcd(t, endpoint, func(ctx context.Context, cli *clientv3.Client) {
		if ok, err := etcdmap.Seed(ctx, cli, etcdCluster, m); err != nil || !ok {
			t.Fatalf("seeding the map: %v %v", ok, err)
		}
	})
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

// startController runs `shardkv controller` against the test's etcd until
// the test ends.
func startController(t *testing.T, dir, endpoint string) {
	t.Helper()
	cmd := exec.Command(bin("shardkv"), "controller", "--etcd", endpoint, "--cluster", etcdCluster, "--id", "test")
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(exitTimeout):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
}

// `shardkv split` under a small load: the controller cuts s0's range in
// two shards on the same node at the next epoch, the proxy routes by it
// without dropping its clients, and every acknowledged write is readable
// afterwards with its last acknowledged value; DBSIZE and SCAN count each
// key once though two map entries share a node.
func TestSplitThroughCLI(t *testing.T) {
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 2, Etcd: te.endpoint()})
	startController(t, c.Dir, te.endpoint())
	ctx := context.Background()

	const writers, keysPer = 4, 50
	var (
		mu    sync.Mutex
		acked = map[string]int{}
		fails []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		rdb := c.Client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("split:%d:%d", w, n%keysPer)
				err := rdb.Set(ctx, k, n, 0).Err()
				mu.Lock()
				if err != nil {
					fails = append(fails, err.Error())
				} else {
					acked[k] = n
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // some load before the split
	res := c.RunCLI(t, nil, "split", "s0", "at", "0.25", "--etcd", te.endpoint(), "--cluster", etcdCluster)
	if res.Code != 0 || !strings.Contains(res.Stdout, "done: s0 now ends at 0.25, s0-2 starts there (same node), map epoch 2") {
		t.Fatalf("shardkv split: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	rdb := c.Client()
	waitEpoch(t, rdb.Info, 2)
	time.Sleep(200 * time.Millisecond) // some load after it
	close(stop)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d writes failed during the split, first: %s", len(fails), fails[0])
	}
	for k, n := range acked {
		if v, err := rdb.Get(ctx, k).Int(); err != nil || v != n {
			t.Fatalf("GET %s: %v %v, want its last acknowledged %d", k, v, err, n)
		}
	}
	entries, err := rdb.Do(ctx, "SHARD.MAP").Slice()
	if err != nil || len(entries) != 3 {
		t.Fatalf("SHARD.MAP: %v %v", entries, err)
	}
	e0, e1 := entries[0].([]any), entries[1].([]any)
	if e0[0] != "s0" || e0[2] != "0.25" || e1[0] != "s0-2" || e1[1] != "0.25" ||
		e1[2] != rangemap.FormatPosition(c.Map.Shards[0].End) || e1[3] != e0[3] || e1[4] != int64(1) {
		t.Fatalf("SHARD.MAP after the split: %v", entries)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != int64(len(acked)) {
		t.Fatalf("DBSIZE %d %v, want %d", n, err, len(acked))
	}
	seen := map[string]int{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "split:*", 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k]++
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for k := range acked {
		if seen[k] != 1 {
			t.Fatalf("SCAN returned %s %d times", k, seen[k])
		}
	}
	res = c.RunCLI(t, nil, "status", "--etcd", te.endpoint(), "--cluster", etcdCluster)
	if res.Code != 0 || !strings.Contains(res.Stdout, "map epoch 2 (etcd)") || !strings.Contains(res.Stdout, "changes in flight: none") ||
		!strings.Contains(res.Stdout, "s0-2") {
		t.Fatalf("shardkv status: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = c.RunCLI(t, nil, "split", "s0", "0.9", "--etcd", te.endpoint(), "--cluster", etcdCluster)
	if res.Code != 1 || !strings.Contains(res.Stderr, "not inside shard s0's range") {
		t.Fatalf("split outside the shard: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
