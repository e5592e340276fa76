//go:build linux

package shardnode

import (
	"time"

	"golang.org/x/sys/unix"
)

// The event loop's part of blocking pops (blocking.go): a blocked
// connection stays in its loop, its pipeline held, its socket watched for
// EPOLLRDHUP only (so pipelined commands behind the blocking pop stay in
// the socket, and the client leaving is still heard), its deadline in the
// loop's blockList. A served waiter comes back through the loop's eventfd
// (unblocked), and the connection goes on with its pipeline in the loop.

// unblocked hands w back to its connection's loop (handBack: any
// goroutine).
func (l *eventLoop) unblocked(w *waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.woken = append(l.woken, w)
		l.signal()
	}
}

// readEvents is what c's socket is watched for when the loop is not
// waiting to write to it.
func (l *eventLoop) readEvents(c *client) uint32 {
	switch {
	case c.blocked == nil:
		return unix.EPOLLIN
	case c.goneBlocked:
		return 0 // the client left; the waiter comes back from its serving
	default:
		return unix.EPOLLRDHUP
	}
}

// parkBlocked starts watching a connection whose blocking pop blocked.
func (l *eventLoop) parkBlocked(c *client) {
	if !c.inBlockList {
		c.inBlockList = true
		l.blockList = append(l.blockList, c)
	}
	if !c.wblocked {
		l.watch(c, l.readEvents(c))
	}
}

// wakeBlocked goes on with the connection of a waiter handed back.
func (l *eventLoop) wakeBlocked(w *waiter) {
	c := w.c
	if c.fd < 0 || c.blocked != w {
		return // closed meanwhile, or its transaction failed (failBatch)
	}
	l.resume(c, w)
}

// resume ends c's wait on w and goes on with its pipeline in this pass.
func (l *eventLoop) resume(c *client, w *waiter) {
	gone := c.goneBlocked
	c.goneBlocked = false
	if !c.unblock(w) || gone {
		l.close(c)
		return
	}
	if !c.wblocked {
		l.watch(c, unix.EPOLLIN)
	}
	l.touched = append(l.touched, c)
	c.run()
}

// blockedGone handles the client of a blocked connection leaving: its
// waiter is taken out of the registry and the connection closed, or, when
// the waiter is being served, the connection waits for it without
// watching the socket.
func (l *eventLoop) blockedGone(c *client) {
	if c.srv.blocks.cancel(c.blocked, abortGone) {
		c.blocked = nil
		l.close(c)
		return
	}
	c.goneBlocked = true
	if !c.wblocked {
		l.watch(c, 0)
	}
}

// blockTimeout is how long the loop may wait, in milliseconds, before a
// blocked connection's timeout (-1: none).
func (l *eventLoop) blockTimeout() int {
	first := int64(0)
	for _, c := range l.blockList {
		if w := c.blocked; w != nil && w.deadline > 0 && (first == 0 || w.deadline < first) {
			first = w.deadline
		}
	}
	if first == 0 {
		return -1
	}
	ms := first - time.Now().UnixMilli()
	return int(max(ms, 0))
}

// expireBlocked unblocks the connections whose timeout passed with the
// timeout's null, and forgets the ones no longer blocked.
func (l *eventLoop) expireBlocked() {
	if len(l.blockList) == 0 {
		return
	}
	now := time.Now().UnixMilli()
	keep := l.blockList[:0]
	var expired []*client
	for _, c := range l.blockList {
		w := c.blocked
		switch {
		case c.fd < 0 || w == nil:
			c.inBlockList = false
		case w.deadline > 0 && w.deadline <= now && c.srv.blocks.cancel(w, abortTimeout):
			c.inBlockList = false
			expired = append(expired, c)
		default:
			keep = append(keep, c)
		}
	}
	clear(l.blockList[len(keep):])
	l.blockList = keep
	for _, c := range expired {
		l.resume(c, c.blocked)
	}
}
