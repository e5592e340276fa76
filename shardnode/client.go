package shardnode

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// client is one connection. Everything but the atomics is touched only by
// the connection's goroutine; the atomics are read by CLIENT LIST and INFO
// from other connections.
type client struct {
	srv *Server
	// sess is the state the connection commands share with the proxy's
	// connections (internal/conncmd): id, addresses, protocol, AUTH, name,
	// QUIT (sess.Quit: close after writing the replies).
	sess conncmd.Session
	nc   net.Conn
	// migRecv marks a connection that carries a move's stream
	// (MIGRATE.RECV): its keys are not checked against the assignment.
	migRecv bool
	// repl is the connection's part of replication (replica.go).
	repl clientRepl
	rb   resp.RequestReader // requests read and not yet executed (conn.go)
	// out collects the replies of the pipeline being served.
	out []byte
	// bigOuts tells how often out was over outKeep when written lately
	// (resetOut): a proxy's pipelined connection that keeps writing such
	// batches keeps its buffer.
	bigOuts int
	// bigBytes are the big requests and values read since the last
	// settle, released then (memrelease.go).
	bigBytes int
	// linger makes serveConn close with lingerClose (QUIT, protocol error).
	linger bool
	// class is how the connection counts against the node's limits, a
	// connClass (admission.go); probation, on an event loop's connection
	// admitted past MaxClients, ends its handshake time.
	class     atomic.Int32
	probation *time.Timer
	// inBytes counts the bytes read (INFO stats); netIn publishes it.
	inBytes int64
	// fd is the socket's descriptor while serveRaw's loop holds it or for
	// the life of an event loop's connection, else -1.
	fd int
	// loop is the event loop serving the connection; nil when it has a
	// goroutine of its own.
	loop *eventLoop
	// batch is the pipeline being executed, from specBuf and next on
	// (dispatch.go); batchErr is the parse error after it and perr the
	// error that ends the connection once the replies before it are sent.
	batch    []redcon.Command
	next     int
	batchErr error
	perr     error
	// wblocked: the socket did not take all of out; the event loop waits
	// until it can write the rest before reading more.
	wblocked bool
	// now is the time in Unix milliseconds for the pipeline being served:
	// every command of it sees the same clock, as Redis's command time
	// snapshot.
	now int64
	// batchT is when the pipeline being served started (observe.go).
	batchT time.Time
	// heldAt is when the pipeline was held for its replies to be written
	// (zero: it is not); obufSoftSince is when its pending replies were
	// first seen over the soft output buffer limit (replymem.go).
	heldAt        time.Time
	obufSoftSince int64

	// st is the storage the current command reads and writes: the open
	// transaction, or the database for reads outside one.
	st  store
	txs txStore
	dbs dbStore
	// req is this connection's entry in the server's write group.
	req commitReq
	// hkey and hval remember the hash of the last key checkKeys checked
	// (see keyHash).
	hkey []byte
	hval uint64

	// blocked is the connection's waiter while a blocking pop waits
	// (blocking.go); goneBlocked says the client left while its waiter
	// was being served.
	blocked     *waiter
	goneBlocked bool
	// txOff is where a cross-shard transaction message that runs off the
	// event loop stands (txexec.go).
	txOff txOffState

	// MULTI state.
	inExec     bool // EXEC is running the queue
	inMulti    bool
	multiDirty bool       // a command was refused while queueing: EXEC aborts
	queue      []queued   // commands queued since MULTI
	specBuf    []*cmdSpec // the specs of the pipeline being served
	scratch    []byte     // scratch for values read or built by a command
	// stream is a big value whose reply is being written a pass at a
	// time (replymem.go); its bulk header is in c.out already.
	stream *bitcask.ValueStream
	// streamOK is set while a command's reply may be streamed: it is a
	// reply of its own in the pipeline (runKeyed, a commit), not part of
	// EXEC's array or of a script's result.
	streamOK bool
	// streamRefs: the connection (a proxy's) takes stream references for
	// big GET replies (streamref.go).
	streamRefs bool
	// watch is the connection's own WATCH (watch.go); owners are the
	// WATCHes a proxy keeps on this connection for its clients
	// (SHARD.WATCH), by the proxy's client id.
	watch  watcher
	owners map[string]*watcher
	// ps is the connection's Pub/Sub state (pubsub.go), nil until its
	// first subscription; psLocked: the connection holds ps.wmu for the
	// batch being served (a goroutine of its own).
	ps       *clientSubs
	psLocked bool

	// Counters other connections read (INFO).
	cmds   atomic.Int64
	netIn  atomic.Int64
	netOut atomic.Int64
	hits   atomic.Int64
	misses atomic.Int64
}

type queued struct {
	spec *cmdSpec
	args [][]byte
}

// newClient registers a connection of class k (admission.go) served by a
// goroutine of its own, or returns nil once the server shuts down.
func (s *Server) newClient(nc net.Conn, k connClass) *client {
	laddr := ""
	if a := nc.LocalAddr(); a != nil {
		laddr = a.String()
	}
	c := s.initClient(nc.RemoteAddr().String(), laddr, k)
	c.nc = nc
	if !s.register(c) {
		return nil
	}
	return c
}

// initClient returns the state of a connection of class k before it is
// registered.
func (s *Server) initClient(raddr, laddr string, k connClass) *client {
	c := &client{srv: s, fd: -1}
	c.class.Store(int32(k))
	c.sess.Init(s.nextID.Add(1), raddr, laddr, s.cfg.RequirePass)
	c.req = commitReq{c: c, wake: make(chan bool, 1)}
	c.dbs.db, c.dbs.rc, c.txs.rc = s.db, s.cache, s.cache
	c.dbs.c, c.txs.c = c, c
	c.txs.watches = &s.watches
	return c
}

// register counts a connection in; false once the server shuts down.
func (s *Server) register(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.clients[c] = struct{}{}
	s.nclients.Add(1)
	s.connWG.Add(1)
	return true
}

// dropClient unregisters a connection and folds its counters into the
// server's. An event loop closes its connections' descriptors itself.
func (s *Server) dropClient(c *client) {
	if c.nc != nil {
		c.nc.Close()
	}
	s.stats.cmds.Add(c.cmds.Load())
	s.stats.netIn.Add(c.inBytes)
	s.stats.netOut.Add(c.netOut.Load())
	s.stats.hits.Add(c.hits.Load())
	s.stats.misses.Add(c.misses.Load())
	c.unwatchAll()
	c.dropBlocked()
	c.dropSubs(true)
	c.release()
	c.dropBuffers()
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.nclients.Add(-1)
	s.connWG.Done()
}

// Session, SwitchProto and ResetConn make a client the conncmd.Conn the
// shared connection commands act on.
func (c *client) Session() *conncmd.Session { return &c.sess }

// SwitchProto: replies are encoded per command in the session's protocol;
// only the messages other connections publish to this one need telling.
func (c *client) SwitchProto(p resp.Proto) {
	if c.ps != nil {
		c.ps.proto.Store(int32(p))
	}
}

// ResetConn is RESET's part that is the node's own: leave MULTI, forget
// WATCHed keys.
func (c *client) ResetConn() {
	c.inMulti, c.multiDirty = false, false
	clear(c.queue)
	c.queue = c.queue[:0]
	c.unwatchAll()
	c.dropSubs(false)
}

// unwatchAll forgets every WATCH kept on the connection: its own and the
// proxy clients'.
func (c *client) unwatchAll() {
	c.srv.watches.unwatch(&c.watch)
	for id, w := range c.owners {
		c.srv.watches.unwatch(w)
		delete(c.owners, id)
	}
}

// db is the connection's database (SELECT).
func (c *client) db() *bitcask.DB { return c.srv.db.Select(c.sess.DB()) }

// keyHash returns bitcask.Hash(key). The ownership check hashed the
// command's key already (the range map positions keys by the same
// xxhash64), so a handler reading or writing that very key (the same bytes
// of the request buffer) reuses that hash instead of computing it again.
// The memo is forgotten when the buffer is reused (client.settle).
func (c *client) keyHash(key []byte) uint64 {
	if len(key) > 0 && len(key) == len(c.hkey) && &key[0] == &c.hkey[0] {
		return c.hval
	}
	return bitcask.Hash(key)
}
