package proxy

import (
	"strconv"
	"sync"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// MONITOR: every command the proxy receives, as Redis's monitors see them,
// streamed to the connections that sent MONITOR.
//
// A command's line is formatted by the connection that sent it, into its
// batch's lines, when a monitor listens (obsNote's one bool per command;
// nothing at all otherwise), and the batch's lines are handed to every
// monitor once the batch is answered. Each monitor has a writer goroutine
// that writes what has been handed to it; what it has not written yet is
// bounded by monitorMaxPending, past which the monitor is dropped (its
// connection closed), so a monitor that does not read cannot make the proxy
// hold the whole traffic in memory. As in Redis, admin commands (CONFIG,
// MONITOR, SLOWLOG, ...) and commands refused before they run are not
// shown, AUTH's and HELLO's passwords are "(redacted)", and a monitoring
// connection may still send connection commands, but its data commands are
// refused.

// monitorMaxPending is how many bytes of lines a monitor may have waiting
// before it is dropped (a variable for the test that drops one).
var monitorMaxPending = 16 << 20

const errMonitorKeyspace = "ERR Replica can't interact with the keyspace"

// monitor is one monitoring connection's stream.
type monitor struct {
	c    *client
	wake chan struct{} // a send: lines are waiting
	quit chan struct{} // closed: stop writing

	mu      sync.Mutex
	pending []byte
	dropped bool
}

// monitorCmd is MONITOR: +OK, and once this batch's replies are written the
// stream begins (afterReplies).
func (c *client) monitorCmd() {
	if c.obs.monitor == nil {
		c.obs.becomeMonitor = true
	}
	c.ok()
}

// startMonitor registers the connection's stream, then writes the replies
// so far (+OK the last), then starts the stream's writer: a command another
// client sends once this one has its +OK is streamed, and no line comes
// before a reply (lines handed over meanwhile wait in pending).
func (c *client) startMonitor() {
	m := &monitor{c: c, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	c.obs.monitor = m
	s := c.s
	s.monMu.Lock()
	var list []*monitor
	if p := s.monitors.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, m)
	s.monitors.Store(&list)
	s.monMu.Unlock()
	if len(c.wout) > 0 {
		if err := c.flushBytes(c.wout); err != nil && c.rerr == nil {
			c.rerr = err
		}
		c.wout = c.wout[:0]
	}
	go m.run()
}

// stopMonitor ends the connection's stream, if it has one (RESET, the
// connection's end).
func (c *client) stopMonitor() {
	m := c.obs.monitor
	if m == nil {
		return
	}
	c.obs.monitor = nil
	s := c.s
	s.monMu.Lock()
	var list []*monitor
	for _, o := range *s.monitors.Load() {
		if o != m {
			list = append(list, o)
		}
	}
	if len(list) == 0 {
		s.monitors.Store(nil)
	} else {
		s.monitors.Store(&list)
	}
	s.monMu.Unlock()
	close(m.quit)
}

// feedMonitors hands a batch's lines to every monitor.
func (s *Server) feedMonitors(lines []byte) {
	p := s.monitors.Load()
	if p == nil {
		return
	}
	for _, m := range *p {
		m.push(lines)
	}
}

func (m *monitor) push(lines []byte) {
	m.mu.Lock()
	if m.dropped {
		m.mu.Unlock()
		return
	}
	if len(m.pending)+len(lines) > monitorMaxPending {
		m.dropped = true
		m.pending = nil
		m.mu.Unlock()
		m.c.s.log.Warn("dropping a MONITOR client that does not read its stream", "client", m.c.sess.Addr,
			"pending_bytes", monitorMaxPending)
		m.c.nc.Close() // its goroutine sees the read fail and ends the stream
		return
	}
	m.pending = append(m.pending, lines...)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run writes the stream until the monitor stops or its connection fails.
// Writes go through the net.Conn, which serializes them with the
// connection's own replies (both hold the descriptor's write lock for a
// whole write), so a line never splits a reply.
func (m *monitor) run() {
	var out []byte
	for {
		select {
		case <-m.quit:
			return
		case <-m.wake:
		}
		m.mu.Lock()
		out, m.pending = m.pending, out[:0]
		m.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := m.c.nc.Write(out); err != nil {
			return
		}
		if cap(out) > 1<<20 {
			out = nil
		}
	}
}

// monitorHook runs for every command while a monitor listens: it refuses a
// monitoring connection's data commands and formats the command's line.
func (c *client) monitorHook(ci *cmdtable.Command, args [][]byte) bool {
	accepted := (c.sess.Authed || ci.Flags&cmdtable.FlagNoAuth != 0) && ci.ArityOK(len(args))
	if !accepted {
		return false
	}
	if c.obs.monitor != nil && (ci.Flags&(cmdtable.FlagReadonly|cmdtable.FlagWrite) != 0 || ci.Route == cmdtable.RouteTx) {
		c.reject(errMonitorKeyspace)
		return true
	}
	if ci.Flags&cmdtable.FlagAdmin == 0 && c.s.monitors.Load() != nil {
		c.obs.lines = appendMonitorLine(c.obs.lines, c.obs.start.UnixMicro(), c.sess.DB(), c.sess.Addr, args)
	}
	return false
}

// appendMonitorLine appends Redis's MONITOR line for a command:
// +<seconds>.<microseconds> [<db> <addr>] "arg" ..., each argument quoted
// as Redis's sdscatrepr quotes it.
func appendMonitorLine(b []byte, unixMicro int64, db int, addr string, args [][]byte) []byte {
	b = append(b, '+')
	b = strconv.AppendInt(b, unixMicro/1e6, 10)
	b = append(b, '.')
	us := unixMicro % 1e6
	for d := int64(100000); d > 1 && us < d; d /= 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, us, 10)
	b = append(b, " ["...)
	b = strconv.AppendInt(b, int64(db), 10)
	b = append(b, ' ')
	b = append(b, addr...)
	b = append(b, ']')
	redacted := conncmd.Redacted(args)
	for i, a := range args {
		b = append(b, ' ')
		if redacted(i) {
			b = append(b, `"(redacted)"`...)
			continue
		}
		b = appendRepr(b, a)
	}
	return append(b, '\r', '\n')
}

// appendRepr is Redis's sdscatrepr.
func appendRepr(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, ch := range s {
		switch ch {
		case '\\', '"':
			b = append(b, '\\', ch)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if ch >= 0x20 && ch < 0x7f {
				b = append(b, ch)
			} else {
				b = append(b, '\\', 'x', hex[ch>>4], hex[ch&15])
			}
		}
	}
	return append(b, '"')
}
