package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
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

// The controller's moves through the real binaries (docs/RESHARDING.md,
// "The controller's moves"): add-node and rebalance under load, and a
// SIGKILL of each process at each state of a move.

const reshardPW = "nodepw"

// reshard is a test cluster with an etcd map, a second proxy and the
// controllers.
type reshard struct {
	t     *testing.T
	te    *testEtcd
	c     *Cluster
	cli   *clientv3.Client
	proxy *Proc // the second proxy
	ctls  []*Proc
}

func startReshard(t *testing.T, shards int) *reshard {
	t.Helper()
	r := &reshard{t: t, te: startTestEtcd(t)}
	// The nodes read a move's state when its fence outlives its timeout.
	r.c = StartCluster(t, Options{Shards: shards, NodePassword: reshardPW, Etcd: r.te.endpoint(),
		NodeArgs: []string{"-etcd", r.te.endpoint(), "-cluster", etcdCluster}})
	cli, err := etcdmap.Dial(r.te.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	r.cli = cli
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r.proxy = &Proc{Name: "proxy-b", Bin: bin("shardkv-proxy"), Addr: addr,
		Args: []string{"-addr", addr, "-etcd", r.te.endpoint(), "-cluster", etcdCluster, "-timeout", "2s",
			"-node-password", reshardPW, "-log-level", "info"},
		LogPath: filepath.Join(r.c.Dir, "logs", "proxy-b.log")}
	r.proxy.Start(t)
	t.Cleanup(func() { r.proxy.Kill(); r.proxy.checkLog(t) })
	r.proxy.WaitReady(t)
	return r
}

// startNode starts a shard node that is in no map yet.
func (r *reshard) startNode(name string) *Proc {
	r.t.Helper()
	port := freePorts(r.t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &Proc{Name: name, Bin: bin("shardkv-node"), Addr: addr, Password: reshardPW,
		Args: []string{"-addr", addr, "-dir", filepath.Join(r.c.Dir, "data", name), "-appendfsync", "everysec",
			"-log-level", "info", "-requirepass", reshardPW, "-etcd", r.te.endpoint(), "-cluster", etcdCluster},
		LogPath: filepath.Join(r.c.Dir, "logs", name+".log")}
	p.Start(r.t)
	r.t.Cleanup(func() { p.Kill(); p.checkLog(r.t) })
	p.WaitReady(r.t)
	return p
}

// startController starts a controller process; hold is its --hold, more
// its other flags.
func (r *reshard) startController(name, hold string, more ...string) *Proc {
	r.t.Helper()
	args := append([]string{"controller", "--etcd", r.te.endpoint(), "--cluster", etcdCluster, "--id", name,
		"--node-password", reshardPW, "--lease", "2", "--fence-lag", "20"}, more...)
	if hold != "" {
		args = append(args, "--hold", hold)
	}
	p := &Proc{Name: name, Bin: bin("shardkv"), Args: args, LogPath: filepath.Join(r.c.Dir, "logs", name+".log")}
	p.Start(r.t)
	r.t.Cleanup(func() { p.Kill(); p.checkLog(r.t) })
	r.ctls = append(r.ctls, p)
	return p
}

// stopControllers ends the controllers started so far.
func (r *reshard) stopControllers() {
	for _, p := range r.ctls {
		if p.Running() {
			p.Signal(r.t, syscall.SIGTERM)
			p.WaitExit(r.t)
		}
	}
	r.ctls = nil
}

func (r *reshard) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// submit writes a request for the controller.
func (r *reshard) submit(req etcdmap.Request) string {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	id, err := etcdmap.Submit(ctx, r.cli, etcdCluster, req)
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// waitState waits until a move of request id is in state.
func (r *reshard) waitState(id, state string) etcdmap.MoveRecord {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		moves, err := etcdmap.ReadMoves(ctx, r.cli, etcdCluster, id+".")
		cancel()
		if err == nil {
			for _, m := range moves {
				if m.State == state {
					return m
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("request %s: no move reached state %s", id, state)
	return etcdmap.MoveRecord{}
}

// outcome waits for request id's outcome.
func (r *reshard) outcome(id string) etcdmap.Change {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	ch, err := etcdmap.WaitChange(ctx, r.cli, etcdCluster, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return ch
}

func (r *reshard) etcdMap() *rangemap.Map {
	r.t.Helper()
	ctx, cancel := r.ctx()
	defer cancel()
	m, err := etcdmap.Get(ctx, r.cli, etcdCluster)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// rangeKeys counts the keys of [lo,hi) that the node at addr stores,
// hidden ones included (seen through a move's stream connection).
func rangeKeys(t *testing.T, addr string, lo, hi float64) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: reshardPW, MaxRetries: -1, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "MIGRATE.RECV", "test-reader").Err()
		}})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("KEYS on %s: %v", addr, err)
	}
	n := 0
	for _, k := range keys {
		if p := rangemap.PositionString(k); lo <= p && p < hi {
			n++
		}
	}
	return n
}

// loadKey is what a loader knows of one key: its last acknowledged value,
// unless a write of it got no reply (uncertain) and was not redone yet.
type loadKey struct {
	val       int64
	uncertain bool
}

// loader runs SET/INCR/GET from clients, each on keys of its own, checks
// every reply against the last acknowledged value, and retries TRYAGAIN
// (nothing was executed) until it succeeds; the longest wait of one
// command from its first try to its reply is the stall.
type loader struct {
	mu       sync.Mutex
	keys     map[string]*loadKey
	stall    time.Duration
	stallOp  string
	ops      int64
	wrong    []string
	stop     chan struct{}
	wg       sync.WaitGroup
	perKey   int
	prefixes []string
}

func startLoader(clients []*redis.Client, perClient int, prefix string) *loader {
	l := &loader{keys: map[string]*loadKey{}, stop: make(chan struct{}), perKey: perClient}
	ctx := context.Background()
	for w, rdb := range clients {
		keys := make([]string, perClient)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s:%d:%d", prefix, w, i)
			l.mu.Lock()
			l.keys[keys[i]] = &loadKey{}
			l.mu.Unlock()
			if err := l.do(ctx, rdb, keys[i], "set", 0); err != nil {
				l.fail(err.Error())
			}
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := int64(1); ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				k := keys[n%int64(len(keys))]
				op := [...]string{"set", "incr", "get"}[(n/int64(len(keys)))%3]
				if err := l.do(ctx, rdb, k, op, n); err != nil {
					l.fail(err.Error())
					return
				}
			}
		}()
	}
	return l
}

func (l *loader) fail(msg string) {
	l.mu.Lock()
	l.wrong = append(l.wrong, msg)
	l.mu.Unlock()
}

// do runs one command on k and checks its reply.
func (l *loader) do(ctx context.Context, rdb *redis.Client, k, op string, n int64) error {
	l.mu.Lock()
	st := *l.keys[k]
	l.mu.Unlock()
	if st.uncertain && op != "set" {
		op = "set" // a fresh value makes the key certain again
	}
	start := time.Now()
	for {
		var err error
		var got int64
		switch op {
		case "set":
			err = rdb.Set(ctx, k, n, 0).Err()
			got = n
		case "incr":
			got, err = rdb.Incr(ctx, k).Result()
			if err == nil && got != st.val+1 {
				return fmt.Errorf("INCR %s replied %d, want %d", k, got, st.val+1)
			}
		case "get":
			got, err = rdb.Get(ctx, k).Int64()
			if err == nil && got != st.val {
				return fmt.Errorf("GET %s replied %d, want its last acknowledged %d", k, got, st.val)
			}
		}
		if err == nil {
			l.mu.Lock()
			*l.keys[k] = loadKey{val: got}
			l.ops++
			if d := time.Since(start); d > l.stall {
				l.stall, l.stallOp = d, strings.ToUpper(op)+" "+k
			}
			l.mu.Unlock()
			return nil
		}
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "UNCERTAIN") && op != "get":
			l.mu.Lock()
			l.keys[k].uncertain = true
			l.mu.Unlock()
			return nil
		case strings.HasPrefix(msg, "TRYAGAIN"), strings.HasPrefix(msg, "UNCERTAIN"):
		default:
			return fmt.Errorf("%s %s: %v", op, k, err)
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("%s %s: still failing after 30 s: %v", op, k, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish stops the load, and checks that no reply was wrong and every key
// reads its last acknowledged value through each of clients.
func (l *loader) finish(t *testing.T, clients ...*redis.Client) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, w := range l.wrong {
		t.Error(w)
	}
	ctx := context.Background()
	for _, rdb := range clients {
		for k, st := range l.keys { // the writers have returned
			if st.uncertain {
				continue
			}
			if v, err := rdb.Get(ctx, k).Int64(); err != nil || v != st.val {
				t.Fatalf("GET %s after the move: %d %v, want its last acknowledged %d", k, v, err, st.val)
			}
		}
	}
	t.Logf("%d commands acknowledged; longest stall %v (%s)", l.ops, l.stall.Round(time.Millisecond), l.stallOp)
}

func proxyClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 5 * time.Second,
		ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second, PoolSize: 2})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestRebalanceAddNode: three nodes under SET/INCR/GET from 16 clients
// through two proxies; a fourth node is added and `shardkv rebalance`
// moves ranges onto it; every reply was right, every key reads its last
// acknowledged value through both proxies, every node ends with about a
// quarter of the key space, and the longest write stall is reported.
// Then, under the same load, `shardkv move` gives n4 a range that is not
// adjacent to its own, and `shardkv remove-node n4` moves both away. Two
// more clients write through a third proxy whose etcd watch is off: it
// follows each move only through the nodes' epoch errors.
func TestRebalanceAddNode(t *testing.T) {
	r := startReshard(t, 3)
	r.startController("ctl-a", "")
	var clients []*redis.Client
	for i := 0; i < 16; i++ {
		addr := r.c.ProxyAddr
		if i%2 == 1 {
			addr = r.proxy.Addr
		}
		clients = append(clients, proxyClient(t, addr))
	}
	// A third proxy with its etcd watch off: it learns each new map only
	// from a node's epoch error, and must route right all the same.
	port := freePorts(t, 1)[0]
	stale := &Proc{Name: "proxy-stale", Bin: bin("shardkv-proxy"), Addr: fmt.Sprintf("127.0.0.1:%d", port),
		Args: []string{"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-etcd", r.te.endpoint(), "-cluster", etcdCluster,
			"-etcd-watch=false", "-timeout", "2s", "-node-password", reshardPW},
		LogPath: filepath.Join(r.c.Dir, "logs", "proxy-stale.log")}
	stale.Start(t)
	t.Cleanup(func() { stale.Kill(); stale.checkLog(t) })
	stale.WaitReady(t)
	clients = append(clients, proxyClient(t, stale.Addr), proxyClient(t, stale.Addr))
	load := startLoader(clients, 40, "rb")
	n4 := r.startNode("n4")
	ef := []string{"--etcd", r.te.endpoint(), "--cluster", etcdCluster}
	res := runCLI(t, nil, append([]string{"add-node", n4.Addr, "--name", "n4"}, ef...)...)
	if res.Code != 0 || !strings.Contains(res.Stdout, "done: add-node") {
		t.Fatalf("shardkv add-node: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = runCLI(t, nil, append([]string{"rebalance"}, ef...)...)
	t.Logf("shardkv rebalance:\n%s", res.Stdout)
	if res.Code != 0 || !strings.Contains(res.Stdout, ": done") {
		t.Fatalf("shardkv rebalance: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	m := r.etcdMap()
	nodes := []string{r.c.Map.Shards[0].Addr(), r.c.Map.Shards[1].Addr(), r.c.Map.Shards[2].Addr(), n4.Addr}
	quarters := func(m *rangemap.Map) {
		t.Helper()
		for _, addr := range nodes {
			w := 0.0
			for _, s := range m.Shards {
				if s.Addr() == addr {
					w += s.End - s.Start
				}
			}
			if w < 0.2 || w > 0.3 {
				t.Errorf("node %s owns %.3f of the key space after the rebalance, want about 0.25 (map %+v)", addr, w, m.Shards)
			}
		}
	}
	quarters(m)
	res = runCLI(t, nil, append([]string{"-addr", r.c.ProxyAddr, "status"}, ef...)...)
	if res.Code != 0 || !strings.Contains(res.Stdout, "finished: move") || !strings.Contains(res.Stdout, "map epoch "+strconv.FormatUint(m.Epoch, 10)) {
		t.Fatalf("shardkv status: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	// The middle third of s0's node's range to n4: n4 then owns two
	// ranges that are not adjacent, and s0's node two.
	rs := m.Shards[0]
	lo, hi := rs.Start+(rs.End-rs.Start)/3, rs.Start+2*(rs.End-rs.Start)/3
	arg := rangemap.FormatPosition(lo) + "-" + rangemap.FormatPosition(hi)
	res = runCLI(t, nil, append([]string{"move", arg, "to", "n4"}, ef...)...)
	if res.Code != 0 || !strings.Contains(res.Stdout, "done: move, 1 move(s)") {
		t.Fatalf("shardkv move %s to n4: exit %d\n%s%s", arg, res.Code, res.Stdout, res.Stderr)
	}
	if owner, err := ownerOfRange(r.etcdMap(), lo, hi); err != nil || owner != n4.Addr {
		t.Fatalf("after the move, [%v,%v) is on %s (%v)", lo, hi, owner, err)
	}
	// A rebalance of nodes that own ranges not adjacent: n4 gives back
	// about the twelfth it has over the mean, and every node owns about a
	// quarter again.
	res = runCLI(t, nil, append([]string{"rebalance"}, ef...)...)
	t.Logf("shardkv rebalance after the move:\n%s", res.Stdout)
	if res.Code != 0 || !strings.Contains(res.Stdout, ": done") || strings.Contains(res.Stdout, "done: rebalance, 0 move(s)") {
		t.Fatalf("shardkv rebalance after the move: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	quarters(r.etcdMap())
	// remove-node moves each of n4's ranges to a neighbour.
	res = runCLI(t, nil, append([]string{"remove-node", "n4"}, ef...)...)
	t.Logf("shardkv remove-node n4:\n%s", res.Stdout)
	if res.Code != 0 || !strings.Contains(res.Stdout, "done: remove-node, ") {
		t.Fatalf("shardkv remove-node n4: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	time.Sleep(200 * time.Millisecond) // load on the last map
	load.finish(t, proxyClient(t, r.c.ProxyAddr), proxyClient(t, r.proxy.Addr), proxyClient(t, stale.Addr))
	for _, s := range r.etcdMap().Shards {
		if s.Addr() == n4.Addr {
			t.Fatalf("n4 still owns %+v after remove-node", s)
		}
	}
	if n := rangeKeys(t, n4.Addr, 0, 1); n != 0 {
		t.Fatalf("n4 keeps %d keys after remove-node", n)
	}
	// n4 owns no key at the last epoch: a write there gets the epoch
	// error, which sends a proxy whose map is behind to the map.
	k := keyBetween(t, "removed", 0.9, 1)
	direct := redis.NewClient(&redis.Options{Addr: n4.Addr, Password: reshardPW, MaxRetries: -1})
	defer direct.Close()
	want := fmt.Sprintf(" epoch %d", r.etcdMap().Epoch)
	if err := direct.Set(context.Background(), k, "stale", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGSHARD") || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("SET %s on the removed node: %v, want WRONGSHARD ...%s", k, err, want)
	}
}

// nodeAt returns the node process listening on addr.
func (r *reshard) nodeAt(addr string) *Proc {
	r.t.Helper()
	for _, n := range r.c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	r.t.Fatalf("no node at %s", addr)
	return nil
}

// leader waits until one controller leads and returns it.
func (r *reshard) leader() string {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := r.cli.Get(ctx, etcdmap.Prefix(etcdCluster)+"election", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		cancel()
		if err == nil && len(resp.Kvs) > 0 {
			return string(resp.Kvs[0].Value)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("no controller leads")
	return ""
}

const movedLo, movedHi = 0.25, 0.5

// waitFenced waits until the node at addr has a fence (INFO shard's
// shard_fences): the move's state is recorded before its action.
func (r *reshard) waitFenced(addr string) {
	r.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: reshardPW, MaxRetries: -1, PoolSize: 1})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if info, err := rdb.Info(context.Background(), "shard").Result(); err == nil && !strings.Contains(info, "shard_fences:0\r\n") &&
			strings.Contains(info, "shard_fences:") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("node %s never fenced", addr)
}

// moveOnce moves [movedLo,movedHi) to the node that does not own it,
// kills victim once the move is in state, restarts it, and checks that
// the move completed or rolled back with every acknowledged write
// readable: the range wholly on one node, the other without a key of it.
func (r *reshard) moveOnce(t *testing.T, victim, state string) {
	hold := state + "=400ms"
	ctlA := r.startController("ctl-a", hold)
	if r.leader() != "ctl-a" {
		t.Fatal("ctl-a does not lead")
	}
	if victim == "controller" {
		r.startController("ctl-b", hold)
	}
	defer r.stopControllers()
	a, b := proxyClient(t, r.c.ProxyAddr), proxyClient(t, r.proxy.Addr)
	var clients []*redis.Client
	for i := 0; i < 4; i++ {
		clients = append(clients, proxyClient(t, r.c.ProxyAddr))
	}
	load := startLoader(clients, 30, "k"+strings.ReplaceAll(victim+state, "-", ""))
	m := r.etcdMap()
	from := m.Shards[m.Find(movedLo)].Addr()
	to := r.c.Map.Shards[0].Addr()
	if to == from {
		to = r.c.Map.Shards[1].Addr()
	}
	id := r.submit(etcdmap.Request{Kind: "move", Lo: movedLo, Hi: movedHi, Node: to})
	r.waitState(id, state)
	if state == etcdmap.MoveFence {
		r.waitFenced(from)
	}
	switch victim {
	case "source", "target":
		addr := from
		if victim == "target" {
			addr = to
		}
		p := r.nodeAt(addr)
		p.Signal(t, syscall.SIGKILL)
		p.WaitExit(t)
		p.Start(t)
		p.WaitReady(t)
	case "controller":
		ctlA.Signal(t, syscall.SIGKILL)
		ctlA.WaitExit(t)
	case "proxy":
		r.proxy.Signal(t, syscall.SIGKILL)
		r.proxy.WaitExit(t)
	}
	ch := r.outcome(id)
	if victim == "proxy" {
		r.proxy.Start(t)
		r.proxy.WaitReady(t)
		waitEpoch(t, b.Info, r.etcdMap().Epoch) // the current map, read at start
	}
	time.Sleep(100 * time.Millisecond) // load on the outcome's map
	load.finish(t, a, b)
	m = r.etcdMap()
	owner, err := ownerOfRange(m, movedLo, movedHi)
	if err != nil {
		t.Fatal(err)
	}
	moves, _ := etcdmap.ReadMoves(context.Background(), r.cli, etcdCluster, id+".")
	t.Logf("move %s with the %s killed in %s: %s %s (%+v)", id, victim, state, ch.State, ch.Error, moves)
	other := from
	switch ch.State {
	case "done":
		if owner != to {
			t.Fatalf("the move is done and the map gives the range to %s, not the target %s", owner, to)
		}
	case "failed":
		if owner != from {
			t.Fatalf("the move failed and the map gives the range to %s, not the source %s", owner, from)
		}
		other = to
	default:
		t.Fatalf("request %s: outcome %+v", id, ch)
	}
	if n := rangeKeys(t, other, movedLo, movedHi); n != 0 {
		t.Fatalf("node %s, which does not own the range, keeps %d of its keys", other, n)
	}
}

// ownerOfRange is the address that owns all of [lo,hi) in m.
func ownerOfRange(m *rangemap.Map, lo, hi float64) (string, error) {
	owner := ""
	for _, s := range m.Shards {
		if s.End <= lo || s.Start >= hi {
			continue
		}
		if owner != "" && s.Addr() != owner {
			return "", fmt.Errorf("[%v,%v) is on two nodes: %+v", lo, hi, m.Shards)
		}
		owner = s.Addr()
	}
	return owner, nil
}

// preload writes 400 keys of 100 bytes through the proxy: the moves of
// the kill tests copy them.
func (r *reshard) preload(t *testing.T) {
	p := proxyClient(t, r.c.ProxyAddr).Pipeline()
	for i := 0; i < 400; i++ {
		p.Set(context.Background(), "pre:"+strconv.Itoa(i), strings.Repeat("v", 100), 0)
	}
	if _, err := p.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestMoveKill: SIGKILL of the source node, the target node, the leading
// controller and a proxy, each in its own subtest, at the states
// snapshot, catch-up, fence (the range fenced on the source) and switched
// (after the epoch bump, before the nodes were told). After the restart
// (a standby controller takes over from a killed one; the killed proxy is
// started after the move and must come up on the current map) the move
// completed or was rolled back, no reply was wrong, and every key reads
// its last acknowledged value through both proxies.
func TestMoveKill(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	for _, victim := range []string{"source", "target", "controller", "proxy"} {
		t.Run(victim, func(t *testing.T) {
			r := startReshard(t, 2)
			r.preload(t)
			for _, state := range []string{etcdmap.MoveSnapshot, etcdmap.MoveCatchUp, etcdmap.MoveFence, etcdmap.MoveSwitched} {
				t.Run(state, func(t *testing.T) { r.t = t; r.moveOnce(t, victim, state) })
			}
		})
	}
}

// TestMoveKillNodeStates: SIGKILL of the source node and of the target
// node, each in its own subtest, at the states planned (before the
// target's drop and the stream's start), target-ready (before the
// stream's start) and cleanup (after the switch, before or during the
// source's drop of the moved keys), with the same checks as TestMoveKill:
// the move completed or was rolled back, no reply was wrong, every key
// reads its last acknowledged value, and the node that does not own the
// range keeps none of its keys.
func TestMoveKillNodeStates(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	r := startReshard(t, 2)
	r.preload(t)
	for _, victim := range []string{"source", "target"} {
		for _, state := range []string{etcdmap.MovePlanned, etcdmap.MoveTargetReady, etcdmap.MoveCleanup} {
			t.Run(victim+"/"+state, func(t *testing.T) { r.t = t; r.moveOnce(t, victim, state) })
		}
	}
}

// TestMoveEtcdDown: etcd stops while a move is in catch-up; the proxies
// keep serving reads and writes on the map they have, the move waits, and
// it completes once etcd is back.
func TestMoveEtcdDown(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	r := startReshard(t, 2)
	r.startController("ctl-a", "catch-up=1s")
	a := proxyClient(t, r.c.ProxyAddr)
	var clients []*redis.Client
	for i := 0; i < 4; i++ {
		clients = append(clients, proxyClient(t, r.c.ProxyAddr), proxyClient(t, r.proxy.Addr))
	}
	load := startLoader(clients, 30, "ed")
	to := r.c.Map.Shards[1].Addr()
	id := r.submit(etcdmap.Request{Kind: "move", Lo: movedLo, Hi: movedHi, Node: to})
	r.waitState(id, etcdmap.MoveCatchUp)
	cp, pp := r.te.e.ClientPort, r.te.e.PeerPort
	r.te.stop()
	load.mu.Lock()
	before := load.ops
	load.mu.Unlock()
	time.Sleep(time.Second)
	load.mu.Lock()
	during := load.ops - before
	load.mu.Unlock()
	if during == 0 {
		t.Fatal("no command was acknowledged while etcd was down")
	}
	r.te.restart(cp, pp)
	ch := r.outcome(id)
	if ch.State != "done" {
		t.Fatalf("the move after etcd came back: %+v", ch)
	}
	time.Sleep(100 * time.Millisecond)
	load.finish(t, a, proxyClient(t, r.proxy.Addr))
	if owner, err := ownerOfRange(r.etcdMap(), movedLo, movedHi); err != nil || owner != to {
		t.Fatalf("the range is on %s after the move (%v), want %s", owner, err, to)
	}
	t.Logf("%d commands acknowledged in the second etcd was down", during)
}

// TestMoveAbort: `shardkv abort` of a move while the range is fenced, of
// one whose target was killed (and is started again while the abort waits
// for it), and of one whose target stays down past the abort's wait
// (--abort-wait 1s; started again only after the move was recorded
// aborted, with its copy left, which the leader then drops): the request
// fails, the map keeps the range on the source, which serves its writes
// again, the target keeps no key of it, and status reports the aborted
// move.
func TestMoveAbort(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	r := startReshard(t, 2)
	pre := proxyClient(t, r.c.ProxyAddr)
	for i := 0; i < 200; i++ {
		must(t, pre.Set(context.Background(), "pre:"+strconv.Itoa(i), strings.Repeat("v", 100), 0).Err())
	}
	ef := []string{"--etcd", r.te.endpoint(), "--cluster", etcdCluster}
	from, to := r.c.Map.Shards[0].Addr(), r.c.Map.Shards[1].Addr()
	for _, tc := range []struct{ name, hold, wait string }{{"fenced", "fence=3s", "30s"}, {"target-down", "catch-up=600ms", "30s"}, {"target-gone", "catch-up=600ms", "1s"}} {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			r.startController("ctl-a", tc.hold, "--abort-wait", tc.wait)
			defer r.stopControllers()
			a := proxyClient(t, r.c.ProxyAddr)
			load := startLoader([]*redis.Client{a, proxyClient(t, r.proxy.Addr)}, 30, "ab"+strings.ReplaceAll(tc.name, "-", ""))
			id := r.submit(etcdmap.Request{Kind: "move", Lo: movedLo, Hi: movedHi, Node: to})
			target := r.nodeAt(to)
			if tc.name == "fenced" {
				r.waitState(id, etcdmap.MoveFence)
				r.waitFenced(from)
			} else {
				r.waitState(id, etcdmap.MoveCatchUp)
				target.Signal(t, syscall.SIGKILL)
				target.WaitExit(t)
			}
			done := make(chan CLIResult, 1)
			go func() { done <- runCLI(t, nil, append([]string{"abort", id, "--reason", "test"}, ef...)...) }()
			r.waitState(id, etcdmap.MoveAborting)
			// The source lifts its fence in aborting (the target may still
			// be down): a write to the range is acknowledged soon.
			k := keyBetween(t, "abortw"+tc.name, movedLo, movedHi)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				err := a.Set(context.Background(), k, "after-abort", 0).Err()
				if err == nil {
					break
				}
				if !strings.HasPrefix(err.Error(), "TRYAGAIN") || time.Now().After(deadline) {
					t.Fatalf("SET %s in the aborting move's range: %v", k, err)
				}
			}
			if tc.name == "target-down" {
				target.Start(t)
				target.WaitReady(t)
			}
			res := <-done
			if res.Code != 0 || !strings.Contains(res.Stdout, "aborted: move "+id+".1 aborted") {
				t.Fatalf("shardkv abort: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
			}
			if tc.name == "target-gone" {
				if rec := r.waitState(id, etcdmap.MoveAborted); !rec.CopyLeft || target.Running() {
					t.Fatalf("aborted with the target down: %+v", rec)
				}
				target.Start(t)
				target.WaitReady(t)
				// The leader drops the copy the target kept on disk.
				for deadline := time.Now().Add(30 * time.Second); r.waitState(id, etcdmap.MoveAborted).CopyLeft; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the aborted move's copy on the returned target is not dropped")
					}
				}
			}
			load.finish(t, a, proxyClient(t, r.proxy.Addr))
			if owner, err := ownerOfRange(r.etcdMap(), movedLo, movedHi); err != nil || owner != from {
				t.Fatalf("the aborted move left the range on %s (%v), want the source %s", owner, err, from)
			}
			if n := rangeKeys(t, to, movedLo, movedHi); n != 0 {
				t.Fatalf("the target keeps %d keys of the aborted move", n)
			}
			if v, err := a.Get(context.Background(), k).Result(); err != nil || v != "after-abort" {
				t.Fatalf("GET %s: %q %v", k, v, err)
			}
			st := runCLI(t, nil, append([]string{"-addr", r.c.ProxyAddr, "status"}, ef...)...)
			if !strings.Contains(st.Stdout, "finished: move "+id+".1") || !strings.Contains(st.Stdout, "aborted, ") || !strings.Contains(st.Stdout, "bytes: aborted by the operator: test") {
				t.Fatalf("shardkv status after the abort: exit %d\n%s%s", st.Code, st.Stdout, st.Stderr)
			}
		})
	}
}

// TestMoveDeposedController: the leading controller is paused (SIGSTOP)
// before its first step past its lease; the standby takes over and fences
// the range; the paused one, continued then, stops (its session's end or
// its leadership check, whichever comes first) and sends the nodes
// nothing: had it done its step, it would have ended the standby's stream
// and lifted its fence, and the move would have needed a second attempt.
// The move completes in its first attempt at the epoch of its switch.
func TestMoveDeposedController(t *testing.T) {
	r := startReshard(t, 2)
	ctlA := r.startController("ctl-a", "planned=2500ms")
	if r.leader() != "ctl-a" {
		t.Fatal("ctl-a does not lead")
	}
	r.startController("ctl-b", "fence=2s")
	defer r.stopControllers()
	a := proxyClient(t, r.c.ProxyAddr)
	load := startLoader([]*redis.Client{a, proxyClient(t, r.proxy.Addr)}, 30, "dep")
	from, to := r.c.Map.Shards[0].Addr(), r.c.Map.Shards[1].Addr()
	id := r.submit(etcdmap.Request{Kind: "move", Lo: movedLo, Hi: movedHi, Node: to})
	r.waitState(id, etcdmap.MovePlanned)
	// ctl-a's election revision, which its node commands carry as REV.
	el, err := r.cli.Get(context.Background(), etcdmap.Prefix(etcdCluster)+"election", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(el.Kvs) == 0 || string(el.Kvs[0].Value) != "ctl-a" {
		t.Fatalf("ctl-a's election key: %v %v", el, err)
	}
	revA := strconv.FormatInt(el.Kvs[0].CreateRevision, 10)
	ctlA.Signal(t, syscall.SIGSTOP)
	r.waitState(id, etcdmap.MoveFence) // ctl-b leads and drives the move
	r.waitFenced(from)
	// The one command ctl-a could send late (paused between its check
	// and the command): the unfence of its planned step. The source has
	// seen ctl-b's newer revision with the fence and refuses it.
	src := redis.NewClient(&redis.Options{Addr: from, Password: reshardPW, MaxRetries: -1, PoolSize: 1})
	defer src.Close()
	if err := src.Do(context.Background(), "SHARD.UNFENCE", rangemap.FormatPosition(movedLo), rangemap.FormatPosition(movedHi), "REV", revA).Err(); err == nil ||
		!strings.HasPrefix(err.Error(), "ERR stale controller: revision "+revA+", this node has seen ") {
		t.Fatalf("a late SHARD.UNFENCE of the deposed leader: %v, want the stale controller error", err)
	}
	r.waitFenced(from)
	ctlA.Signal(t, syscall.SIGCONT)
	deadline := time.Now().Add(30 * time.Second)
	// It stops either on reading its election key or on its session's
	// end, whichever it notices first.
	for tail := ctlA.LogTail(50); !strings.Contains(tail, "no longer the leader") && !strings.Contains(tail, "lost the lead"); tail = ctlA.LogTail(50) {
		if time.Now().After(deadline) {
			t.Fatalf("the continued controller never saw it was deposed\n%s", ctlA.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ch := r.outcome(id)
	if ch.State != "done" {
		t.Fatalf("the move under the standby: %+v", ch)
	}
	load.finish(t, a, proxyClient(t, r.proxy.Addr))
	epoch := r.etcdMap().Epoch
	moves, err := etcdmap.ReadMoves(context.Background(), r.cli, etcdCluster, id+".")
	if err != nil || len(moves) != 1 || moves[0].State != etcdmap.MoveDone || moves[0].Epoch != epoch || moves[0].Attempt != 1 {
		t.Fatalf("after the deposed controller woke: moves %+v (%v), map epoch %d; want done in attempt 1 at the map's epoch", moves, err, epoch)
	}
	if owner, err := ownerOfRange(r.etcdMap(), movedLo, movedHi); err != nil || owner != to {
		t.Fatalf("the range is on %s (%v), want %s", owner, err, to)
	}
}
