package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/resp"
)

// The pipelined client the proxy uses to talk to a shard node.
//
// A Conn is one TCP connection shared by many callers. Send appends the
// requests' bytes to a write buffer and queues the requests; whoever finds
// no write in progress becomes the writer and writes everything buffered,
// again and again until the buffer stays empty, so requests from concurrent
// callers leave in one write without a hand-off to a writer goroutine. One
// reader goroutine per connection frames replies (without decoding them)
// and hands each to the oldest queued request: replies arrive in the order
// the requests were written. A request whose reply is late by more than the
// timeout closes the connection; closing fails every queued request with
// the reason, so every request completes exactly once.
//
// A Client keeps a few Conns to one address, redials a broken one with
// backoff and runs a handshake (AUTH, HELLO, SHARD.ASSIGN ...) on each new
// connection before any request uses it.

// Request is one or more encoded commands sent as a unit; their N replies
// are appended to Reply. A request is reusable once it has completed.
type Request struct {
	Cmd   []byte  // encoded command(s)
	N     int     // replies expected; 0 means 1
	Reply []byte  // the raw replies, back to back
	Err   error   // set when the request was not answered: Reply is then meaningless
	W     *Waiter // told when the request completes
	// Sink, if set, is told the size of each reply before it is kept; when
	// it returns false the reply's bytes are dropped (the request still
	// completes, and the connection goes on with the next reply): the
	// caller's client was closed for its output buffer limit, and the
	// other requests on the connection must not wait for it.
	Sink func(n int) bool

	got int   // replies received
	end int64 // the Conn's stream offset just after Cmd (see Conn.written)
}

// NotSentError is the failure of a request whose bytes never reached the
// node's socket: it certainly did not run, so a caller may say TRYAGAIN.
// Any other failure of a request (the connection broke or timed out after
// its bytes were handed to write(2)) leaves its outcome unknown.
type NotSentError struct{ Err error }

func (e *NotSentError) Error() string { return e.Err.Error() }
func (e *NotSentError) Unwrap() error { return e.Err }

// NotSent reports whether err is a NotSentError.
func NotSent(err error) bool {
	var ns *NotSentError
	return errors.As(err, &ns)
}

func notSent(err error) error {
	if NotSent(err) {
		return err
	}
	return &NotSentError{err}
}

func (r *Request) want() int {
	if r.N <= 0 {
		return 1
	}
	return r.N
}

func (r *Request) complete() {
	if r.W != nil {
		r.W.done()
	}
}

func (r *Request) fail(err error) {
	r.Err = err
	r.complete()
}

// Waiter lets one goroutine wait for a set of requests sent through any
// number of connections. Begin, then send requests carrying the Waiter, then
// Wait.
type Waiter struct {
	n  atomic.Int64
	ch chan struct{}
}

// NewWaiter returns a waiter ready to Begin.
func NewWaiter() *Waiter { return &Waiter{ch: make(chan struct{}, 1)} }

// Begin starts a round: until Wait, completions cannot finish the round
// even if they catch up with the requests sent so far.
func (w *Waiter) Begin() { w.n.Store(1) }

// Wait blocks until every request sent since Begin has completed.
func (w *Waiter) Wait() {
	if w.n.Add(-1) != 0 {
		<-w.ch
	}
}

func (w *Waiter) add() { w.n.Add(1) }

func (w *Waiter) done() {
	if w.n.Add(-1) == 0 {
		w.ch <- struct{}{}
	}
}

// Handshake runs on a new connection before it carries requests. do sends
// one command and returns its decoded reply, which aliases a buffer that the
// next call reuses.
type Handshake func(do func(args ...string) (resp.Value, error)) error

// ErrClosed is the reason given to requests sent on a closed Client.
var ErrClosed = errors.New("client closed")

// Conn is one pipelined connection. Its methods are safe for concurrent use.
type Conn struct {
	nc      net.Conn
	rc      syscall.RawConn // nc's descriptor, for system calls the scheduler need not see
	rr      *resp.ReplyReader
	timeout time.Duration

	// sw is the writer's (see Send): writes through rc.
	sw sockio.Writer

	mu      sync.Mutex
	wbuf    []byte     // bytes queued for the next write
	spare   []byte     // the other write buffer, swapped with wbuf on each write
	writing bool       // a caller is in the write loop
	yield   bool       // the writer yields once before writing, to batch more
	queue   []*Request // written or about to be, awaiting replies, oldest first
	err     error      // set once the reader has stopped: why the connection is unusable
	// appended counts the request bytes queued on this connection and
	// written those handed to write(2), successful or not: a request whose
	// bytes end at or before written may have reached the node; one that
	// starts at or after it certainly did not (NotSentError).
	appended, written int64

	// hupKey is the connection's WatchHup key (0: not watched);
	// peerClosed is set once the node closed its side.
	hupKey     uint32
	peerClosed atomic.Bool

	// observe, when set (before the Conn is used), gets sampled round
	// trips: probe is a request written at probeAt (Unix nanoseconds)
	// whose reply is awaited (see Send).
	observe func(time.Duration)
	probe   atomic.Pointer[Request]
	probeAt atomic.Int64

	reason   atomic.Pointer[error] // first reason given for closing
	inflight atomic.Int64          // requests queued and not yet complete
	replies  atomic.Uint64         // replies received, for the watchdog
	// writes counts the writer's finished writes: the watchdog's timeout
	// runs from the end of the last one, since no reply can come for a
	// request not yet sent (a node that stopped reading stops them too,
	// once the socket buffers are full).
	writes atomic.Uint64
	// busy, when set (before the Conn is used), extends the watchdog's
	// timeout while big requests to the node are in flight (solo.go);
	// soloExtra is this solo connection's part of it.
	busy      *Busy
	soloExtra int64
	// nodeID is the node's client id of a connection for blocking
	// commands, owner the Client it came from (Unblock); set before use.
	nodeID    int64
	owner     *Client
	done      chan struct{} // closed when the reader has failed every request
	closeOnce sync.Once
}

// Dial connects to addr, runs hs on the connection and starts its reader.
// timeout bounds the dial and the handshake, and is the longest a request
// may wait for its reply before the connection is closed (0: no limit).
func Dial(addr string, timeout time.Duration, hs Handshake) (*Conn, error) {
	return dial(addr, timeout, hs, nil, true)
}

// dial is Dial for a connection of a Client, whose watchdog busy extends;
// without watchdog, timeout bounds only the dial and the handshake (a
// connection for blocking commands, whose replies take as long as the
// command's own timeout, blocking.go).
func dial(addr string, timeout time.Duration, hs Handshake, busy *Busy, watchdog bool) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, shortNetError(err)
	}
	if timeout > 0 {
		nc.SetDeadline(time.Now().Add(timeout))
	}
	rr := resp.NewReplyReader(nc, 64<<10)
	if hs != nil {
		var wb []byte
		do := func(args ...string) (resp.Value, error) {
			wb = resp.AppendCommandStrings(wb[:0], args...)
			if _, err := nc.Write(wb); err != nil {
				return resp.Value{}, shortNetError(err)
			}
			raw, err := rr.Next()
			if err != nil {
				return resp.Value{}, shortNetError(err)
			}
			v, _, err := resp.Parse(raw)
			return v, err
		}
		if err := hs(do); err != nil {
			nc.Close()
			return nil, err
		}
	}
	nc.SetDeadline(time.Time{})
	c := &Conn{nc: nc, rr: rr, timeout: timeout, done: make(chan struct{}), yield: true, busy: busy}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.sw.Init(rc)
			_ = rc.Control(func(fd uintptr) {
				c.hupKey, _ = sockio.WatchHup(fd, c.onPeerClosed)
			})
		}
	}
	go c.readLoop()
	if timeout > 0 && watchdog {
		go c.watch()
	}
	return c, nil
}

// shortNetError drops the "dial tcp addr:" prefix: callers name the address.
func shortNetError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	if errors.Is(err, io.EOF) {
		return errors.New("connection closed by peer")
	}
	return err
}

// Send queues the requests and writes them, in order. Each completes later
// with its replies or with Err set; a request sent on a closed connection
// completes at once.
func (c *Conn) Send(reqs ...*Request) {
	for _, r := range reqs {
		r.got, r.Err, r.Reply = 0, nil, r.Reply[:0]
		if r.W != nil {
			r.W.add()
		}
	}
	c.mu.Lock()
	if c.err != nil {
		err := notSent(c.err)
		c.mu.Unlock()
		for _, r := range reqs {
			r.fail(err)
		}
		return
	}
	for _, r := range reqs {
		c.wbuf = append(c.wbuf, r.Cmd...)
		c.appended += int64(len(r.Cmd))
		r.end = c.appended
	}
	c.queue = append(c.queue, reqs...)
	c.inflight.Add(int64(len(reqs)))
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	if c.yield {
		// Let the other callers made runnable by the same network event
		// append their requests: they then leave in this write.
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	for len(c.wbuf) > 0 {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.written += int64(len(buf))
		if c.observe != nil && c.probe.Load() == nil && len(c.queue) > 0 {
			// A round trip is sampled per write, not per request: the
			// last request this write carries, timed from here to its
			// reply. One clock read per write system call.
			c.probeAt.Store(time.Now().UnixNano())
			c.probe.Store(c.queue[len(c.queue)-1])
		}
		c.mu.Unlock()
		err := c.write(buf)
		c.writes.Add(1)
		c.mu.Lock()
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			// The reader sees the closed socket and fails the queue; what
			// was buffered behind buf was never written.
			c.appended -= int64(len(c.wbuf))
			c.wbuf = c.wbuf[:0]
			c.mu.Unlock()
			c.Fail(shortNetError(err))
			c.mu.Lock()
			break
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// write writes buf; only the writer (Send) calls it.
func (c *Conn) write(buf []byte) error {
	var err error
	if c.rc == nil {
		_, err = c.nc.Write(buf)
	} else {
		_, err = c.sw.Write(buf)
	}
	return err
}

// Fail closes the connection; queued requests complete with reason.
func (c *Conn) Fail(reason error) {
	c.closeOnce.Do(func() {
		c.reason.Store(&reason)
		c.nc.Close()
	})
}

// Close closes the connection and waits until every queued request has
// completed.
func (c *Conn) Close() {
	c.Fail(errors.New("connection closed by the proxy"))
	<-c.done
}

// Done is closed once the connection is unusable and every request sent on
// it has completed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Failed reports whether the connection has stopped carrying requests.
func (c *Conn) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.reason.Load() != nil
}

// Err is why the connection stopped, once Done is closed.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Inflight is the number of requests awaiting replies.
func (c *Conn) Inflight() int { return int(c.inflight.Load()) }

// readLoop reads replies and completes the requests they answer, oldest
// first, until the connection fails.
func (c *Conn) readLoop() {
	defer close(c.done)
	var d delivery
	if c.rc != nil {
		c.stop(c.readRaw(&d), d.local[d.li:])
		return
	}
	for {
		raw, err := c.rr.Next()
		if err == nil {
			err = c.deliver(&d, raw)
		}
		if err != nil {
			c.stop(err, d.local[d.li:])
			return
		}
	}
}

// delivery is readLoop's state: requests taken from c.queue whose replies
// come next.
type delivery struct {
	local []*Request
	li    int
}

// deliver gives raw, the next reply, to the request it answers.
func (c *Conn) deliver(d *delivery, raw []byte) error {
	if raw[0] == '>' {
		return nil // out-of-band push: not the reply to a request
	}
	if d.li == len(d.local) {
		clear(d.local)
		c.mu.Lock()
		d.local, c.queue = c.queue, d.local[:0]
		c.mu.Unlock()
		d.li = 0
		if len(d.local) == 0 {
			return fmt.Errorf("%w: reply without a request", resp.ErrProtocol)
		}
	}
	r := d.local[d.li]
	if r.Sink == nil || r.Sink(len(raw)) {
		r.Reply = append(r.Reply, raw...)
	}
	r.got++
	c.replies.Add(1)
	if r.got >= r.want() {
		d.li++
		c.inflight.Add(-1)
		if c.probe.Load() == r {
			c.probe.Store(nil)
			c.observe(time.Duration(time.Now().UnixNano() - c.probeAt.Load()))
		}
		r.complete() // r belongs to its sender from here on
	}
	return nil
}

// readRaw is readLoop on the descriptor, inside one RawConn.Read for the
// life of the connection, so that the poller's readiness is never reset
// between reads: after a read that did not fill the buffer the socket was
// empty, and the loop waits for the next edge instead of reading again to
// be told EAGAIN. A FIN that arrived with the last bytes raises no edge;
// WatchHup hears it (hup_linux.go), and then, as on a connection it could
// not watch, the loop reads until EAGAIN or EOF.
func (c *Conn) readRaw(d *delivery) error {
	var ferr error
	short := false
	for {
		err := c.rc.Read(func(fd uintptr) bool {
			for {
				for {
					raw, err := c.rr.NextBuffered()
					if err == nil && raw != nil {
						err = c.deliver(d, raw)
					}
					if err != nil {
						ferr = err
						return true
					}
					if raw == nil {
						break
					}
				}
				if short && !c.peerClosed.Load() {
					short = false
					return false // wait for the next edge
				}
				n, room, errno := c.rr.ReadFd(fd, sockio.RawRead)
				switch {
				case errno == syscall.EINTR:
					continue
				case errno == syscall.EAGAIN:
					return false
				case errno != 0:
					ferr = errno
					return true
				case n == 0:
					ferr = io.EOF
					return true
				}
				short = c.hupKey != 0 && n < room
			}
		})
		if ferr != nil {
			return ferr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && c.peerClosed.Load() {
			// WatchHup's wake-up: read the replies left, then EOF.
			_ = c.nc.SetReadDeadline(time.Time{})
			short = false
			continue
		}
		return err
	}
}

// onPeerClosed is the WatchHup callback: the node closed its side. The
// deadline wakes the reader if it waits for the poller.
func (c *Conn) onPeerClosed() {
	c.peerClosed.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

func (c *Conn) stop(err error, rest []*Request) {
	sockio.UnwatchHup(c.hupKey)
	if p := c.reason.Load(); p != nil {
		err = *p
	} else {
		err = shortNetError(err)
		c.Fail(err)
	}
	c.mu.Lock()
	c.err = err
	q := c.queue
	c.queue = nil
	written := c.written
	c.mu.Unlock()
	fail := func(r *Request) {
		c.inflight.Add(-1)
		if r.end-int64(len(r.Cmd)) >= written {
			r.fail(notSent(err))
		} else {
			r.fail(err)
		}
	}
	for _, r := range rest {
		fail(r)
	}
	for _, r := range q {
		fail(r)
	}
}

// watch closes the connection when requests are waiting and no reply has
// come for the timeout.
func (c *Conn) watch() {
	tick := c.timeout / 10
	tick = max(tick, time.Millisecond)
	tick = min(tick, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	seen, seenW := c.replies.Load(), c.writes.Load()
	since := time.Now()
	last := since
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			now := time.Now()
			late := now.Sub(last) > 3*tick+100*time.Millisecond
			last = now
			r, w := c.replies.Load(), c.writes.Load()
			// A late tick means the proxy itself did not run (a client's
			// 256 MiB buffer copy holds a P and cannot be preempted):
			// the reader may not have run either, so the node's silence
			// is measured afresh from here.
			if c.inflight.Load() == 0 || r != seen || w != seenW || late {
				seen, seenW, since = r, w, now
				continue
			}
			p := c.timeout
			if c.busy != nil {
				p += time.Duration(c.busy.extra.Load())
			}
			if now.Sub(since) >= p {
				c.Fail(fmt.Errorf("no reply within %v", p))
				return
			}
		}
	}
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Addr       string
	Conns      int           // connections kept open; at least 1
	Timeout    time.Duration // dial, handshake and per-request timeout
	Handshake  Handshake     // run on every new connection
	MinBackoff time.Duration // first wait before redialing; default 50ms
	MaxBackoff time.Duration // longest wait between dials; default 1s
	// OnState, if set, is called when the client goes from no usable
	// connection to one (up) or back (down, with the reason). Calls are
	// serialized.
	OnState func(up bool, err error)
	// Busy is shared by the Clients of one node (solo.go); nil: the
	// Client's own.
	Busy *Busy
	// Observe, if set, is given round trips to the node, sampled: about one
	// per write to a connection, from the write to the reply of the last
	// request it carried. It is called by the connections' readers.
	Observe func(time.Duration)
}

// Client keeps Conns connections to one address open, redialing broken ones.
type Client struct {
	cfg    ClientConfig
	conns  []atomic.Pointer[Conn]
	closed chan struct{}
	wg     sync.WaitGroup

	// ready is closed once a connection was up or a dial failed
	// (Ready).
	ready chan struct{}

	mu      sync.Mutex
	up      int   // connections currently usable
	lastErr error // why the most recent dial or connection failed
	ever    bool  // some connection has been up
	// idleSolo are connections for big requests between uses (solo.go);
	// idleBlocking those for blocking commands (blocking.go).
	idleSolo     []*Conn
	idleBlocking []*Conn
	// idleTx are connections for transaction messages (txconn.go).
	idleTx []*Conn
	busy   *Busy
}

// NewClient starts dialing in the background and returns at once.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Conns < 1 {
		cfg.Conns = 1
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Second, cfg.MinBackoff)
	}
	if cfg.Busy == nil {
		cfg.Busy = &Busy{}
	}
	cl := &Client{
		cfg:     cfg,
		busy:    cfg.Busy,
		conns:   make([]atomic.Pointer[Conn], cfg.Conns),
		closed:  make(chan struct{}),
		ready:   make(chan struct{}),
		lastErr: errors.New("not connected yet"),
	}
	for i := range cl.conns {
		cl.wg.Add(1)
		go cl.run(i)
	}
	return cl
}

// Addr is the address the client dials.
func (cl *Client) Addr() string { return cl.cfg.Addr }

func (cl *Client) run(i int) {
	defer cl.wg.Done()
	backoff := cl.cfg.MinBackoff
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-cl.closed:
			return
		default:
		}
		c, err := dial(cl.cfg.Addr, cl.cfg.Timeout, cl.cfg.Handshake, cl.busy, true)
		if err != nil {
			cl.setErr(err)
			timer.Reset(backoff)
			select {
			case <-cl.closed:
				return
			case <-timer.C:
			}
			backoff = min(2*backoff, cl.cfg.MaxBackoff)
			continue
		}
		backoff = cl.cfg.MinBackoff
		c.observe = cl.cfg.Observe // before the Conn is published: Send reads it
		cl.conns[i].Store(c)
		cl.transition(+1, nil)
		select {
		case <-c.Done():
		case <-cl.closed:
			c.Close()
		}
		cl.conns[i].Store(nil)
		cl.transition(-1, c.Err())
	}
}

func (cl *Client) setErr(err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.lastErr = err
	if !cl.ever {
		cl.ever = true // report the first failure; later ones are not transitions
		close(cl.ready)
		if cl.cfg.OnState != nil {
			cl.cfg.OnState(false, err)
		}
	}
}

func (cl *Client) transition(d int, err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.up += d
	if !cl.ever {
		cl.ever = true
		close(cl.ready)
	}
	if err != nil {
		cl.lastErr = err
	}
	if cl.cfg.OnState == nil {
		return
	}
	select {
	case <-cl.closed:
		return // closing is not news
	default:
	}
	if d > 0 && cl.up == 1 {
		cl.cfg.OnState(true, nil)
	} else if d < 0 && cl.up == 0 {
		cl.cfg.OnState(false, cl.lastErr)
	}
}

// Ready is closed once the client has been up or has failed to dial: what
// a new client's first request finds from then on is the node's state,
// not the client still dialing.
func (cl *Client) Ready() <-chan struct{} { return cl.ready }

// Up reports whether some connection is usable.
func (cl *Client) Up() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.up > 0
}

// Err is why the client has no usable connection (meaningful when !Up).
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.lastErr
}

// Send sends reqs, in order, on connection slot%Conns (or another one if
// that one is down). A caller that always uses the same slot has its
// requests executed in the order it sent them.
func (cl *Client) Send(slot int, reqs ...*Request) {
	if c := cl.Conn(slot); c != nil {
		c.Send(reqs...)
		return
	}
	select {
	case <-cl.ready:
	default:
		// Still dialing for the first time (a proxy that just started):
		// the request waits for that dial's outcome, up to the timeout,
		// instead of failing with "not connected yet".
		t := time.NewTimer(cl.cfg.Timeout)
		select {
		case <-cl.ready:
		case <-t.C:
		case <-cl.closed:
		}
		t.Stop()
		if c := cl.Conn(slot); c != nil {
			c.Send(reqs...)
			return
		}
	}
	err := cl.Err()
	select {
	case <-cl.closed:
		err = ErrClosed
	default:
	}
	if err == nil {
		err = errors.New("no connection")
	}
	err = notSent(err)
	for _, r := range reqs {
		if r.W != nil {
			r.W.add()
		}
		r.fail(err)
	}
}

// Conn is the connection Send(slot, ...) uses now, nil when none is up: a
// caller that keeps state on the node's side of one connection sends on it
// directly.
func (cl *Client) Conn(slot int) *Conn {
	n := len(cl.conns)
	for i := 0; i < n; i++ {
		if c := cl.conns[(slot+i)%n].Load(); c != nil {
			return c
		}
	}
	return nil
}

// Do sends one command and waits for its reply.
func (cl *Client) Do(args ...string) (resp.Value, error) {
	r := &Request{Cmd: resp.AppendCommandStrings(nil, args...), W: NewWaiter()}
	r.W.Begin()
	cl.Send(0, r)
	r.W.Wait()
	if r.Err != nil {
		return resp.Value{}, r.Err
	}
	v, _, err := resp.Parse(r.Reply)
	return v, err
}

// Close closes every connection, failing queued requests, and stops
// redialing.
func (cl *Client) Close() {
	select {
	case <-cl.closed:
		return
	default:
	}
	close(cl.closed)
	cl.wg.Wait()
	cl.closeSolo()
	cl.closeBlocking()
	cl.closeTx()
}
