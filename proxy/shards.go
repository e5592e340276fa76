package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// shard is one node of the range map (every entry at one address) with its
// backend connections: one client per protocol version, so replies are
// forwarded as the node wrote them to clients of either version.
type shard struct {
	// idx is the shard's place in its table's nodes, which a client's
	// per-node request lists are indexed by.
	idx int
	// name is the node's first entry's name, which errors and INFO's
	// Shard_<name> section name it by.
	name string
	addr string
	// hashTags is the map's placement mode, pushed with the assignment; a
	// reload cannot change it (checkReload).
	hashTags bool
	// assign is the assignment pushed on every new connection; a reload
	// that changes the size, or a newer etcd map, replaces it.
	assign atomic.Pointer[assignment]
	resp2  *backend.Client
	resp3  *backend.Client
	// dbs are the clients for the other databases (SELECT 1-15), by
	// database and protocol (0 RESP2, 1 RESP3): connections that sent
	// SELECT in their handshake, made when a client first selects the
	// database (openDB), so database 0's path is the one above.
	dbs   [conncmd.Databases][2]atomic.Pointer[backend.Client]
	dbMu  sync.Mutex // serializes openDB
	mkCl  func(proto resp.Proto, db int) *backend.Client
	dbsUp atomic.Bool // some database other than 0 has clients (close)
	// lat is the sampled round trips to the node (metrics.go).
	lat conncmd.LatencyHistogram
	// mismatch is why the node's assignment is not the map's, nil while
	// none is known; probing is set while probeAssignment runs; stop is
	// closed with the backends (mismatch.go).
	mismatch  atomic.Pointer[string]
	probing   atomic.Bool
	stop      chan struct{}
	closeOnce sync.Once
	// txAlways: the node's appendfsync is always, as its last new
	// connection read it (txsend.go).
	txAlways atomic.Bool
	// reps is the node's replicas, for clients that read from them
	// (replicas.go).
	reps replicaState
}

// assignment is what a node is given: its entries of the map, the map's
// epoch (0 for a static map), and the SHARD.ASSIGN that says both.
type assignment struct {
	ranges []rangemap.Shard
	epoch  uint64
	args   []string // rangemap.Map.NodeAssignArgs
}

// nodeAssignment is the assignment of the node at addr under m.
func nodeAssignment(m *rangemap.Map, addr string) *assignment {
	a := &assignment{epoch: m.Epoch}
	var host string
	var port int
	for _, e := range m.Shards {
		if e.Addr() == addr {
			a.ranges = append(a.ranges, e)
			host, port = e.Host, e.Port
		}
	}
	a.args = m.NodeAssignArgs(host, port)
	return a
}

// same reports whether b gives the node the same ranges at the same epoch.
func (a *assignment) same(b *assignment) bool { return slices.Equal(a.args, b.args) }

// sizes reports whether a and b differ in sizes only.
func (a *assignment) sizesOnly(b *assignment) bool {
	if len(a.ranges) != len(b.ranges) {
		return false
	}
	for i, r := range a.ranges {
		o := b.ranges[i]
		if r.Name != o.Name || r.Start != o.Start || r.End != o.End {
			return false
		}
	}
	return true
}

// backend returns the client for a protocol version.
func (sh *shard) backend(proto resp.Proto) *backend.Client {
	if proto == resp.RESP3 {
		return sh.resp3
	}
	return sh.resp2
}

// backendDB returns the client for a protocol version and a database.
func (sh *shard) backendDB(proto resp.Proto, db int) *backend.Client {
	if db == 0 {
		return sh.backend(proto)
	}
	p := 0
	if proto == resp.RESP3 {
		p = 1
	}
	if cl := sh.dbs[db][p].Load(); cl != nil {
		return cl
	}
	return sh.openDB(db)[p]
}

// openDB makes the clients of database db (both protocols) if they do not
// exist yet.
func (sh *shard) openDB(db int) [2]*backend.Client {
	sh.dbMu.Lock()
	defer sh.dbMu.Unlock()
	var out [2]*backend.Client
	for p, proto := range []resp.Proto{resp.RESP2, resp.RESP3} {
		cl := sh.dbs[db][p].Load()
		if cl == nil {
			cl = sh.mkCl(proto, db)
			sh.dbs[db][p].Store(cl)
			sh.dbsUp.Store(true)
		}
		out[p] = cl
	}
	return out
}

func (sh *shard) close() {
	sh.closeOnce.Do(func() { close(sh.stop) })
	sh.resp2.Close()
	sh.resp3.Close()
	if sh.dbsUp.Load() {
		sh.dbMu.Lock()
		defer sh.dbMu.Unlock()
		for d := range sh.dbs {
			for p := range sh.dbs[d] {
				if cl := sh.dbs[d][p].Load(); cl != nil {
					cl.Close()
				}
			}
		}
	}
}

// unavailable is the error a client gets for a request its shard could not
// answer; go-redis and redis-py retry TRYAGAIN.
func (sh *shard) unavailable(err error) string {
	return "TRYAGAIN shard " + sh.name + " (" + sh.addr + ") unavailable: " + err.Error()
}

// failed is the error for a request to sh that got no reply. TRYAGAIN,
// which clients retry by themselves (in Redis Cluster it means the command
// did not run), only when nothing can have happened: the request certainly
// never reached the node, or the command cannot write. Once a write's bytes
// were sent its outcome is unknown, and a retry could apply it twice (an
// INCR counted twice), so the client gets UNCERTAIN, which no client
// retries on its own.
func (sh *shard) failed(err error, write bool) string {
	if !write || backend.NotSent(err) {
		return sh.unavailable(err)
	}
	return "UNCERTAIN shard " + sh.name + " (" + sh.addr + ") failed after the command was sent, which may or may not have been applied: " + err.Error()
}

// table is an immutable routing snapshot: the map and its shards, in map
// order. A reload builds a new one.
type table struct {
	m *rangemap.Map
	// shards[i] serves m.Shards[i]. The entries of one node (a split or
	// a move leaves several there, adjacent or not) share one shard: the
	// node holds the list of their ranges (nodeAssignment).
	shards []*shard
	// nodes is each shard once, in the order of its first entry in the
	// map: what a command sent to every node iterates. nodes[i].idx is i.
	nodes []*shard
	// firstHash[i] is the smallest hash whose position falls in shard i:
	// where a SCAN continues when shard i-1 is done.
	firstHash []uint64
}

func (t *table) locate(key []byte) *shard {
	return t.shards[t.m.Find(t.m.Position(key))]
}

// shardIdx is the index of the shard that owns key.
func (t *table) shardIdx(key []byte) int32 { return int32(t.m.Find(t.m.Position(key))) }

// scanRun is the shard whose range holds a hash (a SCAN cursor) and the
// first hash past the run of entries it serves from there (0 after the
// last entry): a node serves its adjacent entries in one walk, and the
// next entry belongs to another node.
func (t *table) scanRun(h uint64) (*shard, uint64) {
	i := t.m.Find(rangemap.PositionOfHash(h))
	sh := t.shards[i]
	for i+1 < len(t.shards) && t.shards[i+1] == sh {
		i++
	}
	if i+1 < len(t.shards) {
		return sh, t.firstHash[i+1]
	}
	return sh, 0
}

// newShard starts the backends of a node. They dial in the background: a
// node that is not up yet is retried while the others serve.
func (s *Server) newShard(idx int, addr string, a *assignment, hashTags bool) *shard {
	name := a.ranges[0].Name
	sh := &shard{idx: idx, name: name, addr: addr, hashTags: hashTags, stop: make(chan struct{})}
	sh.assign.Store(a)
	log := s.log.Named("shard").With("shard", name, "addr", sh.addr)
	busy := &backend.Busy{} // one node: its big requests hold up every connection to it
	mk := func(proto resp.Proto, db int) *backend.Client {
		cfg := backend.ClientConfig{
			Busy:      busy,
			Addr:      sh.addr,
			Conns:     s.cfg.ConnsPerNode,
			Timeout:   s.cfg.Timeout,
			Handshake: s.handshake(sh, proto, db),
			Observe:   func(d time.Duration) { sh.lat.Observe(int64(d / time.Microsecond)) },
		}
		if proto == resp.RESP2 && db == 0 {
			// One protocol's transitions are enough to tell the operator.
			cfg.OnState = func(up bool, err error) {
				if up {
					log.Info("shard node up, assignment pushed")
				} else {
					log.Warn("shard node unavailable; retrying", "error", err)
				}
			}
		}
		return backend.NewClient(cfg)
	}
	sh.resp2 = mk(resp.RESP2, 0)
	sh.resp3 = mk(resp.RESP3, 0)
	sh.mkCl = mk
	return sh
}

// handshake authenticates a new node connection, selects its protocol and
// pushes the shard's assignment (pushAssignment), and for a database
// other than 0 selects it, after the assignment: a node admitting the
// connection on probation (past its -maxclients) takes only a proxy's
// handshake until the assignment is accepted. A node that holds a
// different range keeps it, the connection fails with the node's refusal,
// which clients see in the TRYAGAIN reason, and the shard is marked
// mismatched (mismatch.go) until a connection's handshake or the probe
// finds the node's assignment is the map's.
func (s *Server) handshake(sh *shard, proto resp.Proto, db int) backend.Handshake {
	assign := s.assignHandshake(sh, proto)
	if db == 0 {
		return assign
	}
	return func(do func(args ...string) (resp.Value, error)) error {
		if err := assign(do); err != nil {
			return err
		}
		v, err := do("SELECT", strconv.Itoa(db))
		if err != nil {
			return err
		}
		if v.IsError() {
			return fmt.Errorf("SELECT %d refused by the node: %s", db, v.Str)
		}
		return nil
	}
}

// assignHandshake is handshake up to the assignment.
func (s *Server) assignHandshake(sh *shard, proto resp.Proto) backend.Handshake {
	return func(do func(args ...string) (resp.Value, error)) error {
		if pw := s.cfg.NodePassword; pw != "" {
			v, err := do("AUTH", pw)
			if err != nil {
				return err
			}
			if v.IsError() {
				return fmt.Errorf("AUTH refused by the node: %s", v.Str)
			}
		}
		if proto == resp.RESP3 {
			v, err := do("HELLO", "3")
			if err != nil {
				return err
			}
			if v.IsError() {
				return fmt.Errorf("HELLO 3 refused by the node: %s", v.Str)
			}
		}
		refusal, err := s.pushAssignment(sh, do)
		if err != nil {
			return err
		}
		if refusal != "" {
			return errors.New(refusal)
		}
		// Big GET values as references, fetched apart (bigreply.go).
		v, err := do("SHARD.STREAMREFS")
		if err != nil {
			return err
		}
		if v.IsError() {
			return fmt.Errorf("SHARD.STREAMREFS refused by the node: %s", v.Str)
		}
		return noteTxSync(sh, do)
	}
}

// pushAssignment sends the node the shard's assignment with do. A node
// that holds the same ranges with different sizes gets it again with
// FORCE: the map is the source of truth for sizes. It returns the node's
// refusal ("" when the node took it), and marks the shard mismatched when
// the node holds another assignment, healthy when it took the map's.
func (s *Server) pushAssignment(sh *shard, do func(args ...string) (resp.Value, error)) (refusal string, err error) {
	a := sh.assign.Load()
	args := a.args
	v, err := do(args...)
	if err != nil {
		return "", err
	}
	if !v.IsError() {
		s.clearMismatch(sh)
		return "", nil
	}
	if strings.HasPrefix(string(v.Str), staleEpochPrefix) {
		// The node was given a newer map than this proxy's: read it.
		go s.refreshMap(a.epoch + 1)
		return "node refused SHARD.ASSIGN " + strings.Join(args[1:], " ") + ": " + string(v.Str), nil
	}
	if sameRangeOtherSize(string(v.Str), a.ranges, sh.hashTags) {
		v, err = do(append(slices.Clip(args), "FORCE")...)
		if err != nil {
			return "", err
		}
		if !v.IsError() {
			s.clearMismatch(sh)
			return "", nil
		}
	}
	refusal = "node refused SHARD.ASSIGN " + strings.Join(args[1:], " ") + ": " + string(v.Str)
	if strings.HasPrefix(string(v.Str), assignedPrefix) {
		s.markMismatch(sh, refusal)
	}
	return refusal, nil
}

// staleEpochPrefix starts a node's refusal of an assignment at an epoch
// older than its own (shardnode/cmd_shard.go).
const staleEpochPrefix = "ERR stale epoch "

// assignedPrefix starts a node's refusal of an assignment that differs
// from the one it holds.
const assignedPrefix = "ERR shard node already assigned "

// sameRangeOtherSize reads the node's refusal, "ERR shard node already
// assigned <name> [<start>,<end>) size <size>[, <name> [<start>,<end>) size
// <size>]...[ hash_tags 1][ epoch <n>]; add FORCE to replace it", and
// reports whether only sizes differ from ranges. A different placement
// mode is never forced: it would strand the keys the node holds (README,
// "Hash tags").
func sameRangeOtherSize(msg string, ranges []rangemap.Shard, hashTags bool) bool {
	rest, ok := strings.CutPrefix(msg, assignedPrefix)
	if !ok {
		return false
	}
	desc, _, _ := strings.Cut(rest, ";")
	desc, _, _ = strings.Cut(desc, " epoch ")
	desc, tags := strings.CutSuffix(desc, " hash_tags 1")
	if tags != hashTags {
		return false
	}
	held := strings.Split(desc, ", ")
	if len(held) != len(ranges) {
		return false
	}
	for i, h := range held {
		// "<name> [<start>,<end>) size <size>"; names have no spaces.
		name, rng, ok := strings.Cut(h, " [")
		if !ok || name != ranges[i].Name {
			return false
		}
		rng, _, ok = strings.Cut(rng, ")")
		if !ok {
			return false
		}
		lo, hi, ok := strings.Cut(rng, ",")
		if !ok {
			return false
		}
		start, err1 := strconv.ParseFloat(lo, 64)
		end, err2 := strconv.ParseFloat(hi, 64)
		if err1 != nil || err2 != nil || start != ranges[i].Start || end != ranges[i].End {
			return false
		}
	}
	return true
}

// buildTable makes the routing table for m, reusing the shards of old whose
// name, address and index are unchanged. The entries of m at one address
// share a shard, whose assignment is the list of their ranges.
func (s *Server) buildTable(m *rangemap.Map, old *table) *table {
	t := &table{m: m, shards: make([]*shard, len(m.Shards)), firstHash: make([]uint64, len(m.Shards))}
	for i, e := range m.Shards {
		t.firstHash[i], _ = rangemap.HashBounds(e.Start, e.End)
	}
	byAddr := make(map[string]*shard, len(m.Shards))
	for i, e := range m.Shards {
		addr := e.Addr()
		if sh := byAddr[addr]; sh != nil {
			t.shards[i] = sh
			continue
		}
		idx := len(t.nodes)
		var sh *shard
		if old != nil {
			for _, o := range old.nodes {
				if o.name == e.Name && o.addr == addr && o.idx == idx {
					sh = o
				}
			}
		}
		if sh == nil {
			sh = s.newShard(idx, addr, nodeAssignment(m, addr), m.HashTags)
		}
		s.setReplicaAddrs(sh, shardReplicaAddrs(m, addr))
		byAddr[addr] = sh
		t.shards[i] = sh
		t.nodes = append(t.nodes, sh)
	}
	return t
}

// checkReload refuses a new map that would move a range: only addresses and
// sizes may change until range moves exist.
//
// An etcd map (both epochs above 0) may change ranges and shards: its
// writer (the controller) is responsible for the data being where the new
// map says (docs/RESHARDING.md).
func checkReload(old, m *rangemap.Map) error {
	if old.HashTags != m.HashTags {
		return fmt.Errorf("range map reload refused: it turns hash_tags %s; the placement mode of a cluster cannot change while it holds data, since keys with a tag would move (the map stays as it was)", onOff(m.HashTags))
	}
	if old.Epoch > 0 && m.Epoch > 0 {
		return nil
	}
	if len(old.Shards) != len(m.Shards) {
		return fmt.Errorf("range map reload refused: it has %d shards instead of %d; adding or removing a shard moves ranges, which is not supported yet (the map stays as it was)", len(m.Shards), len(old.Shards))
	}
	for i, o := range old.Shards {
		n := m.Shards[i]
		if o.Name != n.Name {
			return fmt.Errorf("range map reload refused: the range [%s,%s) of shard %q would belong to shard %q; moving ranges is not supported yet (the map stays as it was)",
				rangemap.FormatPosition(o.Start), rangemap.FormatPosition(o.End), o.Name, n.Name)
		}
		if o.Start != n.Start || o.End != n.End {
			return fmt.Errorf("range map reload refused: shard %q would move from [%s,%s) to [%s,%s); moving ranges is not supported yet (the map stays as it was)",
				o.Name, rangemap.FormatPosition(o.Start), rangemap.FormatPosition(o.End),
				rangemap.FormatPosition(n.Start), rangemap.FormatPosition(n.End))
		}
	}
	return nil
}

// Reload reads the map file again and applies address and size changes
// without dropping client connections. A map that would move a range is
// refused and the current map stays.
func (s *Server) Reload() error {
	if s.cfg.MapSource != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		m, err := s.cfg.MapSource(ctx)
		cancel()
		if err != nil {
			return err
		}
		return s.ApplyMap(m)
	}
	if s.cfg.MapFile == "" {
		return errors.New("no map file to reload: the proxy was started with a map given in its configuration or the embedded default map")
	}
	m, err := rangemap.Load(s.cfg.MapFile)
	if err != nil {
		return err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.applyLocked(m)
}

// ApplyMap routes by m from now on when its epoch is above the current
// map's (the etcd map's watch calls it), without dropping client
// connections; an older or equal epoch changes nothing.
func (s *Server) ApplyMap(m *rangemap.Map) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if m.Epoch <= s.table.Load().m.Epoch {
		return nil
	}
	if err := s.applyLocked(m); err != nil {
		return err
	}
	s.log.Info("range map applied", "epoch", m.Epoch, "shards", len(m.Shards))
	return nil
}

// Epoch is the epoch of the map the proxy routes by (0 for a static map).
func (s *Server) Epoch() uint64 { return s.table.Load().m.Epoch }

// applyLocked replaces the map; the caller holds reloadMu.
func (s *Server) applyLocked(m *rangemap.Map) error {
	old := s.table.Load()
	if err := checkReload(old.m, m); err != nil {
		return err
	}
	t := s.buildTable(m, old)
	var errs []error
	kept := make(map[*shard]bool, len(t.nodes))
	for _, o := range old.nodes {
		kept[o] = false
	}
	// The nodes are told in parallel: one that does not answer holds the
	// new map back by one request timeout, not one per node.
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for _, sh := range t.nodes {
		if _, reused := kept[sh]; !reused {
			s.log.Info("shard node entry new in the map", "shard", sh.name, "addr", sh.addr)
			continue
		}
		kept[sh] = true
		cur := sh.assign.Load()
		next := nodeAssignment(m, sh.addr)
		if cur.same(next) {
			continue
		}
		sh.assign.Store(next)
		// The next connection pushes the new assignment; tell the node
		// now too. A newer epoch replaces the node's assignment by
		// itself; a static map's new size needs FORCE.
		args := next.args
		if next.epoch == 0 {
			args = append(slices.Clip(args), "FORCE")
		}
		name := sh.name
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := sh.resp2.Do(args...)
			switch {
			case err != nil:
				s.log.Warn("shard node unavailable for its new assignment; it gets it when it reconnects", "shard", name, "error", err)
			case v.IsError():
				errMu.Lock()
				errs = append(errs, fmt.Errorf("shard %q refused %s: %s", name, strings.Join(args[1:], " "), v.Str))
				errMu.Unlock()
			case cur.sizesOnly(next):
				s.log.Info("shard size changed", "shard", name, "assignment", strings.Join(next.args[1:], " "))
			}
		}()
	}
	wg.Wait()
	s.table.Store(t)
	// Shards no longer in the map as they were: let requests in flight
	// finish first.
	for _, sh := range old.nodes {
		if !kept[sh] {
			go func(sh *shard) {
				time.Sleep(s.cfg.Timeout)
				sh.close()
			}(sh)
		}
	}
	return errors.Join(errs...)
}

// refreshMap reads the map from its source (etcd) and applies it, when
// the proxy's map is older than epoch: a node answered with a newer epoch
// than the proxy knows (its watch may be behind). Callers racing for the
// same epoch read it once.
func (s *Server) refreshMap(epoch uint64) error {
	if s.cfg.MapSource == nil {
		return errors.New("no map source")
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if s.Epoch() >= epoch {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	m, err := s.cfg.MapSource(ctx)
	cancel()
	if err != nil {
		s.log.Warn("reading the map after a node's newer epoch failed", "want_epoch", epoch, "error", err)
		return err
	}
	if err := s.ApplyMap(m); err != nil {
		return err
	}
	if m.Epoch < epoch {
		return fmt.Errorf("the map source is at epoch %d, a node at %d", m.Epoch, epoch)
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
