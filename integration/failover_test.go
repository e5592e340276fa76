package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/rangemap"
)

const failoverPass = "nodepw"

// replCluster is shards with replicas behind a proxy, with an embedded
// etcd and a controller running the failover.
type replCluster struct {
	t     *testing.T
	dir   string
	etcd  *testEtcd
	nodes map[string]*Proc // by address
	proxy *Proc
	ctrl  *Proc
	rdb   *redis.Client
}

// startReplCluster starts shards shards of replicas replicas each, with
// min_acks minAcks, every node with -etcd, the controller with -failover
// and the proxy on the etcd map; it returns once a write reaches every
// shard.
func startReplCluster(t *testing.T, shards, replicas, minAcks int, ctrlEnv ...string) *replCluster {
	t.Helper()
	needBinaries(t)
	rc := &replCluster{t: t, dir: t.TempDir(), etcd: startTestEtcd(t), nodes: map[string]*Proc{}}
	ports := freePorts(t, shards*(1+replicas)+1)
	m := &rangemap.Map{}
	for i := 0; i < shards; i++ {
		s := rangemap.Shard{Name: fmt.Sprintf("s%d", i), Start: float64(i) / float64(shards), End: float64(i+1) / float64(shards),
			Host: "127.0.0.1", Port: ports[i*(1+replicas)], MinAcks: minAcks}
		for j := 1; j <= replicas; j++ {
			s.Replicas = append(s.Replicas, rangemap.Replica{Host: "127.0.0.1", Port: ports[i*(1+replicas)+j]})
		}
		m.Shards = append(m.Shards, s)
	}
	m.Shards[shards-1].End = 1
	seedEtcd(t, rc.etcd.endpoint(), m)
	t.Cleanup(rc.cleanup)
	for _, s := range m.Shards {
		for _, a := range append([]string{s.Addr()}, s.ReplicaAddrs()...) {
			name := "node-" + strings.ReplaceAll(a, ":", "-")
			p := &Proc{Name: name, Bin: bin("shardkv-node"), Addr: a, Password: failoverPass,
				LogPath: filepath.Join(rc.dir, "logs", name+".log"),
				Args: []string{"-addr", a, "-dir", filepath.Join(rc.dir, "data", name), "-log-level", "info",
					"-requirepass", failoverPass, "-etcd", rc.etcd.endpoint(), "-cluster", etcdCluster, "-failover"}}
			rc.nodes[a] = p
			p.Start(t)
		}
	}
	for _, p := range rc.nodes {
		p.WaitReady(t)
	}
	rc.ctrl = &Proc{Name: "controller", Bin: bin("shardkv"), LogPath: filepath.Join(rc.dir, "logs", "controller.log"),
		Args: []string{"controller", "--etcd", rc.etcd.endpoint(), "--cluster", etcdCluster, "--id", "test",
			"--failover", "--node-password", failoverPass}, Env: ctrlEnv}
	rc.ctrl.Start(t)
	paddr := fmt.Sprintf("127.0.0.1:%d", ports[len(ports)-1])
	rc.proxy = &Proc{Name: "proxy", Bin: bin("shardkv-proxy"), Addr: paddr, LogPath: filepath.Join(rc.dir, "logs", "proxy.log"),
		Args: []string{"-addr", paddr, "-etcd", rc.etcd.endpoint(), "-cluster", etcdCluster, "-node-password", failoverPass,
			"-timeout", "2s", "-log-level", "info"}}
	rc.proxy.Start(t)
	rc.proxy.WaitReady(t)
	rc.rdb = redis.NewClient(&redis.Options{Addr: paddr, MaxRetries: -1, DialTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, PoolSize: 32})
	ctx := context.Background()
	for i := range m.Shards {
		k := keyBetween(t, "ready", m.Shards[i].Start, m.Shards[i].End)
		deadline := time.Now().Add(60 * time.Second)
		for rc.rdb.Set(ctx, k, "1", 0).Err() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("shard %d never took a write: %v\n%s", i, rc.rdb.Set(ctx, k, "1", 0).Err(), rc.ctrl.LogTail(30))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return rc
}

func (rc *replCluster) cleanup() {
	if rc.rdb != nil {
		rc.rdb.Close()
	}
	procs := []*Proc{rc.proxy, rc.ctrl}
	for _, p := range rc.nodes {
		procs = append(procs, p)
	}
	for _, p := range procs {
		if p != nil {
			p.Kill()
		}
	}
	for _, p := range procs {
		if p != nil {
			p.checkLog(rc.t)
		}
	}
}

// etcdMap reads the map from etcd.
func (rc *replCluster) etcdMap() *rangemap.Map {
	rc.t.Helper()
	cli, err := etcdmap.Dial(rc.etcd.endpoint())
	if err != nil {
		rc.t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := etcdmap.Read(ctx, cli, etcdCluster)
	if err != nil {
		rc.t.Fatal(err)
	}
	return snap.Map
}

func (rc *replCluster) nodeClient(addr string, readonly bool) *redis.Client {
	o := &redis.Options{Addr: addr, Password: failoverPass, MaxRetries: -1, PoolSize: 2, ReadTimeout: 10 * time.Second}
	if readonly {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	}
	c := redis.NewClient(o)
	rc.t.Cleanup(func() { c.Close() })
	return c
}

// writers write unique keys through the proxy until stopped and keep the
// acknowledged ones; the time of every acknowledgement is kept too, for
// the unavailability after a kill.
type writers struct {
	stop  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[string]string
	times []time.Time
	// note, when set, is told of each acknowledgement (under mu).
	note func(key string, at time.Time)
	// prefix starts every key, so that two sets of writers write
	// different keys.
	prefix string
}

func startWriters(rdb *redis.Client, n int) *writers {
	w := &writers{acked: map[string]string{}}
	w.run(rdb, n)
	return w
}

// run starts n goroutines writing.
func (w *writers) run(rdb *redis.Client, n int) {
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			ctx := context.Background()
			for i := 0; !w.stop.Load(); i++ {
				k, v := fmt.Sprintf("%sw%d:%d", w.prefix, g, i), fmt.Sprintf("v%d", i)
				if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				w.mu.Lock()
				w.acked[k] = v
				at := time.Now()
				w.times = append(w.times, at)
				if w.note != nil {
					w.note(k, at)
				}
				w.mu.Unlock()
			}
		}()
	}
}

func (w *writers) end() {
	w.stop.Store(true)
	w.wg.Wait()
}

func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitAcked waits until n more writes were acknowledged.
func (w *writers) waitAcked(t *testing.T, n int) {
	t.Helper()
	want := w.count() + n
	deadline := time.Now().Add(60 * time.Second)
	for w.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("writes stalled at %d acknowledged", w.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// firstAckAfter is the first acknowledgement after t0.
func (w *writers) firstAckAfter(t0 time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.times), func(i int) bool { return w.times[i].After(t0) })
	if i == len(w.times) {
		return time.Time{}, false
	}
	return w.times[i], true
}

// checkAcked reads every acknowledged key through the proxy.
func (w *writers) checkAcked(t *testing.T, rdb *redis.Client) {
	t.Helper()
	if lost, total := w.lostOf(t, rdb); len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes lost, such as %v", len(lost), total, lost[:min(10, len(lost))])
	}
}

// TestFailoverKillPrimary: under writes acknowledged by one replica (of
// two), SIGKILL the primary: the controller promotes a replica at the next
// epoch, the proxy routes there, no acknowledged write is lost, and the old
// primary restarted rejoins as a replica, its copy equal to the new
// primary's.
func TestFailoverKillPrimary(t *testing.T) {
	rc := startReplCluster(t, 1, 2, 1)
	m0 := rc.etcdMap()
	old := m0.Shards[0].Addr()
	w := startWriters(rc.rdb, 4)
	defer w.end()
	w.waitAcked(t, 2000)
	killed := time.Now()
	rc.nodes[old].Signal(t, syscall.SIGKILL)
	rc.nodes[old].WaitExit(t)
	dead := time.Now() // an acknowledgement after this comes from the new primary
	w.waitAcked(t, 2000)
	back, _ := w.firstAckAfter(dead)
	t.Logf("failover: writes acknowledged again %v after the SIGKILL", back.Sub(killed).Round(time.Millisecond))
	m1 := rc.etcdMap()
	if m1.Epoch <= m0.Epoch || m1.Shards[0].Addr() == old {
		t.Fatalf("no promotion in the map: epoch %d -> %d, primary %s -> %s", m0.Epoch, m1.Epoch, old, m1.Shards[0].Addr())
	}
	if reps := m1.Shards[0].ReplicaAddrs(); len(reps) != 2 || reps[1] != old {
		t.Fatalf("the old primary is not the last replica: %v", reps)
	}
	// The old primary comes back: it is told it is a replica and takes
	// the new primary's data.
	rc.nodes[old].Start(t)
	rc.nodes[old].WaitReady(t)
	w.waitAcked(t, 1000)
	w.end()
	w.checkAcked(t, rc.rdb)
	newp := rc.nodeClient(m1.Shards[0].Addr(), false)
	oldc := rc.nodeClient(old, true)
	waitCaughtUp(t, newp, oldc)
	if st := nodeInfo(t, oldc, "replication"); st["role"] != "slave" || st["master_port"] != fmt.Sprint(m1.Shards[0].Port) {
		t.Fatalf("the old primary after its restart: %v", st)
	}
	all := func(string) bool { return true }
	if want, got := redistest.Dump(t, newp, all), redistest.Dump(t, oldc, all); len(want) != len(got) {
		t.Fatalf("the rejoined replica holds %d keys, the primary %d", len(got), len(want))
	} else {
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: rejoined replica %q, primary %q", k, got[k], v)
			}
		}
	}
	if !strings.Contains(rc.ctrl.LogTail(200), "failover: replica promoted") {
		t.Fatalf("the controller did not log the promotion:\n%s", rc.ctrl.LogTail(40))
	}
}

// directWriter writes unique keys straight to one node (a client of a
// stale route) and keeps each acknowledgement with its time.
type directWriter struct {
	writers
	last atomic.Int64 // Unix nanoseconds of the last acknowledgement
}

func startDirectWriter(c *redis.Client) *directWriter {
	d := &directWriter{writers: writers{acked: map[string]string{}}}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx := context.Background()
		for i := 0; !d.stop.Load(); i++ {
			k, v := fmt.Sprintf("direct:%d", i), fmt.Sprintf("v%d", i)
			if err := c.Set(ctx, k, v, 0).Err(); err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			d.last.Store(time.Now().UnixNano())
			d.mu.Lock()
			d.acked[k] = v
			d.mu.Unlock()
		}
	}()
	return d
}

// lostOf returns the acknowledged writes of w that do not read back
// through rdb, and how many were acknowledged.
func (w *writers) lostOf(t *testing.T, rdb *redis.Client) (lost []string, total int) {
	t.Helper()
	ctx := context.Background()
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.acked))
	for k := range w.acked {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		b := keys[:min(500, len(keys))]
		keys = keys[len(b):]
		vs, err := rdb.MGet(ctx, b...).Result()
		if err != nil {
			t.Fatalf("MGET: %v", err)
		}
		for i, k := range b {
			if s, _ := vs[i].(string); s != w.acked[k] {
				lost = append(lost, k)
			}
		}
	}
	return lost, len(w.acked)
}

// waitEpochAbove waits until the etcd map's epoch is above e.
func (rc *replCluster) waitEpochAbove(e uint64) *rangemap.Map {
	rc.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := rc.etcdMap(); m.Epoch > e {
			return m
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("the map stayed at epoch %d\n%s", e, rc.ctrl.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailoverFrozenPrimary: a primary frozen with SIGSTOP past its lease
// (asynchronous replication, so only the lease stops it) is replaced; once
// resumed it acknowledges no write, not even to a client that still writes
// to it directly, and rejoins as a replica. The writes acknowledged before
// the freeze and lost with it are counted (asynchronous mode's loss).
func TestFailoverFrozenPrimary(t *testing.T) {
	rc := startReplCluster(t, 1, 2, 0)
	m0 := rc.etcdMap()
	old := m0.Shards[0].Addr()
	w := startWriters(rc.rdb, 4)
	defer w.end()
	d := startDirectWriter(rc.nodeClient(old, false))
	defer d.end()
	w.waitAcked(t, 2000)
	d.waitAcked(t, 200)
	rc.nodes[old].Signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	m1 := rc.waitEpochAbove(m0.Epoch)
	tookOver := time.Now()
	w.waitAcked(t, 1000)
	resumed := time.Now()
	rc.nodes[old].Signal(t, syscall.SIGCONT)
	oldc := rc.nodeClient(old, true)
	newp := rc.nodeClient(m1.Shards[0].Addr(), false)
	deadline := time.Now().Add(60 * time.Second)
	for nodeInfo(t, oldc, "replication")["role"] != "slave" {
		if time.Now().After(deadline) {
			t.Fatalf("the resumed primary did not rejoin as a replica\n%s", rc.nodes[old].LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitCaughtUp(t, newp, oldc)
	w.end()
	d.end()
	if last := time.Unix(0, d.last.Load()); last.After(resumed) {
		t.Fatalf("the old primary acknowledged a write %v after it was resumed (taken over %v after the freeze)",
			last.Sub(resumed), tookOver.Sub(stopped))
	}
	// What the proxy's clients had acknowledged after the takeover is
	// all there; before it, asynchronous replication may lose the tail.
	lost, total := w.lostOf(t, rc.rdb)
	dlost, dtotal := d.lostOf(t, rc.rdb)
	t.Logf("frozen primary taken over %v after SIGSTOP; asynchronous loss: %d of %d writes through the proxy, %d of %d direct",
		tookOver.Sub(stopped).Round(time.Millisecond), len(lost), total, len(dlost), dtotal)
	if !strings.Contains(rc.nodes[old].LogTail(400), "rejoining as a replica") {
		t.Fatalf("the old primary did not say it rejoins:\n%s", rc.nodes[old].LogTail(40))
	}
}

// TestFailoverSafeMode: when more than half of the nodes stop answering at
// once, the controller fails over nothing; once they answer again the
// cluster serves writes at the same epoch.
func TestFailoverSafeMode(t *testing.T) {
	rc := startReplCluster(t, 3, 1, 0)
	m0 := rc.etcdMap()
	frozen := []string{m0.Shards[0].Addr(), m0.Shards[1].Addr(), m0.Shards[2].Addr(), m0.Shards[0].ReplicaAddrs()[0]}
	for _, a := range frozen {
		rc.nodes[a].Signal(t, syscall.SIGSTOP)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(rc.ctrl.LogTail(200), "safe mode: 4 of 6 nodes look dead") {
		if time.Now().After(deadline) {
			t.Fatalf("no safe mode:\n%s", rc.ctrl.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := rc.etcdMap(); m.Epoch != m0.Epoch {
		t.Fatalf("failover in safe mode: epoch %d -> %d", m0.Epoch, m.Epoch)
	}
	for _, a := range frozen {
		rc.nodes[a].Signal(t, syscall.SIGCONT)
	}
	w := startWriters(rc.rdb, 4)
	w.waitAcked(t, 1000)
	w.end()
	w.checkAcked(t, rc.rdb)
	if m := rc.etcdMap(); m.Epoch != m0.Epoch {
		t.Fatalf("a failover after safe mode: epoch %d -> %d", m0.Epoch, m.Epoch)
	}
	if !strings.Contains(rc.ctrl.LogTail(200), "leaving safe mode") {
		t.Fatalf("the controller did not leave safe mode:\n%s", rc.ctrl.LogTail(30))
	}
}

// shardWriters are writers whose acknowledgements are kept per shard of m.
type shardWriters struct {
	writers
	m     *rangemap.Map
	times [][]time.Time // by shard
}

func startShardWriters(rdb *redis.Client, m *rangemap.Map, n int) *shardWriters {
	w := &shardWriters{writers: writers{acked: map[string]string{}}, m: m, times: make([][]time.Time, len(m.Shards))}
	w.note = func(k string, at time.Time) {
		s := m.Find(m.Position([]byte(k)))
		w.times[s] = append(w.times[s], at)
	}
	w.run(rdb, n)
	return w
}

// ackAfter waits for the first acknowledgement on shard s after t0.
func (w *shardWriters) ackAfter(t *testing.T, s int, t0 time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.mu.Lock()
		ts := w.times[s]
		i := sort.Search(len(ts), func(i int) bool { return ts[i].After(t0) })
		var at time.Time
		if i < len(ts) {
			at = ts[i]
		}
		w.mu.Unlock()
		if !at.IsZero() {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard %d took no write since %v", s, t0)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// maxGap is the longest time without an acknowledgement on shard s
// between from and to.
func (w *shardWriters) maxGap(s int, from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, at := range w.times[s] {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

// failoverKills is the count.
const failoverKills = 20

// TestFailoverRepeatedKills: three shards of one replica each, writes
// acknowledged by the replica; repeated SIGKILLs of a primary under load
// (failoverKills, each old primary killed again after it rejoined),
// each followed by the failover and the old primary's restart as a
// replica, then the three primaries killed at once. Every acknowledged
// write is there at the end; the unavailability of the shard's keys and
// the longest pause of the other shards are reported.
func TestFailoverRepeatedKills(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	rc := startReplCluster(t, 3, 1, 1)
	m := rc.etcdMap()
	w := startShardWriters(rc.rdb, m, 6)
	defer w.end()
	w.waitAcked(t, 1000)
	var downs []time.Duration
	var others time.Duration
	for k := 0; k < failoverKills; k++ {
		s := k % 3
		cur := rc.etcdMap()
		victim := cur.Shards[s].Addr()
		killed := time.Now()
		rc.nodes[victim].Signal(t, syscall.SIGKILL)
		rc.nodes[victim].WaitExit(t)
		dead := time.Now()
		rc.waitEpochAbove(cur.Epoch)
		// A supervisor restarts the node; it rejoins as the replica.
		rc.nodes[victim].Start(t)
		back := w.ackAfter(t, s, dead)
		downs = append(downs, back.Sub(killed))
		for o := 0; o < 3; o++ {
			if o != s {
				others = max(others, w.maxGap(o, killed, back))
			}
		}
		// The next kill of this shard needs its replica synced again.
		rc.nodes[victim].WaitReady(t)
		waitCaughtUp(t, rc.nodeClient(rc.etcdMap().Shards[s].Addr(), false), rc.nodeClient(victim, true))
	}
	t.Logf("%d kills: shard writable again after p50 %v, max %v; longest pause of another shard's writes %v",
		failoverKills, percentile(downs, 0.5).Round(time.Millisecond), percentile(downs, 1).Round(time.Millisecond), others.Round(time.Millisecond))

	cur := rc.etcdMap()
	killed := time.Now()
	for _, sh := range cur.Shards {
		rc.nodes[sh.Addr()].Signal(t, syscall.SIGKILL)
	}
	for _, sh := range cur.Shards {
		rc.nodes[sh.Addr()].WaitExit(t)
	}
	dead := time.Now() // an acknowledgement after this comes from a new primary
	// The old primaries are restarted once the map has replaced them all
	// (restarted before their leases ran out, they would simply resume).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := rc.etcdMap()
		moved := 0
		for s, sh := range m.Shards {
			if sh.Addr() != cur.Shards[s].Addr() {
				moved++
			}
		}
		if moved == len(m.Shards) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d shards failed over\n%s", moved, rc.ctrl.LogTail(30))
		}
	}
	for _, sh := range cur.Shards {
		rc.nodes[sh.Addr()].Start(t)
	}
	var all []time.Duration
	for s := range cur.Shards {
		all = append(all, w.ackAfter(t, s, dead).Sub(killed).Round(time.Millisecond))
	}
	after := rc.etcdMap()
	t.Logf("three primaries killed at once: shards writable again after %v; map epochs %d -> %d", all, cur.Epoch, after.Epoch)
	for s, sh := range after.Shards {
		if sh.Addr() == cur.Shards[s].Addr() {
			t.Errorf("shard %s was not failed over", sh.Name)
		}
	}
	if after.Epoch > cur.Epoch+3 {
		t.Errorf("three failovers took epochs %d -> %d", cur.Epoch, after.Epoch)
	}
	w.waitAcked(t, 500)
	w.end()
	w.checkAcked(t, rc.rdb)
}

// TestFailoverReplaceLostNode: a replica whose disk is lost is replaced by
// a new, empty node named in the map in its place: the controller makes it
// a replica, it is filled, and the shard takes writes acknowledged by it.
func TestFailoverReplaceLostNode(t *testing.T) {
	rc := startReplCluster(t, 1, 1, 1)
	m0 := rc.etcdMap()
	w := startWriters(rc.rdb, 4)
	w.waitAcked(t, 2000)
	w.end()
	lost := m0.Shards[0].ReplicaAddrs()[0]
	rc.nodes[lost].Signal(t, syscall.SIGKILL)
	rc.nodes[lost].WaitExit(t)
	// min_acks 1 and no replica: the primary refuses writes until the new
	// node holds the data.
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for err := rc.rdb.Set(ctx, "probe", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOREPLICAS"); err = rc.rdb.Set(ctx, "probe", "1", 0).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("writes without a replica: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	p := &Proc{Name: "new-node", Bin: bin("shardkv-node"), Addr: addr, Password: failoverPass,
		LogPath: filepath.Join(rc.dir, "logs", "new-node.log"),
		Args: []string{"-addr", addr, "-dir", filepath.Join(rc.dir, "data", "new-node"), "-log-level", "info",
			"-requirepass", failoverPass, "-etcd", rc.etcd.endpoint(), "-cluster", etcdCluster, "-failover"}}
	rc.nodes[addr] = p
	p.Start(t)
	p.WaitReady(t)
	port := portOf(t, addr)
	changeMap(t, rc.etcd.endpoint(), func(m *rangemap.Map) {
		m.Shards[0].Replicas = []rangemap.Replica{{Host: "127.0.0.1", Port: port}}
	})
	w2 := startWriters(rc.rdb, 4)
	w2.waitAcked(t, 1000)
	w2.end()
	w.checkAcked(t, rc.rdb)
	w2.checkAcked(t, rc.rdb)
	primary, fresh := rc.nodeClient(m0.Shards[0].Addr(), false), rc.nodeClient(addr, true)
	waitCaughtUp(t, primary, fresh)
	all := func(string) bool { return true }
	want, got := redistest.Dump(t, primary, all), redistest.Dump(t, fresh, all)
	if len(want) < 2000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("the new replica holds %d keys, the primary %d, not the same", len(got), len(want))
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestFailoverEtcdDown: with etcd down no lease can be refreshed, so the
// primaries stop taking writes once their leases may have ended (reads go
// on); when etcd is back they take writes again, at the same epoch.
func TestFailoverEtcdDown(t *testing.T) {
	rc := startReplCluster(t, 1, 1, 0)
	m0 := rc.etcdMap()
	ctx := context.Background()
	if err := rc.rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cp, pp := rc.etcd.e.ClientPort, rc.etcd.e.PeerPort
	rc.etcd.stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := rc.rdb.Set(ctx, "while-down", "1", 0).Err()
		if err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN this node's primary role is not confirmed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes with etcd down for a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, err := rc.rdb.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Fatalf("GET with etcd down: %q, %v", v, err)
	}
	rc.etcd.restart(cp, pp)
	deadline = time.Now().Add(60 * time.Second)
	for err := rc.rdb.Set(ctx, "after", "1", 0).Err(); err != nil; err = rc.rdb.Set(ctx, "after", "1", 0).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("writes after etcd came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := rc.etcdMap(); m.Epoch != m0.Epoch || m.Shards[0].Addr() != m0.Shards[0].Addr() {
		t.Fatalf("a failover while etcd was down: epoch %d -> %d", m0.Epoch, m.Epoch)
	}
}

// TestFailoverControllerCrashAfterPromotion: the controller dies right
// after the promotion's transaction, before it told any node: the map names
// the new primary, which still follows the dead one; the next controller's
// reconciliation tells the nodes their roles and the shard takes writes
// again, with no acknowledged write lost and no second promotion.
func TestFailoverControllerCrashAfterPromotion(t *testing.T) {
	rc := startReplCluster(t, 1, 2, 1, "SHARDKV_FAILPOINTS=failover-after-promotion")
	m0 := rc.etcdMap()
	w := startWriters(rc.rdb, 4)
	defer w.end()
	w.waitAcked(t, 1000)
	rc.nodes[m0.Shards[0].Addr()].Signal(t, syscall.SIGKILL)
	rc.nodes[m0.Shards[0].Addr()].WaitExit(t)
	if err := rc.ctrl.WaitExit(t); err == nil {
		t.Fatal("the controller exited cleanly; the fail point did not fire")
	}
	m1 := rc.etcdMap()
	if m1.Epoch != m0.Epoch+1 || m1.Shards[0].Addr() == m0.Shards[0].Addr() {
		t.Fatalf("the map after the crash: epoch %d, primary %s", m1.Epoch, m1.Shards[0].Addr())
	}
	if st := nodeInfo(t, rc.nodeClient(m1.Shards[0].Addr(), true), "replication"); st["role"] != "slave" {
		t.Fatalf("the new primary was told before the crash: %v", st)
	}
	rc.ctrl.Env = nil
	rc.ctrl.Start(t)
	w.waitAcked(t, 1000)
	w.end()
	w.checkAcked(t, rc.rdb)
	if m := rc.etcdMap(); m.Epoch != m1.Epoch {
		t.Fatalf("a second promotion: epoch %d -> %d", m1.Epoch, m.Epoch)
	}
}

// TestFailoverAsyncLoss: with min_acks 0 (Redis's asynchronous
// replication) a SIGKILLed primary takes the writes it acknowledged and had
// not streamed yet with it; the test counts them and checks that every
// write acknowledged after the failover is kept.
func TestFailoverAsyncLoss(t *testing.T) {
	rc := startReplCluster(t, 1, 2, 0)
	m0 := rc.etcdMap()
	before := startWriters(rc.rdb, 4)
	before.waitAcked(t, 3000)
	rc.nodes[m0.Shards[0].Addr()].Signal(t, syscall.SIGKILL)
	rc.nodes[m0.Shards[0].Addr()].WaitExit(t)
	before.end()
	rc.waitEpochAbove(m0.Epoch)
	after := &writers{acked: map[string]string{}, prefix: "after-"}
	after.run(rc.rdb, 2)
	after.waitAcked(t, 1000)
	after.end()
	lost, total := before.lostOf(t, rc.rdb)
	t.Logf("asynchronous mode: %d of %d writes acknowledged before the SIGKILL lost", len(lost), total)
	after.checkAcked(t, rc.rdb)
}
