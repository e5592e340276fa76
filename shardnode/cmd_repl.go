package shardnode

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/internal/conncmd"
)

// The replication commands (replica.go, docs/REPLICATION.md).

// REPLICAOF host port | REPLICAOF NO ONE (and SLAVEOF).
func cmdReplicaOf(c *client, args [][]byte) {
	s := c.srv
	if eqFold(args[1], "no") && eqFold(args[2], "one") {
		s.becomePrimary(0)
		c.ok()
		return
	}
	port, err := strconv.Atoi(string(args[2]))
	if err != nil || port < 0 || port > 65535 {
		c.errReply("ERR Invalid master port")
		return
	}
	addr := net.JoinHostPort(string(args[1]), strconv.Itoa(port))
	s.repl.mu.Lock()
	same := s.repl.role.Load() == roleReplica && s.repl.primary == addr
	s.repl.mu.Unlock()
	if same {
		c.simple("OK Already connected to specified master")
		return
	}
	s.becomeReplica(addr, 0)
	c.ok()
}

// REPL.ROLE PRIMARY epoch [MINACKS n] | REPL.ROLE REPLICA host:port epoch:
// the controller's REPLICAOF, with the epoch of the map that decided it;
// it also confirms the role of a node with Config.RoleGate.
func cmdReplRole(c *client, args [][]byte) {
	s := c.srv
	r := &s.repl
	primary := eqFold(args[1], "primary")
	if !primary && !eqFold(args[1], "replica") || !primary && len(args) != 4 {
		c.errReply(errSyntax)
		return
	}
	ei := 2
	if !primary {
		ei = 3
	}
	epoch, err := strconv.ParseUint(string(args[ei]), 10, 64)
	if err != nil {
		c.errReply(errNotInteger)
		return
	}
	minAcks := int64(-1)
	for i := ei + 1; i < len(args); i++ {
		if primary && eqFold(args[i], "minacks") && i+1 < len(args) {
			n, ok := parseInt(args[i+1])
			if !ok || n < 0 {
				c.errReply(errNotInteger)
				return
			}
			minAcks = n
			i++
			continue
		}
		c.errReply(errSyntax)
		return
	}
	r.mu.Lock()
	cur, curPrimary := r.epoch, r.primary
	r.mu.Unlock()
	if epoch < cur {
		c.errReply("ERR stale role: epoch " + strconv.FormatUint(epoch, 10) + " is older than this node's " + strconv.FormatUint(cur, 10))
		return
	}
	if primary {
		if minAcks >= 0 {
			r.minAcks.Store(minAcks)
		}
		if r.role.Load() != rolePrimary {
			s.becomePrimary(epoch)
		} else {
			r.mu.Lock()
			r.epoch = epoch
			r.mu.Unlock()
		}
	} else {
		addr := string(args[2])
		if r.role.Load() != roleReplica || curPrimary != addr {
			if r.role.Load() == rolePrimary {
				s.log.Warn("rejoining as a replica: local data is replaced by the primary's at the full sync, dropping any write the new primary never had",
					"primary", addr, "epoch", epoch, "local_keys", s.db.Stats().Keys, "offset", r.offset.Load())
			}
			s.becomeReplica(addr, epoch)
		} else {
			r.mu.Lock()
			r.epoch = epoch
			r.mu.Unlock()
		}
	}
	if r.confirmed.CompareAndSwap(false, true) && r.gated {
		s.log.Info("role confirmed by the controller", "role", strings.ToLower(string(args[1])), "epoch", epoch)
	}
	s.replActive()
	c.ok()
}

// REPL.ATTACH port: a replica asks for a stream; the primary dials it back
// at the connection's host and port.
func cmdReplAttach(c *client, args [][]byte) {
	s := c.srv
	if s.repl.role.Load() == roleReplica {
		c.errReply("ERR this node is a replica; attach to its primary")
		return
	}
	port, err := strconv.Atoi(string(args[1]))
	if err != nil || port <= 0 || port > 65535 {
		c.errReply("ERR invalid port")
		return
	}
	host, _, err := net.SplitHostPort(c.sess.Addr)
	if err != nil {
		c.errReply("ERR unknown peer address")
		return
	}
	s.attachReplica(net.JoinHostPort(host, strconv.Itoa(port)))
	c.ok()
}

// REPL.RECV primary epoch: this connection carries the stream of the
// primary this replica follows.
func cmdReplRecv(c *client, args [][]byte) {
	s := c.srv
	r := &s.repl
	r.mu.Lock()
	p := r.primary
	r.mu.Unlock()
	if r.role.Load() != roleReplica || !samePrimary(p, string(args[1])) {
		c.errReply("ERR this node does not follow " + string(args[1]))
		c.sess.Quit = true
		return
	}
	c.migRecv = true
	c.repl.recv, c.repl.gen = true, r.gen.Load()
	r.synced.Store(false)
	r.link.Store(linkSync)
	r.lastIO.Store(time.Now().UnixMilli())
	s.log.Info("full sync from the primary: local data is replaced by the primary's", "primary", p, "local_keys", s.db.Stats().Keys)
	c.ok()
}

// samePrimary compares the address a replica follows with the one its
// primary gives for itself, which may be a wildcard host's listener.
func samePrimary(followed, given string) bool {
	if followed == given {
		return true
	}
	_, p1, err1 := net.SplitHostPort(followed)
	h2, p2, err2 := net.SplitHostPort(given)
	return err1 == nil && err2 == nil && p1 == p2 && (h2 == "0.0.0.0" || h2 == "::")
}

// REPL.OFFSET o: on the stream, every write up to o is committed here.
func cmdReplOffset(c *client, args [][]byte) {
	if !c.repl.recv {
		c.errReply("ERR REPL.OFFSET is only valid on a replication stream")
		return
	}
	o, ok := parseInt(args[1])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	r := &c.srv.repl
	r.offset.Store(o)
	r.lastIO.Store(time.Now().UnixMilli())
	if !r.synced.Swap(true) {
		c.srv.log.Info("full sync done", "offset", o, "keys", c.srv.db.Stats().Keys)
	}
	r.link.Store(linkUp)
	c.ok()
}

// WAIT numreplicas timeout.
func cmdWait(c *client, args [][]byte) {
	s := c.srv
	if s.repl.role.Load() == roleReplica {
		c.errReply(errWaitReplica)
		return
	}
	num, ok := parseInt(args[1])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	ms, ok := parseInt(args[2])
	if !ok {
		c.errReply("ERR timeout is not an integer or out of range")
		return
	}
	if ms < 0 {
		c.errReply("ERR timeout is negative")
		return
	}
	off := c.repl.woff
	n := s.ackedCount(off)
	if int64(n) >= num || c.denyBlocking() {
		c.intReply(int64(n))
		return
	}
	var deadline int64
	if ms > 0 {
		deadline = time.Now().UnixMilli() + ms
	}
	c.blockForAcks(off, int(num), 0, 0, deadline, true)
}

// ROLE, as Redis 7.
func cmdRole(c *client, args [][]byte) {
	s := c.srv
	r := &s.repl
	if r.role.Load() == roleReplica {
		r.mu.Lock()
		p := r.primary
		r.mu.Unlock()
		host, port, _ := net.SplitHostPort(p)
		pn, _ := strconv.Atoi(port)
		c.array(5)
		c.bulkStr("slave")
		c.bulkStr(host)
		c.intReply(int64(pn))
		c.bulkStr(linkNames[r.link.Load()])
		c.intReply(r.offset.Load())
		return
	}
	srcs := s.replSources()
	c.array(3)
	c.bulkStr("master")
	c.intReply(r.offset.Load())
	c.array(len(srcs))
	for _, j := range srcs {
		host, port, _ := net.SplitHostPort(j.addr)
		c.array(3)
		c.bulkStr(host)
		c.bulkStr(port)
		c.bulkStr(strconv.FormatInt(j.acked.Load(), 10))
	}
}

// replSources lists the streams in the order replicas attached.
func (s *Server) replSources() []*replSource {
	tp := s.repl.tracking.Load()
	if tp == nil {
		return nil
	}
	l := append([]*replSource(nil), *tp...)
	for i := 1; i < len(l); i++ {
		for k := i; k > 0 && l[k].since.Before(l[k-1].since); k-- {
			l[k], l[k-1] = l[k-1], l[k]
		}
	}
	return l
}

// writeReplInfo writes INFO's Replication section.
func (s *Server) writeReplInfo(w *conncmd.InfoWriter) {
	r := &s.repl
	w.Section("Replication")
	r.mu.Lock()
	p, epoch := r.primary, r.epoch
	r.mu.Unlock()
	if r.role.Load() == roleReplica {
		host, port, _ := net.SplitHostPort(p)
		w.Field("role", "slave")
		w.Field("master_host", host)
		w.Field("master_port", port)
		up := r.link.Load() == linkUp
		status := "down"
		if up {
			status = "up"
		}
		w.Field("master_link_status", status)
		w.Field("master_last_io_seconds_ago", (time.Now().UnixMilli()-r.lastIO.Load())/1000)
		w.Field("master_sync_in_progress", boolInt(r.link.Load() == linkSync))
		w.Field("slave_repl_offset", r.offset.Load())
		w.Field("slave_read_only", 1)
		w.Field("connected_slaves", 0)
	} else {
		srcs := s.replSources()
		w.Field("role", "master")
		w.Field("connected_slaves", len(srcs))
		now := time.Now().UnixMilli()
		for i, j := range srcs {
			host, port, _ := net.SplitHostPort(j.addr)
			state := "wait_bgsave"
			if j.synced.Load() {
				state = "online"
			}
			lag := int64(0)
			if at := j.ackAt.Load(); at > 0 {
				lag = (now - at) / 1000
			}
			w.Field("slave"+strconv.Itoa(i), "ip="+host+",port="+port+",state="+state+",offset="+strconv.FormatInt(j.acked.Load(), 10)+",lag="+strconv.FormatInt(lag, 10))
		}
		w.Field("master_failover_state", "no-failover")
		w.Field("min_acks", r.minAcks.Load())
		w.Field("good_replicas", s.goodReplicas())
	}
	w.Field("master_replid", s.runID)
	w.Field("master_repl_offset", r.offset.Load())
	w.Field("repl_synced", boolInt(r.role.Load() == rolePrimary || r.synced.Load()))
	w.Field("repl_epoch", epoch)
	w.Field("repl_role_confirmed", boolInt(!r.gated || r.confirmed.Load()))
}

// Role is HELLO's role (conncmd.Roler).
func (h nodeHost) Role() string {
	if h.s.repl.role.Load() == roleReplica {
		return "replica"
	}
	return "master"
}
