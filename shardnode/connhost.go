package shardnode

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// nodeHost is the node as the shared connection commands (internal/conncmd)
// see it. It is a value holding one pointer, so passing it as an interface
// allocates nothing.
type nodeHost struct{ s *Server }

// shared is the node's handler for a command of conncmd.Handlers.
func shared(h conncmd.Handler) handlerFunc {
	return func(c *client, args [][]byte) { c.out = h(nodeHost{c.srv}, c, c.out, args) }
}

func (h nodeHost) RequirePass() string { return h.s.cfg.RequirePass }

// Databases is Redis's 16.
func (h nodeHost) Databases() int { return conncmd.Databases }

func (h nodeHost) Sessions() []*conncmd.Session {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	out := make([]*conncmd.Session, 0, len(h.s.clients))
	for c := range h.s.clients {
		out = append(out, &c.sess)
	}
	return out
}

// Unblock is CLIENT UNBLOCK's: the client's blocking pop ends as at its
// timeout, or with the UNBLOCKED error.
func (h nodeHost) Unblock(id int64, asErr bool) int64 {
	reason := abortUnblocked
	if asErr {
		reason = abortUnblockedErr
	}
	if h.s.unblockID(id, reason) {
		return 1
	}
	return 0
}

func (h nodeHost) Commands() []*cmdtable.Command { return servedRows }

func (h nodeHost) Side() cmdtable.Side { return cmdtable.SideNode }

func (h nodeHost) Lookup(name []byte) *cmdtable.Command {
	if sp := lookupSpec(name); sp != nil {
		return sp.Command
	}
	return nil
}

func (h nodeHost) ResetStats() {
	h.s.resetStats()
	h.s.obs.ResetStats()
}

// ConfigParams are the settings CONFIG GET shows; appendfsync and maxmemory
// (the shard's size limit until the next assignment with another size) can
// be changed at run time.
func (h nodeHost) ConfigParams() []conncmd.Param {
	s := h.s
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	dir := s.cfg.Dir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return append([]conncmd.Param{
		{Name: "appendfsync", Get: func() string { return s.db.SyncPolicy().String() },
			Check: func(v []byte) string {
				if _, err := bitcask.ParseSyncPolicy(strings.ToLower(string(v))); err != nil {
					return "argument(s) must be one of the following: everysec, always, no"
				}
				return ""
			},
			Set: func(v []byte) {
				p, _ := bitcask.ParseSyncPolicy(strings.ToLower(string(v)))
				s.db.SetSyncPolicy(p)
				s.setTxLogSync(p)
				s.log.Info("appendfsync changed", "appendfsync", p.String())
			}},
		conncmd.Const("appendonly", "yes"),
		s.obuf.Param(func(v string) { s.log.Info("client-output-buffer-limit changed", "value", v) }),
		conncmd.Const("bind", host),
		s.scripts.thresholdParam("busy-reply-threshold"),
		s.scripts.thresholdParam("lua-time-limit"),
		conncmd.Const("databases", "1"),
		conncmd.Const("dir", dir),
		conncmd.Const("maxclients", strconv.Itoa(s.cfg.MaxClients)),
		{Name: "maxmemory", Get: func() string { return strconv.FormatInt(s.sizeLimit.Load(), 10) },
			Check: func(v []byte) string {
				if _, ok := conncmd.ParseMemory(v); !ok {
					return "argument must be a memory value"
				}
				return ""
			},
			Set: func(v []byte) {
				n, _ := conncmd.ParseMemory(v)
				s.sizeLimit.Store(n)
				s.log.Info("size limit changed", "maxmemory", n)
			}},
		conncmd.Const("maxmemory-policy", "noeviction"),
		conncmd.Const("port", s.port()),
		conncmd.Const("proto-max-bulk-len", strconv.Itoa(resp.MaxBulkLen)),
		conncmd.Const("requirepass", s.cfg.RequirePass),
		conncmd.Const("save", ""),
		conncmd.Const("timeout", "0"),
	}, s.obs.ConfigParams()...)
}

func (s *Server) port() string {
	if a := s.Addr(); a != nil {
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			return p
		}
	}
	_, p, _ := net.SplitHostPort(s.cfg.Addr)
	return p
}

func (s *Server) resetStats() {
	st := &s.stats
	for _, a := range []interface{ Store(int64) }{&st.conns, &st.rejected, &st.cmds, &st.netIn, &st.netOut, &st.hits, &st.misses, &st.protoErr} {
		a.Store(0)
	}
	s.mu.Lock()
	for c := range s.clients {
		c.cmds.Store(0)
		c.netOut.Store(0)
		c.hits.Store(0)
		c.misses.Store(0)
	}
	s.mu.Unlock()
}
