package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/sockio"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Server is a shardkv proxy: a Redis-compatible front end that routes each
// command to the shard nodes of its range map.
type Server struct {
	cfg Config
	log hclog.Logger

	table    atomic.Pointer[table] // the current routing snapshot
	scripts  scriptCache           // bodies of the scripts seen (script.go)
	reloadMu sync.Mutex            // one reload at a time
	// refreshMu: one read of the map source at a time (refreshMap)
	refreshMu sync.Mutex
	// movedRetries counts batches sent again after a node's newer epoch
	movedRetries atomic.Int64

	mu       sync.Mutex
	serveOn  bool // Serve was called
	ln       net.Listener
	clients  map[*client]struct{}
	serving  chan struct{} // closed when Serve returns
	shutting atomic.Bool
	drainCtx context.Context // bounds the wait for batches in flight at Shutdown
	closed   bool

	inBatch atomic.Int64 // client batches being processed
	nextID  atomic.Int64
	started time.Time
	runID   string // INFO's run_id: this process's random identity

	// INFO stats
	connsReceived atomic.Int64
	rejected      atomic.Int64
	commands      atomic.Int64
	netIn         atomic.Int64
	netOut        atomic.Int64
	nclients      atomic.Int64
	blocked       atomic.Int64 // clients waiting in a blocking command (blocking.go)

	// obs is the command statistics, slow log, latency monitor and rates
	// (observe.go); monitors are the MONITOR streams, nil when there are
	// none, replaced under monMu (monitor.go).
	obs      *conncmd.Observer
	monitors atomic.Pointer[[]*monitor]
	// obuf is client-output-buffer-limit (replymem.go).
	obuf *conncmd.OutputLimits
	// ps is Pub/Sub: the subscriptions and the nodes' subscriber connections (pubsub.go).
	ps    *psHub
	monMu sync.Mutex
}

// New validates cfg, loads the map and starts connecting to every shard
// node, pushing each its assignment. Nodes that are not up yet are retried
// in the background while the others serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := cfg.loadMap()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		clients: make(map[*client]struct{}),
		started: time.Now(),
		runID:   conncmd.NewRunID(),
	}
	s.obs = s.newObserver()
	s.obuf = conncmd.NewOutputLimits()
	s.ps = newPsHub(s)
	s.obuf.Set([]byte(cfg.OutputBufferLimit)) // checked by Validate; empty changes nothing
	for _, e := range m.Shards {
		log.Info("range map", "shard", e.Name, "start", e.Start, "end", e.End, "size", e.Size, "addr", e.Addr())
	}
	s.table.Store(s.buildTable(m, nil))
	return s, nil
}

// ListenAndServe listens on cfg.Addr and serves clients until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Addr is the address the server listens on, once Serve has started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve serves clients on ln until Shutdown, and closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed || s.serveOn {
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		if s.closed {
			return ErrServerClosed
		}
		return errors.New("proxy: Serve called twice")
	}
	s.serveOn = true
	s.ln = ln
	s.serving = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String())
	err := s.acceptLoop(ln)
	close(s.serving)
	if s.shutting.Load() {
		return ErrServerClosed
	}
	return err
}

// acceptLoop starts a goroutine per client until the listener is closed. At
// Shutdown it lets the batches in flight be answered, then closes every
// client connection.
func (s *Server) acceptLoop(ln net.Listener) error {
	defer ln.Close()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				// A client blocked in a blocking command would hold its
				// batch for as long as it waits: it gets TRYAGAIN now.
				for _, c := range s.snapshot() {
					if bc := c.blockConn.Load(); bc != nil {
						bc.Fail(errShuttingDown)
					}
				}
				s.drain()
				for _, c := range s.snapshot() {
					c.nc.Close()
				}
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait a little, as
			// net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "error", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if c := s.accept(nc); c != nil {
			go s.serveConn(c)
		}
	}
}

// accept admits a new connection, or refuses it over the client limit.
func (s *Server) accept(nc net.Conn) *client {
	s.connsReceived.Add(1)
	if s.nclients.Load() >= int64(s.cfg.MaxClients) || s.shutting.Load() {
		s.rejected.Add(1)
		go func() {
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
		}()
		return nil
	}
	c := newClient(s, nc)
	s.nclients.Add(1)
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// serveConn serves one client connection until it ends.
func (s *Server) serveConn(c *client) {
	defer func() {
		c.psFinish()
		sockio.UnwatchHup(c.hupKey)
		c.nc.Close()
		c.unpin()
		c.psReset(true)
		c.stopMonitor()
		c.dropBuffers()
		s.nclients.Add(-1)
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	c.run()
}

// Shutdown stops accepting clients, lets batches in flight finish and be
// answered (until ctx is done), closes client connections and then the
// connections to the shard nodes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.drainCtx = ctx
	s.shutting.Store(true)
	ln, serving := s.ln, s.serving
	s.mu.Unlock()
	var err error
	if ln != nil {
		ln.Close()
		select {
		case <-serving:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	for _, sh := range s.table.Load().nodes {
		sh.close()
	}
	s.ps.close()
	s.obs.Stop()
	s.log.Info("proxy stopped")
	return err
}

func (s *Server) drain() {
	s.mu.Lock()
	ctx := s.drainCtx
	s.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.inBatch.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// snapshot returns the connected clients.
func (s *Server) snapshot() []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}
