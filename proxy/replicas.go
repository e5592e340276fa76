package proxy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// Reads from replicas (docs/REPLICATION.md, "Reads from replicas"): a
// client that sent READONLY, or every client of a proxy started with
// -read-from-replicas, has its single-key read-only commands served by one
// of the shard's replicas, as a Redis Cluster replica serves a READONLY
// connection. Writes, multi-key and fan-out commands, transactions and the
// commands of a client that watches keys go to the primary. A replica is
// used only while its last probe found it connected to its primary, fully
// synced and at most ReplicaMaxLag writes behind the primary's offset;
// otherwise the read goes to the primary, so a dead or lagging replica
// costs a read nothing but the primary's load.

// replicaProbeInterval is how often a shard's replicas and primary are
// asked for INFO replication while some client reads from replicas.
const replicaProbeInterval = 250 * time.Millisecond

// replica is the proxy's backends to one replica node of a shard.
type replica struct {
	addr  string
	resp2 *backend.Client
	resp3 *backend.Client
	// usable is the last probe's verdict (see above).
	usable atomic.Bool
	// offset is the replica's slave_repl_offset at the last probe.
	offset atomic.Int64
}

func (r *replica) backend(proto resp.Proto) *backend.Client {
	if proto == resp.RESP3 {
		return r.resp3
	}
	return r.resp2
}

// replicaSet is a shard's replicas, made the first time a client reads
// from replicas (so a proxy whose clients never do holds no connections to
// them) and replaced when the map lists other replicas.
type replicaSet struct {
	addrs []string
	reps  []*replica
	next  atomic.Uint32 // round robin over the usable replicas
	stop  chan struct{}
	once  sync.Once
}

// replicaState is a shard's part of the read-from-replicas routing.
type replicaState struct {
	mu    sync.Mutex
	addrs []string // the map's replicas of the node, in order
	set   atomic.Pointer[replicaSet]
}

// shardReplicaAddrs is the replicas the map lists for the node at addr.
func shardReplicaAddrs(m *rangemap.Map, addr string) []string {
	for _, e := range m.Shards {
		if e.Addr() == addr && len(e.Replicas) > 0 {
			return e.ReplicaAddrs()
		}
	}
	return nil
}

// setReplicaAddrs records the map's replicas of sh; a set made for other
// addresses is closed (after the request timeout, as a replaced shard is)
// and made again on the next read.
func (s *Server) setReplicaAddrs(sh *shard, addrs []string) {
	rs := &sh.reps
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if slices.Equal(rs.addrs, addrs) {
		return
	}
	rs.addrs = addrs
	if old := rs.set.Swap(nil); old != nil {
		go func() {
			time.Sleep(s.cfg.Timeout)
			old.close()
		}()
	}
}

// replicaSetOf returns sh's replica set, making it (and its probe) on
// first use; nil when the map lists no replicas.
func (s *Server) replicaSetOf(sh *shard) *replicaSet {
	if set := sh.reps.set.Load(); set != nil {
		return set
	}
	rs := &sh.reps
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if set := rs.set.Load(); set != nil || len(rs.addrs) == 0 {
		return set
	}
	select {
	case <-sh.stop:
		return nil
	default:
	}
	set := &replicaSet{addrs: rs.addrs, stop: make(chan struct{})}
	for _, a := range rs.addrs {
		r := &replica{addr: a}
		mk := func(proto resp.Proto) *backend.Client {
			return backend.NewClient(backend.ClientConfig{
				Addr:      a,
				Conns:     s.cfg.ConnsPerNode,
				Timeout:   s.cfg.Timeout,
				Handshake: s.replicaHandshake(proto),
			})
		}
		r.resp2, r.resp3 = mk(resp.RESP2), mk(resp.RESP3)
		set.reps = append(set.reps, r)
	}
	rs.set.Store(set)
	go s.probeReplicas(sh, set)
	return set
}

// replicaHandshake authenticates a replica connection, selects its
// protocol and sends READONLY. No assignment is pushed: a replica holds
// its primary's, sent with the full sync.
func (s *Server) replicaHandshake(proto resp.Proto) backend.Handshake {
	return func(do func(args ...string) (resp.Value, error)) error {
		var cmds [][]string
		if pw := s.cfg.NodePassword; pw != "" {
			cmds = append(cmds, []string{"AUTH", pw})
		}
		if proto == resp.RESP3 {
			cmds = append(cmds, []string{"HELLO", "3"})
		}
		cmds = append(cmds, []string{"READONLY"})
		for _, c := range cmds {
			v, err := do(c...)
			if err != nil {
				return err
			}
			if v.IsError() {
				return fmt.Errorf("%s refused by the replica: %s", c[0], v.Str)
			}
		}
		return nil
	}
}

func (set *replicaSet) close() {
	set.once.Do(func() {
		close(set.stop)
		for _, r := range set.reps {
			r.resp2.Close()
			r.resp3.Close()
		}
	})
}

// probeReplicas asks each replica of set, then the primary, for INFO
// replication until the set is replaced or the shard closed.
func (s *Server) probeReplicas(sh *shard, set *replicaSet) {
	t := time.NewTicker(replicaProbeInterval)
	defer t.Stop()
	for {
		for _, r := range set.reps {
			ok, off := probeReplica(r.resp2)
			r.offset.Store(off)
			r.usable.Store(ok)
		}
		// The lag check needs the primary; one that does not answer (it
		// may be frozen or dead) leaves the replicas' own verdicts.
		if v, err := sh.resp2.Do("INFO", "replication"); err == nil && !v.IsError() {
			if prim, ok := replInfoInt(string(v.Str), "master_repl_offset"); ok {
				for _, r := range set.reps {
					if r.usable.Load() && prim-r.offset.Load() > s.cfg.ReplicaMaxLag {
						r.usable.Store(false)
					}
				}
			}
		}
		select {
		case <-set.stop:
			return
		case <-sh.stop:
			set.close()
			return
		case <-t.C:
		}
	}
}

// probeReplica reports whether the node behind cl is a replica with its
// link to the primary up and a full sync done, and its offset.
func probeReplica(cl *backend.Client) (bool, int64) {
	if !cl.Up() {
		return false, 0
	}
	v, err := cl.Do("INFO", "replication")
	if err != nil || v.IsError() {
		return false, 0
	}
	info := string(v.Str)
	off, _ := replInfoInt(info, "slave_repl_offset")
	return replInfoField(info, "role") == "slave" && replInfoField(info, "master_link_status") == "up" &&
		replInfoField(info, "repl_synced") == "1", off
}

// replInfoField is the value of field in an INFO reply, "" when absent.
func replInfoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

func replInfoInt(info, field string) (int64, bool) {
	n, err := strconv.ParseInt(replInfoField(info, field), 10, 64)
	return n, err == nil
}

// pickReplica is the backend a read of the client goes to on sh's
// replicas, nil for the primary: the client reads from replicas, the
// command is read-only, it runs on database 0 outside a transaction and
// a watch, and a replica is usable.
func (c *client) pickReplica(sh *shard, ci *cmdtable.Command) *backend.Client {
	if ci.Flags&cmdtable.FlagReadonly == 0 || ci.Flags&cmdtable.FlagBlocking != 0 ||
		!(c.s.cfg.ReadFromReplicas || c.sess.ReadOnly()) || c.pin != nil || c.inMulti || c.sess.DB() != 0 {
		return nil
	}
	set := c.s.replicaSetOf(sh)
	if set == nil {
		return nil
	}
	n := len(set.reps)
	start := int(set.next.Add(1))
	for i := range n {
		if r := set.reps[(start+i)%n]; r.usable.Load() {
			return r.backend(c.sess.Proto)
		}
	}
	return nil
}

// forwardReplica sends raw to a replica's backend cl and answers with its
// reply. It is sent at once, not queued with the batch's requests for the
// primary: the two are different connections, so no order between them
// is lost (a replica may lag behind the primary anyway).
func (c *client) forwardReplica(sh *shard, cl *backend.Client, raw []byte) {
	r := c.newReq()
	r.Cmd = raw
	cl.Send(int(c.sess.ID), &r.Request)
	c.slots = append(c.slots, slot{kind: slotForward, req: &r.Request, sh: sh, readonly: true})
}
