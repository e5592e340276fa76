// Package shardnode is the shard server: a Redis-protocol server that owns
// one range of the key-hash space and executes Redis 7 string and keyspace
// commands against one bitcask.DB.
//
// A Server is shaped like net/http's: New(Config), then ListenAndServe or
// Serve(listener), and Shutdown(ctx) to stop accepting, let in-flight
// commands finish, fsync and close the database.
//
// Connections are served by event loops (loop_linux.go), as Redis serves
// them: a loop waits on a level-triggered epoll set, reads once from each
// ready connection into the connection's own buffer, where a frame scanner
// enforces Redis's protocol limits on the bytes as they arrive and the
// commands' arguments are sliced out in place (resp.RequestReader), and
// executes the complete commands, a whole pipeline at a time. Consecutive
// keyed commands of a pipeline that contain a write form a run, and the runs
// of every connection of one pass are committed in one bitcask Update: one
// write and, under appendfsync always, one fsync before any reply leaves.
// Then each connection's replies go out with one write. Config.EventLoops -1
// gives each connection a goroutine instead, whose concurrent runs are
// grouped by a leader (commit.go). The node is Linux-only (epoll here,
// fdatasync in bitcask). GETs read the value from Bitcask's mapped files
// with no system call; an optional read cache (Config.ReadCacheBytes, off by
// default) keeps values checked against the key's sequence number
// (cache.go).
//
// Files: config.go (Config), server.go (listening, connections, shutdown),
// loop_linux.go (event loops), conn.go (the goroutine-per-connection loop,
// running a read's commands, writing replies), client.go (per-connection
// state), dispatch.go (the handler rows and the checks before a command),
// commit.go (grouped commits), store.go (transaction or database), cmd_*.go
// (the data commands), connhost.go (the node as internal/conncmd's Host: the
// connection and server commands both servers share), info.go (INFO),
// assignment.go (assignment.json, indexes.json), cache.go (read cache).
package shardnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("shardnode: server closed")

// Server is one shard node.
type Server struct {
	cfg   Config
	log   hclog.Logger
	db    *bitcask.DB
	cache *readCache // nil when Config.ReadCacheBytes is 0
	// xtx is the cross-shard transactions' lock table and log (xshard.go).
	xtx     txTable
	started time.Time
	runID   string
	// listPushed, when set, is told that a write gave the list key of
	// database db elements (a push, an LINSERT, LMOVE's destination),
	// from the writing transaction, before it commits: the hook for
	// blocking pops. nil when nothing waits on lists.
	listPushed func(db int, key []byte)
	// blocks are the clients blocked in blocking pops (blocking.go).
	blocks blockRegistry

	// assign is the current range assignment; nil before SHARD.ASSIGN.
	assign atomic.Pointer[Assignment]
	// sizeLimit is the byte limit on live data; 0 is none. It starts from
	// the assignment and CONFIG SET maxmemory changes it.
	sizeLimit atomic.Int64
	// strict refuses writes to indexes never created.
	strict atomic.Bool
	// indexes is the set of created indexes; replaced, never mutated.
	indexes atomic.Pointer[map[string]struct{}]
	// stateMu serializes changes to assignment.json and indexes.json.
	stateMu sync.Mutex
	// writes groups the commits of concurrent connections that have
	// goroutines of their own.
	writes writeGroup
	// watches are the keys WATCHed on this node and their watchers
	// (watch.go).
	watches watchRegistry
	// mig is the moves of ranges this node sends, its drops and its
	// fence (migrate.go).
	mig migrations
	// repl is the node's replication role and streams (replica.go).
	repl replState
	// hub is the Pub/Sub subscriptions (pubsub.go).
	hub *hub
	// admitted counts the connections against the limits (admission.go).
	admitted admissions
	// loops are the event loops, started by the first Serve (under mu).
	loops     []*eventLoop
	loopsErr  error
	loopsDone bool

	// draining is set by Shutdown and Close: connections stop reading
	// once the pipeline in hand is answered.
	draining atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	clients   map[*client]struct{}
	shutting  bool
	connWG    sync.WaitGroup
	nextID    atomic.Int64
	nclients  atomic.Int64
	closeOnce sync.Once
	closeErr  error

	stats serverStats
	// obs is the command statistics, slow log, latency monitor and rates
	// (observe.go); writeFailed is set once a write to disk failed.
	obs         *conncmd.Observer
	writeFailed atomic.Bool
	// clock dates sequence numbers for OBJECT IDLETIME (cmd_object.go).
	clock *writeClock
	// obuf is client-output-buffer-limit (replymem.go).
	obuf *conncmd.OutputLimits
	// refs are the big values opened for a proxy to fetch (streamref.go).
	refs streamRefs
	// scripts is the Lua VM and script cache (script.go).
	scripts *scriptEngine
}

// serverStats are the INFO stats counters of closed connections and of the
// server itself; live connections keep their own and are summed in.
type serverStats struct {
	conns    atomic.Int64 // total_connections_received
	rejected atomic.Int64 // rejected_connections
	cmds     atomic.Int64
	netIn    atomic.Int64
	netOut   atomic.Int64
	hits     atomic.Int64
	misses   atomic.Int64
	protoErr atomic.Int64
}

// New validates cfg, opens the data directory and loads the assignment and
// the index list. The server does not listen until Serve or ListenAndServe.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("shardnode: data directory: %w", err)
	}
	opts := bitcask.DefaultOptions()
	opts.Sync = cfg.Sync
	if cfg.MaxFileSize > 0 {
		opts.MaxFileSize = cfg.MaxFileSize
	}
	opts.MaxValueSize = resp.MaxBulkLen
	opts.Logger = log.Named("bitcask")
	opts.Namespace = rangemap.Index // INFO shard and INDEX.LIST count keys per index
	if cfg.Storage != nil {
		cfg.Storage(&opts)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("shardnode: storage options: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		started:   time.Now(),
		runID:     conncmd.NewRunID(),
		listeners: make(map[net.Listener]struct{}),
		clients:   make(map[*client]struct{}),
		cache:     newReadCache(cfg.ReadCacheBytes),
	}
	s.strict.Store(cfg.StrictIndexes)
	s.mig.closed = make(chan struct{})
	if err := s.loadState(); err != nil {
		return nil, err
	}
	if err := s.loadFences(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	db, err := bitcask.Open(storageDir(cfg.Dir), opts)
	if err != nil {
		return nil, fmt.Errorf("shardnode: open storage in %s: %w", cfg.Dir, err)
	}
	s.db = db
	if err := s.openTxLog(); err != nil {
		db.Close()
		return nil, err
	}
	s.obs = s.newObserver()
	s.clock = startWriteClock(db.LastSeq)
	s.obuf = conncmd.NewOutputLimits()
	s.hub = newHub()
	s.obuf.Set([]byte(cfg.OutputBufferLimit)) // checked by Validate; empty changes nothing
	s.scripts = newScriptEngine(s)
	s.initRepl()
	// Rebuilding the key directory left garbage about its own size (the
	// replay buffers), and with the heap goal at twice the directory the
	// runtime would keep those pages for good: a node restarted with a
	// million keys held nearly twice the memory of one that loaded them.
	// Collect once and give the pages back before serving.
	debug.FreeOSMemory()
	st := db.Stats()
	log.Info("storage recovered", "dir", cfg.Dir, "keys", db.Stats().Keys, "live_bytes", db.LiveBytes(),
		"truncated_records", st.RecoveryTruncated, "skipped_records", st.RecoverySkipped,
		"appendfsync", cfg.Sync.String(), "took", time.Since(t0).Round(time.Millisecond))
	if a := s.assign.Load(); a != nil {
		log.Info("assignment loaded", "ranges", a.describe())
	} else {
		log.Info("no assignment yet: waiting for SHARD.ASSIGN from the proxy")
	}
	s.startFenceWatches()
	return s, nil
}

// storageDir is where Bitcask keeps its files, beside assignment.json.
func storageDir(dir string) string { return dir }

// ListenAndServe listens on cfg.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close; it closes ln
// when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if n := s.cfg.eventLoops(); n > 0 && !s.loopsDone {
		s.loopsDone = true
		s.loopsErr = s.startLoops(n)
	}
	loops, loopsErr := len(s.loops) > 0, s.loopsErr
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	s.log.Info("shard node listening", "addr", ln.Addr().String(), "maxclients", s.cfg.MaxClients,
		"requirepass", s.cfg.RequirePass != "", "strict_indexes", s.strict.Load(), "event_loops", len(s.loops))
	if loopsErr != nil {
		s.log.Warn("event loops failed to start; serving each connection with a goroutine", "error", loopsErr)
	}
	var backoff time.Duration
	for next := 0; ; next++ {
		nc, err := ln.Accept()
		if err != nil {
			if s.isShutting() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff < time.Second {
					backoff *= 2
				}
				s.log.Warn("accept failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.stats.conns.Add(1)
		class, ok := s.admit()
		if !ok {
			s.stats.rejected.Add(1)
			go rejectConn(nc, errMaxClients)
			continue
		}
		if loops && s.adoptConn(nc, next, class) {
			continue
		}
		c := s.newClient(nc, class)
		if c == nil {
			s.releaseClass(class)
			nc.Close()
			return ErrServerClosed
		}
		c.startProbation()
		go s.serveConn(c)
	}
}

func isTemporary(err error) bool {
	// EMFILE and friends: accept again later rather than stop serving.
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) isShutting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutting
}

// rejectConn tells a client why it is refused and closes it.
func rejectConn(nc net.Conn, msg string) {
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write([]byte("-" + msg + "\r\n"))
	lingerClose(nc)
}

// lingerClose closes after the peer had a moment to read what was written:
// it shuts the write side and discards input briefly, so the kernel does not
// answer unread input with a reset that destroys the reply in flight.
func lingerClose(nc net.Conn) {
	if tc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		var buf [4096]byte
		for total := 0; total < 1<<20; {
			n, err := nc.Read(buf[:])
			total += n
			if err != nil {
				break
			}
		}
	}
	nc.Close()
}

// Addr returns the address of a listener the server serves on, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		return ln.Addr()
	}
	return nil
}

// Shutdown stops accepting, lets every connection finish the commands it
// has read and write their replies, then fsyncs and closes the database.
// When ctx ends first, the remaining connections are closed; the database
// is still closed once their goroutines return, and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	s.shutting = true
	for ln := range s.listeners {
		ln.Close()
	}
	// Wake connections waiting for a request; one in the middle of a
	// pipeline finishes it, writes the replies, then sees the deadline.
	// An event loop finishes its pass, then closes its connections.
	for c := range s.clients {
		if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
	for _, l := range s.loops {
		l.wake()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	var ctxErr error
	select {
	case <-done:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		s.mu.Lock()
		for c := range s.clients {
			if c.nc != nil {
				c.nc.Close()
			}
		}
		s.mu.Unlock()
		<-done
	}
	s.waitLoops()
	if err := s.closeDB(); err != nil {
		return err
	}
	return ctxErr
}

// Close closes the listeners and every connection at once, then closes the
// database. Prefer Shutdown.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.mu.Lock()
	s.shutting = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.clients {
		if c.nc != nil {
			c.nc.Close()
		}
	}
	for _, l := range s.loops {
		l.wake()
	}
	s.mu.Unlock()
	s.connWG.Wait()
	s.waitLoops()
	return s.closeDB()
}

// waitLoops waits until the event loops, woken by a shutdown, have exited.
func (s *Server) waitLoops() {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		<-l.done
	}
}

func (s *Server) closeDB() error {
	s.closeOnce.Do(func() {
		s.mig.closeOnce.Do(func() { close(s.mig.closed) })
		s.stopRepl()
		s.obs.Stop()
		s.clock.close()
		s.refs.closeAll()
		s.closeTxLog() // its resolver writes to s.db
		keys, live := s.db.Stats().Keys, s.db.LiveBytes()
		if err := s.db.Sync(); err != nil && !errors.Is(err, bitcask.ErrClosed) {
			s.log.Error("final fsync failed", "error", err)
			s.closeErr = err
		}
		if err := s.db.Close(); err != nil && !errors.Is(err, bitcask.ErrClosed) {
			s.log.Error("closing storage failed", "error", err)
			if s.closeErr == nil {
				s.closeErr = err
			}
		}
		s.log.Info("shard node stopped", "keys", keys, "live_bytes", live,
			"uptime", time.Since(s.started).Round(time.Second))
	})
	return s.closeErr
}

// connError answers a protocol error with Redis's text, after the replies
// already in c.out, and asks for the connection to be closed after a
// linger (c.linger).
func (s *Server) connError(c *client, err error) {
	var msg string
	var pe *resp.ProtocolError
	switch {
	case errors.As(err, &pe):
		msg = pe.Msg
	default:
		return
	}
	s.stats.protoErr.Add(1)
	s.log.Debug("protocol error; closing connection", "client", c.sess.Addr, "error", msg)
	c.out = append(append(append(c.out, "-ERR "...), msg...), "\r\n"...)
	c.linger = true
}
