//go:build linux

package shardnode

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shardkv/shardkv/internal/sockio"
)

// Event loops: the node serves its connections the way Redis does, not with
// a goroutine each.
//
// Why: with a goroutine per connection every request paid for Go's
// edge-triggered poller (a read that comes back EAGAIN after each pipeline,
// because a FIN arriving with the last bytes raises no edge of its own), a
// trip through the scheduler to wake the goroutine, and futex wake-ups of
// idle threads; and writes of different connections met only through a
// leader hand-off (commit.go). perf put the node's cost per SET at -P 1 at
// two reads, a third of a pwrite, 0.2 context switches and 12 µs of CPU,
// against Redis's one read and 10 µs.
//
// An eventLoop owns an epoll set, level-triggered, and the connections in
// it. One pass: epoll_wait; one read from each ready connection and its
// complete commands executed, except that a run of keyed commands with a
// write is parked (serveFrom); the parked runs of all connections committed
// in one bitcask Update (one pwrite, and under appendfsync always one fsync,
// before any reply leaves), the parked connections resumed; then each
// connection's replies written with one write. A connection whose socket
// does not take all its replies is watched for EPOLLOUT instead of EPOLLIN
// until they are sent, so a client that does not read stops being read and
// its output cannot grow without bound. Level-triggered readiness means the
// loop never reads just to learn there is nothing (a FIN stays readable
// until it is read).
//
// Connections are accepted through the net.Listener and their descriptors
// moved out of the runtime's poller into a loop's epoll set, the loops
// taking them in turn. A connection that is closed after a reply
// that must reach the client (QUIT, a protocol error) leaves the loop and is
// closed by a goroutine with lingerClose, as the goroutine-per-connection
// mode (Config.EventLoops -1) does.

// eventLoop is one loop and its connections.
type eventLoop struct {
	srv    *Server
	epfd   int
	efd    int // eventfd: new connections, shutdown
	conns  map[int]*client
	events []unix.EpollEvent

	mu       sync.Mutex
	incoming []*client
	expiring []*client // on probation, their handshake time up (admission.go)
	woken    []*waiter // blocked connections handed back (blocking.go)
	// txDone are the connections whose off-loop message finished
	// (txexec.go); txDoneBuf is adopt's scratch for them.
	txDone    []*client
	txDoneBuf []*client
	closed    bool
	// pushes are the connections with Pub/Sub messages pushed to them
	// since the loop last took them (pubsub.go); pushing is the other
	// buffer; anyPushes is set with them, so that a pass of a node
	// without Pub/Sub does not take the lock for nothing.
	pushes    []*client
	pushing   []*client
	anyPushes atomic.Bool

	// State of one pass.
	touched []*client     // connections read in this pass
	parked  []*commitReq  // write runs waiting for the pass's commit
	spare   []*commitReq  // the other parked buffer
	adopted []*client     // scratch for adopt
	done    chan struct{} // closed when the loop has exited

	// Reply memory (replymem.go): held are the held pipelines whose
	// replies were all written, resumed in the next pass (resumed is the
	// other buffer); overSoft the connections blocked on a full socket
	// with replies over the soft output buffer limit, closed once its
	// time runs out (watchSoft).
	held     []*client
	resumed  []*client
	overSoft []*client

	// blockList are the waiters of the connections blocked in a blocking
	// pop, some stale (blocking_linux.go); blockNext is the earliest of
	// their deadlines (0: none), blockStale the stale entries; wokenBuf is
	// adopt's scratch.
	blockList  []*waiter
	blockNext  int64
	blockStale int
	wokenBuf   []*waiter

	// rawWait: wait in epoll_wait without telling the scheduler (see
	// wait); idle is set when such a wait was interrupted and the loop
	// waits the ordinary way until events come again.
	rawWait bool
	idle    atomic.Bool // read by tests

	// own is held by the goroutine serving the loop: the loop's, or
	// while a script is past busy-reply-threshold the busy goroutine
	// (script_busy_linux.go).
	own sync.Mutex
}

const loopEvents = 256

// startLoops starts n event loops.
func (s *Server) startLoops(n int) error {
	// A loop waiting in a raw epoll_wait keeps its P; there must be one left
	// over for everything else (the listener, fsync, lingering closes).
	raw := runtime.GOMAXPROCS(0) > n
	for i := 0; i < n; i++ {
		l, err := newEventLoop(s)
		if err != nil {
			return err
		}
		l.rawWait = raw
		s.loops = append(s.loops, l)
		go l.run()
	}
	return nil
}

func newEventLoop(s *Server) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &eventLoop{
		srv:    s,
		epfd:   epfd,
		efd:    efd,
		conns:  make(map[int]*client),
		events: make([]unix.EpollEvent, loopEvents),
		done:   make(chan struct{}),
	}, nil
}

// add hands a registered connection to the loop; false when the loop has
// stopped.
func (l *eventLoop) add(c *client) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.incoming = append(l.incoming, c)
	l.signal()
	return true
}

// expire asks the loop to close c if it is still on probation.
func (l *eventLoop) expire(c *client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.expiring = append(l.expiring, c)
		l.signal()
	}
}

// wake interrupts the loop's wait (shutdown).
func (l *eventLoop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.signal()
	}
}

// signal writes the eventfd; l.mu is held and the loop has not closed it.
func (l *eventLoop) signal() {
	one := [8]byte{1}
	_, _ = unix.Write(l.efd, one[:])
}

// park queues c's write run (c.req) for the pass's commit.
func (l *eventLoop) park(c *client) {
	l.parked = append(l.parked, &c.req)
}

func (l *eventLoop) run() {
	defer close(l.done)
	l.own.Lock()
	defer l.own.Unlock()
	for {
		n := l.wait()
		l.drainPushes()
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				l.adopt()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if c.blocked != nil && ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.blockedGone(c)
				continue
			}
			if c.wblocked {
				l.flush(c)
				if !c.wblocked && c.batch != nil && c.blocked == nil {
					l.resumeHeld(c)
				}
				continue
			}
			if c.batch != nil {
				continue // held: resumed below, its buffer not read into
			}
			l.read(c)
		}
		l.expireBlocked()
		l.resumeAll()
		l.watchSoft()
		l.commit()
		l.reply()
		l.drainPushes()
		if l.srv.draining.Load() {
			l.stop()
			return
		}
	}
}

// wait returns the number of ready events.
//
// Under load the loop waits in a raw epoll_wait, one the scheduler does not
// see: the goroutine keeps its P and its thread, as Redis's loop keeps its
// thread. Waiting as a system call the runtime knows about (EpollWait) kept
// sysmon waking every 20 µs to consider taking the P back, and the loop
// moved between threads when it did: perf counted 1.4 context switches per
// pass against Redis's 1.0, a quarter of them sysmon's; behind the proxy at
// -P 1 the node spent 1.75-2.3 µs of CPU per request waiting that way and
// 1.05-1.4 µs waiting raw (docs/BENCHMARKS.md). A raw wait is interrupted
// by the signal the runtime sends a goroutine it wants to preempt (a stop
// for the garbage collector, or 10 ms without a reschedule); the preemption
// then happens at the call of the next wait. An interruption mostly means
// the node is idle, so the loop then waits the ordinary way, holding no P,
// until events come again.
func (l *eventLoop) wait() int {
	for {
		raw := l.rawWait && !l.idle.Load()
		timeout := l.softTimeout()
		if bt := l.blockTimeout(); bt >= 0 && (timeout < 0 || bt < timeout) {
			timeout = bt
		}
		if len(l.held) > 0 {
			timeout = 0 // held pipelines to go on with
		}
		var n int
		var err error
		if raw {
			n, err = epollWaitRaw(l.epfd, l.events, timeout)
		} else {
			n, err = unix.EpollWait(l.epfd, l.events, timeout)
		}
		switch {
		case err == nil:
			if !raw && l.rawWait {
				l.idle.Store(false)
			}
			return n
		case err == unix.EINTR:
			if raw {
				l.idle.Store(true)
			}
			continue
		default:
			// Only a bug (a bad descriptor) gets here: say so and stop
			// spinning; shutdown still wakes the loop.
			l.srv.log.Error("epoll_wait failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			return 0
		}
	}
}

// epollWaitRaw is epoll_wait(epfd, events, timeout) without entering the
// scheduler's system-call state.
func epollWaitRaw(epfd int, events []unix.EpollEvent, timeout int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(timeout), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// adopt registers the connections handed over since the last pass.
func (l *eventLoop) adopt() {
	var buf [8]byte
	_, _ = unix.Read(l.efd, buf[:])
	l.mu.Lock()
	in := append(l.adopted[:0], l.incoming...)
	clear(l.incoming)
	l.incoming = l.incoming[:0]
	expiring := l.expiring
	l.expiring = nil
	woken := append(l.wokenBuf[:0], l.woken...)
	clear(l.woken)
	l.woken = l.woken[:0]
	txDone := append(l.txDoneBuf[:0], l.txDone...)
	clear(l.txDone)
	l.txDone = l.txDone[:0]
	l.mu.Unlock()
	l.resumeTx(txDone)
	clear(txDone)
	l.txDoneBuf = txDone[:0]
	for _, w := range woken {
		l.wakeBlocked(w)
	}
	clear(woken)
	l.wokenBuf = woken[:0]
	for _, c := range expiring {
		// c.fd is -1 once the loop closed it, so a descriptor number
		// reused by a newer connection is never taken for c's.
		if c.fd >= 0 && l.conns[c.fd] == c && c.onProbation() {
			l.close(c)
		}
	}
	for _, c := range in {
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
			l.srv.log.Error("epoll_ctl add failed", "client", c.sess.Addr, "error", err)
			unix.Close(c.fd)
			c.fd = -1
			l.srv.dropClient(c)
			continue
		}
		l.conns[c.fd] = c
	}
	clear(in)
	l.adopted = in[:0]
}

// read reads once from a ready connection and executes what it can.
func (l *eventLoop) read(c *client) {
	n, err := rawRead(uintptr(c.fd), c.rb.Space())
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return
	case err != nil || n == 0:
		l.close(c) // EOF or reset; every earlier command was answered
		return
	}
	c.feed(n)
	l.touched = append(l.touched, c)
	if c.ps != nil {
		c.takePushes() // messages before the replies to what was read
	}
	c.run()
}

// pushed notes that c has messages to write; wake: the pusher is not this
// loop, which must be woken from its wait.
func (l *eventLoop) pushed(c *client, wake bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.pushes = append(l.pushes, c)
	l.anyPushes.Store(true)
	if wake {
		l.signal()
	}
}

// drainPushes moves the pushed messages into their connections' output and
// writes it, closing a connection over its output buffer limit.
func (l *eventLoop) drainPushes() {
	if !l.anyPushes.Load() {
		return
	}
	l.mu.Lock()
	l.anyPushes.Store(false)
	list := l.pushes
	l.pushes = l.pushing[:0]
	l.mu.Unlock()
	for _, c := range list {
		if c.fd < 0 || l.conns[c.fd] != c || c.txOff == txRunning {
			continue
		}
		c.takePushes()
		if c.overOutputLimit(c.wblocked) {
			l.close(c)
			continue
		}
		if !c.wblocked && len(c.out) > 0 {
			l.flush(c)
		}
	}
	clear(list)
	l.pushing = list[:0]
}

// commit commits the parked runs in one Update and resumes their
// connections, until none parks again. Under appendfsync always the fsync
// is waited for before the connections go on: a reply written after it,
// or a failure replacing the run's replies, is then exact.
func (l *eventLoop) commit() {
	for len(l.parked) > 0 {
		batch := l.parked
		l.parked = l.spare[:0]
		s := l.srv
		seq, served, err := s.commitBatch(batch)
		if err == nil && seq != 0 {
			if err = s.db.WaitDurable(seq); err != nil {
				s.failBatch(batch, err)
			}
		}
		s.handBack(served, err)
		for _, r := range batch {
			r.c.next -= len(r.cmds) - r.ran // the rest of a run cut short for its replies
			r.cmds, r.sp = nil, nil
			r.c.run()
		}
		clear(batch)
		l.spare = batch[:0]
	}
}

// reply writes the replies of the connections read in this pass and closes
// those that asked for it.
func (l *eventLoop) reply() {
	for _, c := range l.touched {
		perr := c.settle()
		if !c.sess.Quit && perr != nil {
			l.srv.connError(c, perr)
		}
		if c.sess.Quit || c.linger || perr != nil {
			l.closeAfter(c, c.sess.Quit || c.linger)
			continue
		}
		if c.overOutputLimit(false) {
			l.close(c)
			continue
		}
		if len(c.out) > 0 {
			l.flush(c)
		}
		if c.fd >= 0 && c.txOff == txPending && !c.wblocked {
			l.startTx(c)
			continue
		}
		if c.fd >= 0 && c.blocked != nil {
			l.parkBlocked(c)
			continue
		}
		if c.fd >= 0 && c.batch != nil && !c.wblocked {
			l.held = append(l.held, c)
		}
	}
	clear(l.touched)
	l.touched = l.touched[:0]
}

// flush writes c.out with sockio.WriteAll; what the socket does not take
// waits for EPOLLOUT (the loop must not wait on one connection, so this is
// where it differs from the other write loops).
func (l *eventLoop) flush(c *client) {
	done, errno := sockio.WriteAll(uintptr(c.fd), c.out)
	if errno != 0 && errno != syscall.EAGAIN {
		l.close(c) // the client is gone
		return
	}
	c.netOut.Add(int64(done))
	if done == len(c.out) {
		if c.wblocked {
			c.sess.SetOutputMem(0)
		}
		c.resetOut()
		if c.wblocked {
			c.wblocked = false
			l.watch(c, l.readEvents(c))
		}
		return
	}
	c.out = c.out[:copy(c.out, c.out[done:])]
	c.sess.SetOutputMem(int64(len(c.out)))
	if !c.wblocked {
		c.wblocked = true
		l.watch(c, unix.EPOLLOUT)
		if c.obufSoftSince != 0 {
			l.overSoft = append(l.overSoft, c)
		}
	}
}

func (l *eventLoop) watch(c *client, events uint32) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)}); err != nil {
		l.srv.log.Error("epoll_ctl mod failed", "client", c.sess.Addr, "error", err)
		l.close(c)
	}
}

// forget takes c out of the loop.
func (l *eventLoop) forget(c *client) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, c.fd)
}

// close closes c at once.
func (l *eventLoop) close(c *client) {
	l.unlist(c.blocked)
	l.forget(c)
	unix.Close(c.fd)
	c.fd = -1
	l.srv.dropClient(c)
}

// closeAfter closes c after sending what c.out holds; with linger, the
// close waits for the client to read it (lingerClose), in a goroutine of
// its own.
func (l *eventLoop) closeAfter(c *client, linger bool) {
	if !linger {
		l.flush(c)
		if c.fd >= 0 {
			l.close(c)
		}
		return
	}
	l.forget(c)
	fd := c.fd
	c.fd = -1
	out := c.out
	c.out = nil
	nc, err := fdConn(fd)
	if err != nil {
		l.srv.dropClient(c)
		return
	}
	c.nc = nc
	go func() {
		defer l.srv.dropClient(c)
		if len(out) > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			n, _ := nc.Write(out)
			c.netOut.Add(int64(n))
		}
		lingerClose(nc)
	}()
}

// stop closes every connection and the loop's descriptors (shutdown).
func (l *eventLoop) stop() {
	l.mu.Lock()
	l.closed = true
	in := l.incoming
	l.incoming = nil
	for _, c := range l.txDone {
		c.txOff = txIdle // finished: closed below
	}
	l.txDone = nil
	l.mu.Unlock()
	for _, c := range in {
		unix.Close(c.fd)
		c.fd = -1
		l.srv.dropClient(c)
	}
	for fd, c := range l.conns {
		if c.txOff == txRunning {
			// Its message's goroutine closes it (txFinished).
			delete(l.conns, fd)
			continue
		}
		l.close(c)
	}
	unix.Close(l.epfd)
	unix.Close(l.efd)
}

// fdConn turns a connected socket's descriptor into a net.Conn, which owns
// it from then on.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f) // a duplicate of fd
	f.Close()
	return nc, err
}

// adoptConn hands an accepted connection to an event loop: its descriptor is
// duplicated and the net.Conn closed, which takes the original out of the
// runtime's poller (Go's accepted connections already have TCP_NODELAY and
// keep-alive set). It reports false, leaving nc alone, when nc has no
// descriptor.
func (s *Server) adoptConn(nc net.Conn, next int, k connClass) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	var derr error
	if err := raw.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || derr != nil {
		return false
	}
	laddr := ""
	if a := nc.LocalAddr(); a != nil {
		laddr = a.String()
	}
	c := s.initClient(nc.RemoteAddr().String(), laddr, k)
	nc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.releaseClass(k)
		return true
	}
	c.fd = fd
	c.sess.SetFD(fd)
	if !s.register(c) {
		unix.Close(fd)
		s.releaseClass(k)
		return true
	}
	l := s.loops[next%len(s.loops)]
	c.loop = l
	c.startProbation()
	if !l.add(c) {
		unix.Close(fd)
		c.fd = -1
		s.dropClient(c)
	}
	return true
}
