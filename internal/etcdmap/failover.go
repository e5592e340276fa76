package etcdmap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/rangemap"
)

// Automatic failover (docs/REPLICATION.md, "Failover"): nodes keep a lease
// key alive in etcd; the leading controller probes every node of the map,
// declares a primary dead when its lease key is gone and several probes in
// a row failed, promotes the synced replica with the highest offset in one
// etcd transaction conditional on the leadership and the map's revision
// (the map's epoch+1), and tells every node the role the map gives it.

// LivePrefix is where the nodes' lease keys live.
func LivePrefix(cluster string) string { return Prefix(cluster) + "live/" }

// KeepLease holds a lease of ttl seconds with the key LivePrefix/addr
// under it until ctx ends. After every refresh etcd answered it calls
// valid with the time the refresh was sent plus the TTL (etcd expires the
// lease no earlier than that), and with the zero time when the lease was
// lost (etcd forgot it): a new one is taken then.
func KeepLease(ctx context.Context, cli *clientv3.Client, cluster, addr string, ttl int64, log hclog.Logger, valid func(time.Time)) {
	key := LivePrefix(cluster) + addr
	period := time.Duration(ttl) * time.Second / 3
	for ctx.Err() == nil {
		sent := time.Now()
		g, err := cli.Grant(ctx, ttl)
		if err == nil {
			_, err = cli.Put(ctx, key, strconv.FormatInt(time.Now().UnixMilli(), 10), clientv3.WithLease(g.ID))
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("etcd lease not granted; retrying", "error", err)
			}
			sleep(ctx, period)
			continue
		}
		valid(sent.Add(time.Duration(ttl) * time.Second))
		log.Info("etcd lease taken", "key", key, "ttl_s", ttl)
		for ctx.Err() == nil {
			sleep(ctx, period)
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, period)
			_, err := cli.KeepAliveOnce(rctx, g.ID)
			cancel()
			if err == nil {
				valid(sent.Add(time.Duration(ttl) * time.Second))
				continue
			}
			if errors.Is(err, rpcLeaseNotFound) || strings.Contains(err.Error(), "requested lease not found") {
				log.Warn("etcd lease expired: taking a new one", "key", key)
				valid(time.Time{})
				break
			}
			// etcd unreachable: the deadline passes by itself.
			if ctx.Err() == nil {
				log.Warn("etcd lease refresh failed", "error", err)
			}
		}
	}
}

// rpcLeaseNotFound is matched by text too: the typed error depends on the
// transport.
var rpcLeaseNotFound = errors.New("etcdserver: requested lease not found")

// crashAt kills the process with SIGKILL when SHARDKV_FAILPOINTS (comma
// separated) names point: the crash tests stop the controller exactly
// there. Only the integration tests set it.
func crashAt(point string) {
	for _, p := range strings.Split(os.Getenv("SHARDKV_FAILPOINTS"), ",") {
		if strings.TrimSpace(p) == point {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

// FailoverOptions configure the controller's failover.
type FailoverOptions struct {
	// NodePassword authenticates the controller to the nodes.
	NodePassword string
	// ProbeInterval is the time between probes of every node (200 ms).
	ProbeInterval time.Duration
	// ProbeFailures is how many probes in a row must fail, with the
	// node's lease key gone, for a primary to be dead (3).
	ProbeFailures int
}

func (o FailoverOptions) withDefaults() FailoverOptions {
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 200 * time.Millisecond
	}
	if o.ProbeFailures <= 0 {
		o.ProbeFailures = 3
	}
	return o
}

// nodeState is what one probe learned of a node (INFO replication).
type nodeState struct {
	ok        bool
	role      string // "master" or "slave"
	master    string // host:port followed, on a replica
	epoch     uint64
	confirmed bool
	synced    bool
	offset    int64 // slave_repl_offset, or master_repl_offset
	minAcks   int
}

// failover is the leader's failover state.
type failover struct {
	l       *Leader
	opts    FailoverOptions
	log     hclog.Logger
	clients map[string]*redis.Client
	fails   map[string]int
	safe    bool
}

// RunFailover probes, fails over and reconciles roles while l leads,
// until ctx ends.
func (l *Leader) RunFailover(ctx context.Context, opts FailoverOptions, log hclog.Logger) {
	f := &failover{l: l, opts: opts.withDefaults(), log: log, clients: map[string]*redis.Client{}, fails: map[string]int{}}
	defer func() {
		for _, c := range f.clients {
			c.Close()
		}
	}()
	t := time.NewTicker(f.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.Lost():
			return
		case <-t.C:
		}
		if err := f.check(ctx); err != nil && ctx.Err() == nil {
			log.Warn("failover check", "error", err)
		}
	}
}

func (f *failover) client(addr string) *redis.Client {
	c := f.clients[addr]
	if c == nil {
		c = redis.NewClient(&redis.Options{Addr: addr, Password: f.opts.NodePassword, MaxRetries: -1, PoolSize: 2,
			DialTimeout: f.opts.ProbeInterval, ReadTimeout: f.opts.ProbeInterval, WriteTimeout: f.opts.ProbeInterval})
		f.clients[addr] = c
	}
	return c
}

// probe reads every address's INFO replication in parallel.
func (f *failover) probe(ctx context.Context, addrs []string) map[string]nodeState {
	out := make(map[string]nodeState, len(addrs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range addrs {
		c := f.client(a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := readState(ctx, c)
			mu.Lock()
			out[a] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func readState(ctx context.Context, c *redis.Client) nodeState {
	s, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nodeState{}
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	st := nodeState{ok: true, role: m["role"], confirmed: m["repl_role_confirmed"] == "1", synced: m["repl_synced"] == "1"}
	st.epoch, _ = strconv.ParseUint(m["repl_epoch"], 10, 64)
	st.minAcks, _ = strconv.Atoi(m["min_acks"])
	if st.role == "slave" {
		st.master = m["master_host"] + ":" + m["master_port"]
		st.offset, _ = strconv.ParseInt(m["slave_repl_offset"], 10, 64)
	} else {
		st.offset, _ = strconv.ParseInt(m["master_repl_offset"], 10, 64)
	}
	return st
}

// check is one round: read the map and the lease keys, probe, fail over
// the dead primaries (unless in safe mode), then reconcile roles.
func (f *failover) check(ctx context.Context) error {
	l := f.l
	snap, err := Read(ctx, l.cli, l.cluster)
	if err != nil {
		return err
	}
	r, err := l.cli.Get(ctx, LivePrefix(l.cluster), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, kv := range r.Kvs {
		live[strings.TrimPrefix(string(kv.Key), LivePrefix(l.cluster))] = true
	}
	m := snap.Map
	var addrs []string
	seen := map[string]bool{}
	for _, s := range m.Shards {
		for _, a := range append([]string{s.Addr()}, s.ReplicaAddrs()...) {
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	states := f.probe(ctx, addrs)
	// Safe mode counts the nodes that fail their probes, whatever their
	// leases: the probes of nodes cut off together fail together, their
	// leases expire each at its own time, and a count of expired leases
	// would fail over the first few before it saw the blip.
	dead := map[string]bool{}
	suspects := 0
	for _, a := range addrs {
		if states[a].ok {
			f.fails[a] = 0
			continue
		}
		f.fails[a]++
		if f.fails[a] >= f.opts.ProbeFailures {
			suspects++
			if !live[a] {
				dead[a] = true
			}
		}
	}
	if 2*suspects > len(addrs) {
		if !f.safe {
			f.log.Error(fmt.Sprintf("safe mode: %d of %d nodes look dead; failover suspended", suspects, len(addrs)))
			f.safe = true
		}
		return nil
	}
	if f.safe {
		f.log.Info("leaving safe mode", "dead", suspects, "nodes", len(addrs))
		f.safe = false
	}
	next, promoted := f.decide(m, dead, live, states)
	if len(promoted) > 0 {
		err := l.ReplaceMap(ctx, snap, next)
		if err != nil {
			return fmt.Errorf("promotion not written: %w", err)
		}
		for old, nw := range promoted {
			f.log.Warn("failover: replica promoted", "dead_primary", old, "new_primary", nw, "epoch", next.Epoch,
				"offset", states[nw].offset)
		}
		crashAt("failover-after-promotion")
		m = next
		f.reconcile(ctx, m, states, true)
		return nil
	}
	f.reconcile(ctx, m, states, false)
	return nil
}

// decide returns the map with every dead primary replaced by its best
// replica (synced, alive, highest offset, the map's order on ties), the
// old primary last among the replicas; and the promotions, old -> new.
// The shards a split left on one node move together.
func (f *failover) decide(m *rangemap.Map, dead, live map[string]bool, states map[string]nodeState) (*rangemap.Map, map[string]string) {
	promoted := map[string]string{}
	next := *m
	next.Shards = append([]rangemap.Shard(nil), m.Shards...)
	for i, s := range next.Shards {
		old := s.Addr()
		if !dead[old] {
			continue
		}
		nw, ok := promoted[old]
		if !ok {
			best := -1
			for j, r := range s.Replicas {
				st := states[r.Addr()]
				if !st.ok || !live[r.Addr()] || st.role != "slave" || !st.synced {
					continue
				}
				if best < 0 || st.offset > states[s.Replicas[best].Addr()].offset {
					best = j
				}
			}
			if best < 0 {
				f.log.Error("primary dead and no synced replica to promote", "shard", s.Name, "primary", old)
				continue
			}
			nw = s.Replicas[best].Addr()
			promoted[old] = nw
		}
		var reps []rangemap.Replica
		var chosen rangemap.Replica
		for _, r := range s.Replicas {
			if r.Addr() == nw {
				chosen = r
			} else {
				reps = append(reps, r)
			}
		}
		s.Replicas = append(reps, rangemap.Replica{Host: s.Host, Port: s.Port})
		s.Host, s.Port = chosen.Host, chosen.Port
		next.Shards[i] = s
	}
	return &next, promoted
}

// reconcile tells each reachable node the role the map gives it when its
// own differs (or is not confirmed at the map's epoch). force sends it
// to every node (after a promotion: the probes predate the new map).
func (f *failover) reconcile(ctx context.Context, m *rangemap.Map, states map[string]nodeState, force bool) {
	type order struct {
		addr string
		args []any
	}
	var orders []order
	done := map[string]bool{}
	for _, s := range m.Shards {
		p := s.Addr()
		if st := states[p]; !done[p] && st.ok {
			done[p] = true
			if force || st.role != "master" || st.epoch != m.Epoch || !st.confirmed || st.minAcks != s.MinAcks {
				orders = append(orders, order{p, []any{"REPL.ROLE", "PRIMARY", m.Epoch, "MINACKS", s.MinAcks}})
			}
		}
		for _, r := range s.ReplicaAddrs() {
			if st := states[r]; !done[r] && st.ok {
				done[r] = true
				if force || st.role != "slave" || st.master != p || st.epoch != m.Epoch || !st.confirmed {
					orders = append(orders, order{r, []any{"REPL.ROLE", "REPLICA", p, m.Epoch}})
				}
			}
		}
	}
	var wg sync.WaitGroup
	for _, o := range orders {
		c := f.client(o.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Do(ctx, o.args...).Err(); err != nil {
				f.log.Warn("role not taken", "node", o.addr, "role", o.args[1], "error", err)
				return
			}
			f.log.Info("role told", "node", o.addr, "role", o.args[1], "epoch", m.Epoch)
		}()
	}
	wg.Wait()
}
