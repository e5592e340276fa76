package proxy

import (
	"bytes"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// What the proxy records about the commands it serves (internal/conncmd's
// Observer): per command the count, the error replies and the latency; the
// slow log; the latency monitor; and what MONITOR streams (monitor.go).
//
// A command's latency on the proxy is its batch's: from beginBatch, when
// the batch's first command was parsed, to the moment every reply of the
// batch is there, the shard nodes' round trips included. That is what the
// client waits for: the batch's replies leave in one write. The clock is
// read twice per batch, never per command; per command the proxy appends
// the row, the slot of its reply and its arguments (which alias the read
// buffer until the batch is answered) to a list it walks once the replies
// are in, and tests one bool that says whether a monitor listens.

// clientObs is a client's part of it; it belongs to the client's goroutine.
type clientObs struct {
	start time.Time
	cmds  []obsCmd // the batch's counted commands
	// hot: a monitor listens (or this client is one) at the batch's start,
	// so every command goes through monitorHook.
	hot bool
	// lines are the batch's MONITOR lines, sent to the monitors once the
	// batch is answered.
	lines []byte
	// monitor is this client's MONITOR stream once it has one;
	// becomeMonitor asks for one once this batch's replies are written.
	monitor       *monitor
	becomeMonitor bool
}

type obsCmd struct {
	row  int32    // cmdtable.Command.Index
	slot int32    // the index in c.slots of the command's reply
	args [][]byte // the command, for the slow log; valid until the batch is answered
}

// obsBegin starts a batch's clock.
func (c *client) obsBegin() {
	c.obs.start = time.Now()
	c.obs.hot = c.s.monitors.Load() != nil || c.obs.monitor != nil
}

// obsNote notes a command of the batch, known to the command table, before
// its checks; it reports whether the command was answered here (a
// monitoring connection's data command is refused, as Redis refuses it).
// Commands queued by MULTI are counted as their EXEC.
func (c *client) obsNote(ci *cmdtable.Command, args [][]byte) bool {
	if !c.inMulti || ci.Multi == cmdtable.MultiNow {
		c.obs.cmds = append(c.obs.cmds, obsCmd{row: int32(ci.Index), slot: int32(len(c.slots)), args: args})
	}
	return c.obs.hot && c.monitorHook(ci, args)
}

// observe records the batch once its replies are in, before they are
// written (the slots still hold them).
func (c *client) observe() {
	now := time.Now()
	c.sess.Touch(now.UnixMilli())
	d := now.Sub(c.obs.start)
	o := c.s.obs
	usec, slow, sample := o.Batch(d)
	cmds := c.obs.cmds
	for i := 0; i < len(cmds); {
		// A run of one command (a pipeline of GETs) shares one latency:
		// recorded with one pair of atomic adds.
		row, j := cmds[i].row, i
		for ; j < len(cmds) && cmds[j].row == row; j++ {
			switch c.slotError(int(cmds[j].slot)) {
			case replyFailed:
				o.Commands.Failed(int(row))
			case replyRejected:
				o.Commands.Rejected(int(row))
			}
		}
		o.Commands.ObserveN(int(row), usec, int64(j-i))
		i = j
	}
	if sample {
		fast := true
		for _, e := range cmds {
			fast = fast && cmdtable.Commands[e.row].Flags&cmdtable.FlagFast != 0
		}
		o.LatencySample(d, fast)
	}
	if slow {
		name := c.sess.Name()
		for _, e := range c.obs.cmds {
			o.Slow.Add(e.args, usec, c.sess.Addr, name)
		}
	}
	clear(c.obs.cmds) // the arguments alias the read buffer
	c.obs.cmds = c.obs.cmds[:0]
	if len(c.obs.lines) > 0 {
		c.s.feedMonitors(c.obs.lines)
		if cap(c.obs.lines) > 64<<10 {
			c.obs.lines = nil
		} else {
			c.obs.lines = c.obs.lines[:0]
		}
	}
}

// afterReplies runs once the batch's replies are in c.wout.
func (c *client) afterReplies() {
	c.s.netOut.Add(int64(len(c.wout)))
	if c.obs.becomeMonitor {
		c.obs.becomeMonitor = false
		c.startMonitor()
	}
}

type replyKind uint8

const (
	replyOK       replyKind = iota
	replyFailed             // an error reply
	replyRejected           // refused before it ran: arity, authentication
)

// slotError reads whether the reply in slot i is an error, and whether the
// proxy refused the command before it ran (Redis's rejected_calls).
func (c *client) slotError(i int) replyKind {
	if i >= len(c.slots) {
		return replyOK
	}
	sl := &c.slots[i]
	switch sl.kind {
	case slotLocal:
		b := c.out[sl.a:sl.b]
		if len(b) == 0 || b[0] != '-' {
			return replyOK
		}
		if bytes.HasPrefix(b, []byte("-NOAUTH ")) || bytes.HasPrefix(b, []byte("-ERR wrong number of arguments")) {
			return replyRejected
		}
		return replyFailed
	case slotForward, slotExec:
		if sl.req.Err != nil || len(sl.req.Reply) > 0 && sl.req.Reply[0] == '-' {
			return replyFailed
		}
	case slotMerge:
		if m := sl.m; m.info == nil && (m.anyFailed() || m.errorReply() != nil) {
			return replyFailed
		}
	}
	return replyOK
}

// newObserver starts the proxy's Observer over its totals.
func (s *Server) newObserver() *conncmd.Observer {
	return conncmd.NewObserver(s.commands.Load, s.netIn.Load, s.netOut.Load)
}

// Observer is the proxy's command statistics (conncmd.Host).
func (h proxyHost) Observer() *conncmd.Observer { return h.s.obs }
