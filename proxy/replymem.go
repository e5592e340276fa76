package proxy

import (
	"errors"
	"os"
	"time"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/memfree"
)

// Reply memory. A client's batch is every command one read brought, and
// its replies used to be collected whole before the first was written: 1,000
// GETs of a 1 MB value in one 22 KB read made the proxy hold a gigabyte (and
// its copy in c.wout) for a client that might never read it, and put a
// gigabyte of replies ahead of every other client's on the shared node
// connection.
//
// So a batch is served in rounds: a round sends at most c.window commands,
// waits for their replies and writes them to the client (waiting, as long
// as it takes, for the client to read them) before the next round is sent.
// What the proxy holds for a client, and what a client puts ahead of others
// on a node connection, is one round. The window adapts to the replies:
// after a round whose replies passed roundBudget it becomes what fits the
// budget at that round's mean reply size; after a smaller one it doubles,
// up to maxWindow. A new client starts at startWindow, so its first round
// of big replies is bounded too. Replies bigger than streamReply are
// written from the request's buffer instead of being copied after the
// others (writeReplies), and dropped once written.
//
// client-output-buffer-limit (conncmd.OutputLimits, normal class): the
// pending output is the reply bytes the node connections delivered for the
// client's round and the client has not taken yet. The readers check it as
// each reply arrives (Request.Sink); over the hard limit, or over the soft
// limit for longer than its seconds, the client is closed as Redis closes
// it, with Redis's log line, and its further replies are dropped by the
// readers, so the other clients on the connections go on. While the
// client's socket does not take a round's replies, the soft limit's time
// runs out in the write's deadline. Because a client holds at most a round,
// a limit above roundBudget is met only by single replies that big: a
// client that stops reading is held at a round, not closed, where Redis
// would have kept building its output until a limit closed it.

const (
	roundBudget = 4 << 20  // reply bytes a round aims at
	startWindow = 16       // commands in a new client's first round
	maxWindow   = 1024     // commands in a round at most
	streamReply = 64 << 10 // a forwarded reply this big is written where it is
)

// errOutputLimit is why a client closed for its output buffer limit ended.
var errOutputLimit = errors.New("closed for overcoming of output buffer limits")

// roundFull reports whether the round has its window of commands.
func (c *client) roundFull() bool { return len(c.slots) >= c.window }

// endRound answers the round's commands and starts the next round; false
// when the connection is over (the client is gone, or over its limit).
func (c *client) endRound() bool {
	c.endBatch()
	c.batchN = 0 // counted by endBatch
	ok := c.flushRound()
	c.w.Begin()
	c.tbl = c.s.table.Load()
	c.obsBegin()
	return ok
}

// flushRound writes what the round left in c.wout and adapts the window to
// the round's replies; false when the connection is over.
func (c *client) flushRound() bool {
	if len(c.wout) > 0 && c.rerr == nil && !c.obufOver.Load() {
		if err := c.flushLimited(c.wout); err != nil && c.rerr == nil {
			c.rerr = err
		}
	}
	if n := cap(c.wout); n > outKeep {
		c.wout = nil
		memfree.Released(n)
	} else {
		c.wout = c.wout[:0]
	}
	c.obufPending.Store(0)
	c.sess.SetOutputMem(0)
	c.adaptWindow()
	if c.obufOver.Load() && c.rerr == nil {
		c.rerr = errOutputLimit
	}
	return c.rerr == nil
}

// adaptWindow sizes the next round from this one: c.roundN commands whose
// replies took c.roundBytes.
func (c *client) adaptWindow() {
	n, b := c.roundN, c.roundBytes
	c.roundN, c.roundBytes = 0, 0
	switch {
	case n == 0:
	case b > roundBudget:
		c.window = max(1, int(int64(roundBudget)*int64(n)/b))
	case c.window < maxWindow && n >= c.window:
		c.window = min(maxWindow, 2*c.window)
	}
}

// emit writes one reply of the round: after the others in c.wout, or, a
// big forwarded one, straight from b once c.wout is written.
func (c *client) emit(out, b []byte, forwarded bool) []byte {
	c.roundBytes += int64(len(b))
	if c.obufOver.Load() {
		return out
	}
	if !forwarded || len(b) < streamReply || c.rerr != nil {
		return append(out, b...)
	}
	if len(out) > 0 {
		if err := c.flushLimited(out); err != nil {
			c.rerr = err
		}
		c.s.netOut.Add(int64(len(out)))
		out = out[:0]
	}
	if c.rerr == nil {
		if err := c.flushLimited(b); err != nil {
			c.rerr = err
		}
		c.s.netOut.Add(int64(len(b)))
	}
	return out
}

// onReply is the readers' Sink for the client's requests: it counts n
// more bytes of pending output and reports whether the client may have
// them (client-output-buffer-limit).
func (c *client) onReply(n int) bool {
	if c.obufOver.Load() {
		return false
	}
	p := c.obufPending.Add(int64(n))
	c.sess.SetOutputMem(p)
	l := c.s.obuf.Class(conncmd.ObufNormal)
	if !l.On() {
		return true
	}
	c.obufMu.Lock()
	over := l.Over(uint64(p), &c.obufSoftSince, time.Now().Unix())
	c.obufMu.Unlock()
	if over {
		c.closeForOutput(p)
		return false
	}
	return true
}

// closeForOutput marks the client over its output buffer limit; its
// goroutine closes it once the round's replies are in (all but dropped).
func (c *client) closeForOutput(pending int64) {
	if c.obufOver.CompareAndSwap(false, true) {
		c.s.log.Warn(conncmd.ObufClosed,
			"client", c.sess.Addr, "id", c.sess.ID, "pending", pending)
	}
}

// flushLimited writes b with c.flush; while the client's pending output is
// over the soft limit, the write's deadline is when the soft limit's time
// runs out, and missing it closes the client as over its limit.
func (c *client) flushLimited(b []byte) error {
	if st := c.stream; st != nil {
		// A subscribed client: its stream writes, under the pubsub
		// class's limit (pubsub.go).
		st.push(b)
		return nil
	}
	l := c.s.obuf.Class(conncmd.ObufNormal)
	deadline := false
	if l.Soft > 0 {
		p := uint64(c.obufPending.Load())
		now := time.Now().Unix()
		c.obufMu.Lock()
		over := l.Over(p, &c.obufSoftSince, now)
		since := c.obufSoftSince
		c.obufMu.Unlock()
		if over {
			c.closeForOutput(int64(p))
			return errOutputLimit
		}
		if since != 0 {
			_ = c.nc.SetWriteDeadline(time.Unix(since+l.SoftSeconds+1, 0))
			deadline = true
		}
	}
	err := c.flushBytes(b)
	if deadline {
		_ = c.nc.SetWriteDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.closeForOutput(c.obufPending.Load())
			err = errOutputLimit
		}
	}
	return err
}

// dropBuffers forgets a closed client's buffers, and has big ones given
// back.
func (c *client) dropBuffers() {
	n := memfree.Big(cap(c.wout)) + memfree.Big(cap(c.out))
	c.wout, c.out = nil, nil
	for _, r := range c.pool {
		n += memfree.Big(cap(r.Reply)) + memfree.Big(cap(r.buf))
	}
	c.pool = nil
	memfree.Gone(n)
}
