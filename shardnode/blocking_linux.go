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
	if w := c.blocked; !w.listed {
		c.noteBlocked()
		w.listed = true
		l.blockList = append(l.blockList, w)
		if w.deadline > 0 && (l.blockNext == 0 || w.deadline < l.blockNext) {
			l.blockNext = w.deadline
		}
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
	l.unlist(w)
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

// unlist counts w's entry of blockList as stale: the list is swept once
// stale entries are half of it, so the loop does not walk its blocked
// connections on every pass (a job queue's workers block for ever, and
// there may be thousands).
func (l *eventLoop) unlist(w *waiter) {
	if w != nil && w.listed {
		w.listed = false
		l.blockStale++
	}
}

// blockedGone handles the client of a blocked connection leaving: its
// waiter is taken out of the registry and the connection closed, or, when
// the waiter is being served, the connection waits for it without
// watching the socket.
func (l *eventLoop) blockedGone(c *client) {
	if w := c.blocked; c.srv.blocks.cancel(w, abortGone) {
		l.unlist(w)
		c.blocked = nil
		l.close(c)
		return
	}
	c.goneBlocked = true
	if !c.wblocked {
		l.watch(c, 0)
	}
}

// blockTimeout is how long the loop may wait, in milliseconds, before the
// earliest timeout of its blocked connections (-1: none).
func (l *eventLoop) blockTimeout() int {
	if l.blockNext == 0 {
		return -1
	}
	ms := l.blockNext - time.Now().UnixMilli()
	return int(max(ms, 0))
}

// expireBlocked unblocks the connections whose timeout passed with the
// timeout's null, and drops the stale entries. It walks the list only when
// the earliest timeout is due or half of it is stale.
func (l *eventLoop) expireBlocked() {
	now := time.Now().UnixMilli()
	due := l.blockNext != 0 && l.blockNext <= now
	if !due && (l.blockStale < 64 || 2*l.blockStale < len(l.blockList)) {
		return
	}
	keep := l.blockList[:0]
	var expired []*waiter
	next := int64(0)
	for _, w := range l.blockList {
		c := w.c
		switch {
		case !w.listed:
		case c.fd < 0 || c.blocked != w:
			w.listed = false
		case w.deadline > 0 && w.deadline <= now && c.srv.blocks.cancel(w, abortTimeout):
			expired = append(expired, w)
		default:
			// Being served while its timeout passed: handed back soon,
			// and looked at again until then.
			keep = append(keep, w)
			if w.deadline > 0 && (next == 0 || w.deadline < next) {
				next = w.deadline
			}
		}
	}
	clear(l.blockList[len(keep):])
	l.blockList = keep
	l.blockNext, l.blockStale = next, 0
	for _, w := range expired {
		w.listed = false
		l.resume(w.c, w)
	}
}
