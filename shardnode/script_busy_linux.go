//go:build linux

package shardnode

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shardkv/shardkv/internal/cmdtable"
)

// A script past busy-reply-threshold (lua-time-limit) must not freeze the
// node: other clients get BUSY, and SCRIPT KILL must reach it. The script
// runs on the goroutine of its connection's event loop, inside the loop's
// commit, so that loop reads nothing while the VM runs. When the threshold
// passes, a timer's goroutine takes the loop's place: the loop goroutine
// gave up the loop (eventLoop.own) when it entered the VM, and the busy
// goroutine holds it until the script ends, reading the loop's other
// connections and answering them. Every command then gets BUSY but SCRIPT
// KILL and the few Redis serves while busy (allowedWhileBusy); connections
// of the other loops (and with a goroutine each) see the same busy flag in
// their own dispatch. The script's own connection, and the connections
// whose pipelines are part of the same commit, are left alone: their state
// is the loop goroutine's until the commit is done.

// busyPoll is how long the busy goroutine waits in epoll_wait before it
// looks whether the script ended (the script's end also wakes it).
const busyPoll = 10 * time.Millisecond

// watchBusy arms the threshold for run and returns what the script's
// goroutine calls when the VM returns. Scripts run one at a time (e.vm),
// so one timer serves them all: it is reset, not made, for each.
func (c *client) watchBusy(e *scriptEngine, run *scriptRun) (stop func()) {
	l := c.loop
	if e.timer == nil {
		e.timer = time.AfterFunc(time.Hour, func() {
			if run := e.run.Load(); run != nil {
				e.becomeBusy(run, run.c.loop)
			}
		})
	}
	e.timer.Reset(time.Duration(e.limitMs.Load()) * time.Millisecond)
	if l != nil {
		l.own.Unlock()
	}
	return func() {
		e.timer.Stop()
		if l != nil {
			e.run.Store(nil) // the busy goroutine stops once it sees this
			if e.busy.Load() {
				l.wake() // it waits in epoll_wait; else it sees the end within busyPoll
			}
			l.own.Lock()
		}
	}
}

// becomeBusy runs when run passed the threshold.
func (e *scriptEngine) becomeBusy(run *scriptRun, l *eventLoop) {
	if e.run.Load() != run {
		return
	}
	e.busy.Store(true)
	e.srv.log.Warn("a script is past busy-reply-threshold: other clients get BUSY until it ends or SCRIPT KILL",
		"sha", run.sha, "threshold_ms", e.limitMs.Load())
	if l == nil {
		return
	}
	l.own.Lock()
	defer l.own.Unlock()
	for e.run.Load() == run {
		l.serveBusy(run.c)
	}
}

// serveBusy is one pass of the loop while a script is busy.
func (l *eventLoop) serveBusy(script *client) {
	// Replies of connections read in the pass that ran into the script
	// wait for the pass's end: send them now, or their clients, waiting
	// for them, would never send the command that gets BUSY.
	for _, c := range l.touched {
		if c != script && c.fd >= 0 && c.batch == nil && !c.wblocked && len(c.out) > 0 {
			l.flush(c)
		}
	}
	n, err := unix.EpollWait(l.epfd, l.events, int(busyPoll/time.Millisecond))
	if err != nil {
		return
	}
	left := 0
	for i := 0; i < n; i++ {
		fd := int(l.events[i].Fd)
		if fd == l.efd {
			l.adopt()
			continue
		}
		c := l.conns[fd]
		if c == nil {
			continue
		}
		if c == script || c.batch != nil {
			left++ // the commit's, or held: the loop goroutine goes on with it
			continue
		}
		if c.wblocked {
			l.flush(c)
			continue
		}
		m, err := rawRead(uintptr(c.fd), c.rb.Space())
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			continue
		case err != nil || m == 0:
			l.close(c)
			continue
		}
		c.feed(m)
		c.run()
		perr := c.settle()
		if !c.sess.Quit && perr != nil {
			l.srv.connError(c, perr)
		}
		if c.sess.Quit || c.linger || perr != nil {
			l.closeAfter(c, c.sess.Quit || c.linger)
			continue
		}
		if len(c.out) > 0 {
			l.flush(c)
		}
		if c.fd >= 0 && c.batch != nil && !c.wblocked {
			l.held = append(l.held, c)
		}
	}
	if n > 0 && left == n {
		// Only descriptors this pass must leave alone are ready; they
		// stay ready (level-triggered): do not spin on them.
		time.Sleep(time.Millisecond)
	}
}

// busyAllowed are the commands Redis 7.0 serves while a script is busy
// (allow_busy; SCRIPT KILL is the subcommand row's flag), and SHARD.ASSIGN:
// it ends the handshake of a proxy's new connection, and the proxy sends
// SCRIPT KILL on a connection of its own (the script's shared connection
// is not read until the script ends).
var busyAllowed = map[string]bool{"auth": true, "hello": true, "discard": true, "multi": true,
	"watch": true, "unwatch": true, "reset": true, "quit": true, "shard.assign": true,
	"shard.streamrefs": true} // the proxy's handshake (SCRIPT KILL comes on a new connection)

// allowedWhileBusy reports whether c may run the command while a script is
// busy: the script's own commands, and those Redis allows.
func (c *client) allowedWhileBusy(spec *cmdSpec, args [][]byte) bool {
	e := c.srv.scripts
	if run := e.run.Load(); run == nil || run.c == c {
		return true
	}
	if busyAllowed[spec.Name] {
		return true
	}
	row, _ := spec.Resolve(args, cmdtable.SideNode)
	return row.Flags&cmdtable.FlagAllowBusy != 0
}
