package shardnode

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// client is one connection. Everything but the atomics is touched only by
// the connection's goroutine; the atomics are read by CLIENT LIST and INFO
// from other connections.
type client struct {
	srv  *Server
	id   int64
	nc   net.Conn
	lc   *limitConn
	addr string
	// out collects the replies of the pipeline being served.
	out []byte
	// proto is the RESP version the client chose with HELLO.
	proto resp.Proto
	// authed is false until AUTH or HELLO AUTH when a password is set.
	authed bool
	// closing asks serveConn to close after writing the replies (QUIT).
	closing bool
	// now is the time in Unix milliseconds for the pipeline being served:
	// every command of it sees the same clock, as Redis's command time
	// snapshot.
	now int64

	// st is the storage the current command reads and writes: the open
	// transaction, or the database for reads outside one.
	st  store
	txs txStore
	dbs dbStore
	// req is this connection's entry in the server's write group.
	req commitReq

	// MULTI state.
	inMulti    bool
	multiDirty bool         // a command was refused while queueing: EXEC aborts
	queue      []queued     // commands queued since MULTI
	watches    []watchedKey // WATCHed keys and what they were
	specBuf    []*cmdSpec   // the specs of the pipeline being served
	scratch    []byte       // scratch for values read or built by a command

	created time.Time
	// Fields other connections read.
	name       atomic.Pointer[string]
	libName    atomic.Pointer[string]
	libVer     atomic.Pointer[string]
	lastCmd    atomic.Pointer[string]
	lastActive atomic.Int64 // Unix ms
	protoSeen  atomic.Int32
	multiLen   atomic.Int32 // -1 outside MULTI
	cmds       atomic.Int64
	netIn      atomic.Int64
	netOut     atomic.Int64
	hits       atomic.Int64
	misses     atomic.Int64
}

type queued struct {
	spec *cmdSpec
	args [][]byte
}

type watchedKey struct {
	key    string
	exists bool
	seq    uint64
}

// newClient registers a connection, or returns nil once the server shuts
// down.
func (s *Server) newClient(nc net.Conn) *client {
	c := &client{
		srv:     s,
		id:      s.nextID.Add(1),
		nc:      nc,
		addr:    nc.RemoteAddr().String(),
		proto:   resp.RESP2,
		authed:  s.cfg.RequirePass == "",
		created: time.Now(),
	}
	c.lc = &limitConn{Conn: nc}
	c.req = commitReq{c: c, wake: make(chan bool, 1)}
	c.lc.sc.unauth = func() bool { return !c.authed }
	c.dbs.db, c.dbs.rc, c.txs.rc = s.db, s.cache, s.cache
	c.protoSeen.Store(2)
	c.multiLen.Store(-1)
	c.lastActive.Store(c.created.UnixMilli())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return nil
	}
	s.clients[c] = struct{}{}
	s.nclients.Add(1)
	s.connWG.Add(1)
	return c
}

// dropClient unregisters a connection and folds its counters into the
// server's.
func (s *Server) dropClient(c *client) {
	c.nc.Close()
	s.stats.cmds.Add(c.cmds.Load())
	s.stats.netIn.Add(c.lc.in)
	s.stats.netOut.Add(c.netOut.Load())
	s.stats.hits.Add(c.hits.Load())
	s.stats.misses.Add(c.misses.Load())
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.nclients.Add(-1)
	s.connWG.Done()
}

// resetState is RESET: the connection as it was after connecting.
func (c *client) resetState() {
	c.inMulti, c.multiDirty = false, false
	c.queue = c.queue[:0]
	c.watches = c.watches[:0]
	c.multiLen.Store(-1)
	c.proto = resp.RESP2
	c.protoSeen.Store(2)
	c.name.Store(nil)
	c.authed = c.srv.cfg.RequirePass == ""
}
