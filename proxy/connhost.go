package proxy

import (
	"net"
	"strconv"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// Session, SwitchProto, ResetConn and ControlsReplies make a client the
// conncmd.Conn the shared connection commands act on.
func (c *client) Session() *conncmd.Session { return &c.sess }

// SwitchProto sends the commands already queued in this batch on the node
// connections of the protocol they were sent in. A WATCH's keys are held on
// a shared connection of the old protocol, which cannot carry this
// client's replies any more: the node forgets them and EXEC will abort (a
// HELLO between WATCH and EXEC is the one case where shardkv aborts and
// Redis would not).
func (c *client) SwitchProto(proto resp.Proto) {
	if c.pin != nil && !c.unpinAfter && proto != c.sess.Proto {
		c.releaseWatch()
		c.losePins()
	}
	c.barrier()
	c.psProtoNote(proto)
}

// beforeSelect prepares a SELECT of another database: the commands already
// queued in this batch are sent, and answered, on the node connections of
// the database they were sent in, before any command after the SELECT
// reaches a node (a MOVE into the new database is seen by a GET there
// after it). A WATCH's keys are held in the old database: as for a
// protocol switch, the node forgets them and EXEC will abort. The new
// database's node connections are opened now, and waited for (each node
// up, or its first dial failed, within -timeout), so that the client's
// first command there does not find them still dialing.
func (c *client) beforeSelect(args [][]byte) {
	n, err := strconv.Atoi(string(args[1]))
	if err != nil || n < 0 || n >= conncmd.Databases || n == c.sess.DB() || c.inMulti {
		return
	}
	if c.pin != nil && !c.unpinAfter {
		c.releaseWatch()
		c.losePins()
	}
	c.barrier()
	if n == 0 {
		return
	}
	deadline := time.NewTimer(c.s.cfg.Timeout)
	defer deadline.Stop()
	for _, sh := range c.tbl.nodes {
		for _, cl := range sh.openDB(n) {
			select {
			case <-cl.Ready():
			case <-deadline.C:
				return
			}
		}
	}
}

// ResetConn is RESET's part that is the proxy's own: leave MULTI, and have
// the node forget the client's watched keys.
func (c *client) ResetConn() {
	if c.sess.DB() != 0 {
		// RESET selects database 0: what is queued goes out in the old one.
		c.barrier()
	}
	if c.inMulti {
		c.endMulti()
	}
	c.releaseWatch()
	if c.pin != nil {
		c.unpinAfter = true
	}
	c.stopMonitor()
	c.psReset(false)
}

// ControlsReplies: the proxy honours CLIENT REPLY (serveBuffered).
func (c *client) ControlsReplies() {}

// proxyHost is the proxy as the shared connection commands see it; one
// pointer, so passing it as an interface allocates nothing.
type proxyHost struct{ s *Server }

func (h proxyHost) RequirePass() string { return h.s.cfg.RequirePass }

// Databases is Redis's 16.
func (h proxyHost) Databases() int { return conncmd.Databases }

func (h proxyHost) Sessions() []*conncmd.Session {
	cs := h.s.snapshot()
	out := make([]*conncmd.Session, len(cs))
	for i, c := range cs {
		out[i] = &c.sess
	}
	return out
}

// Kill closes the connection of s; its goroutine sees the read fail.
func (h proxyHost) Kill(s *conncmd.Session) {
	for _, c := range h.s.snapshot() {
		if &c.sess == s {
			// First: a client blocked in a blocking command is unblocked
			// (its node connection closed, the node popping nothing),
			// and Close waits for the client's goroutine to leave its
			// read.
			c.onPeerClosed()
			c.nc.Close()
			return
		}
	}
}

// Unblock is CLIENT UNBLOCK's: a client of the proxy blocked in a blocking
// command waits on a node connection of its own (forwardBlocking), whose
// id on the node differs from the client's here, so the node is asked to
// unblock that connection; its reply (and the command's, the timeout's or
// the UNBLOCKED error) comes back as the node gives it.
func (h proxyHost) Unblock(id int64, asErr bool) int64 {
	for _, c := range h.s.snapshot() {
		if c.sess.ID != id {
			continue
		}
		bc := c.blockConn.Load()
		if bc == nil {
			return 0
		}
		n, err := bc.Unblock(asErr)
		if err != nil {
			h.s.log.Warn("CLIENT UNBLOCK failed on the node", "client", c.sess.Addr, "error", err)
			return 0
		}
		return n
	}
	return 0
}

// Commands are the rows the proxy accepts: every row but those only a shard
// node runs.
func (h proxyHost) Commands() []*cmdtable.Command { return proxyRows }

func (h proxyHost) Side() cmdtable.Side { return cmdtable.SideProxy }

func (h proxyHost) Lookup(name []byte) *cmdtable.Command {
	ci := cmdtable.Lookup(name)
	if ci == nil || ci.Route == cmdtable.RouteNodeOnly {
		return nil
	}
	return ci
}

var proxyRows = func() []*cmdtable.Command {
	var out []*cmdtable.Command
	for i := range cmdtable.Commands {
		if cmdtable.Commands[i].Route != cmdtable.RouteNodeOnly {
			out = append(out, &cmdtable.Commands[i])
		}
	}
	return out
}()

func (h proxyHost) ResetStats() {
	s := h.s
	s.commands.Store(0)
	s.connsReceived.Store(0)
	s.rejected.Store(0)
	s.netIn.Store(0)
	s.netOut.Store(0)
	s.obs.ResetStats()
}

// ConfigParams are the settings CONFIG GET shows; only the slow log's and the
// latency monitor's change at run time (the map file is reloaded with
// SHARD.RELOAD).
func (h proxyHost) ConfigParams() []conncmd.Param {
	s := h.s
	host, port := "", ""
	if a := s.Addr(); a != nil {
		host, port, _ = net.SplitHostPort(a.String())
	}
	return append([]conncmd.Param{
		conncmd.Const("bind", host),
		conncmd.Const("port", port),
		conncmd.Const("databases", "1"),
		conncmd.Const("maxclients", strconv.Itoa(s.cfg.MaxClients)),
		conncmd.Const("timeout", "0"),
		conncmd.Const("proto-max-bulk-len", strconv.Itoa(resp.MaxBulkLen)),
		conncmd.Const("maxmemory", "0"),
		conncmd.Const("maxmemory-policy", "noeviction"),
		conncmd.Const("appendonly", "yes"),
		conncmd.Const("save", ""),
		conncmd.Const("cluster-enabled", "yes"), // as INFO cluster_enabled:1: the proxy answers CLUSTER
		conncmd.Const("shardkv-node-timeout", s.cfg.Timeout.String()),
		conncmd.Const("shardkv-conns-per-node", strconv.Itoa(s.cfg.ConnsPerNode)),
		conncmd.Const("shardkv-map-file", s.cfg.MapFile),
		s.obuf.Param(func(v string) { s.log.Info("client-output-buffer-limit changed", "value", v) }),
	}, s.obs.ConfigParams()...)
}
