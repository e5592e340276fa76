package proxy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/resp"
)

// The client connection's read loop.
//
// Each client has one goroutine that reads its socket into a buffer, runs
// resp.FrameScanner over the new bytes, parses every complete command
// in the buffer and serves them as one batch (beginBatch, exec per command,
// endBatch), writes the batch's replies in one write, then reads again.
// The loop is the proxy's own rather than redcon.Server's because of what
// the profile showed, at one request per client round trip (redis-benchmark
// -P 1), where the proxy spends its time in system calls and in waking up:
//
//   - A read that finds nothing. Go's net.Conn.Read tries the read first
//     and only then waits for the socket to become readable, so a
//     request-reply client costs two reads per request. The loop runs
//     inside one syscall.RawConn.Read for the life of the connection: after
//     a read that did not fill the buffer it waits for the next readiness
//     event instead of asking again. The readiness state is reset only when
//     RawConn.Read starts, so no event is lost between batches.
//   - The scheduler. Reads and writes on the client's (non-blocking) socket
//     are raw system calls (sysRead, sysWrite): see sysRead.
//   - Copies and allocations. redcon's Reader copies every command (Raw, and
//     Args over it) behind a bufio.Reader; here a command's Raw and Args
//     alias the read buffer, which stays put until the batch is answered,
//     and a batch allocates nothing. redcon still parses: ReadNextCommand
//     multibulk requests, in place, and Parse the rare inline ones, so the
//     proxy reads requests exactly as redcon does.

const (
	inBufSize = 16 << 10 // the read buffer; it grows to hold one large command
	outKeep   = 1 << 20  // larger output buffers are not kept between batches
)

// errIncomplete: the buffer ends inside a command.
var errIncomplete = errors.New("incomplete command")

// run serves the connection until the client leaves, QUIT, a protocol
// error, or Shutdown.
func (c *client) run() {
	c.in = make([]byte, inBufSize)
	if c.rc != nil {
		c.readable, c.writable = c.onReadable, c.onWritable
		for {
			err := c.rc.Read(c.readable)
			if err != nil && c.rerr == nil && errors.Is(err, os.ErrDeadlineExceeded) && c.peerClosed.Load() {
				// The hup watch's wake-up: read what is left, then EOF.
				_ = c.nc.SetReadDeadline(time.Time{})
				continue
			}
			if err != nil && c.rerr == nil {
				c.rerr = err
			}
			return
		}
	}
	// A connection without a file descriptor (a listener of another kind
	// was given to Serve): plain reads through the limits.
	lc := &limitConn{Conn: c.nc, f: &c.f}
	for {
		c.grow()
		n, err := lc.Read(c.in[c.tail:])
		if n > 0 {
			c.s.netIn.Add(int64(n))
			c.tail += n
			if c.serveBuffered(c.tail) {
				return
			}
		}
		if err != nil {
			c.rerr = err
			return
		}
	}
}

// onReadable is the RawConn.Read callback: it reads and serves until the
// socket has nothing more (false: wait for readiness) or the connection is
// over (true).
func (c *client) onReadable(fd uintptr) bool {
	for {
		// A read that did not fill the buffer took everything the socket
		// had: wait for the poller's next edge rather than read again to
		// be told EAGAIN. A FIN that arrived with those bytes raises no
		// edge of its own; sockio.WatchHup hears it and wakes
		// the connection, which then reads until EAGAIN or EOF, as does a
		// connection the watch could not take.
		c.grow()
		space := len(c.in) - c.tail
		n, errno := sockio.RawRead(fd, c.in[c.tail:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.rerr = errno
			return true
		case n == 0:
			c.rerr = io.EOF
			return true
		}
		c.s.netIn.Add(int64(n))
		if c.received(n) {
			return true
		}
		if n < space && c.hupKey != 0 && !c.peerClosed.Load() {
			return false
		}
	}
}

// onPeerClosed is the hup watch's callback: the client closed its side.
// The deadline wakes the connection's goroutine if it waits for the poller.
func (c *client) onPeerClosed() {
	c.peerClosed.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

// received handles n new bytes at c.in[c.tail:]: the framer checks them, and
// every command they complete is served. It reports whether the connection
// is over.
func (c *client) received(n int) bool {
	lastEnd, cmdStart, err := c.f.Scan(c.in[c.tail : c.tail+n])
	if err != nil {
		// Serve what came before the violation, then answer it and close.
		end := c.tail
		if cmdStart >= 0 {
			end += cmdStart
		}
		c.tail = end
		c.perr = err
		c.serveBuffered(end)
		return true
	}
	c.tail += n
	if lastEnd < 0 {
		return false // still inside a command
	}
	return c.serveBuffered(c.tail)
}

// serveBuffered serves the complete commands in c.in[c.head:end] as one batch
// and writes its replies, with a protocol error (c.perr) after them. It
// reports whether the connection is over.
func (c *client) serveBuffered(end int) bool {
	c.beginBatch()
	for c.head < end && !c.sess.Quit {
		cmd, n, err := c.parse(c.in[c.head:end])
		if err == errIncomplete {
			break
		}
		if err != nil {
			c.perr = err
			break
		}
		c.head += n
		if len(cmd.Args) == 0 {
			continue // an empty line or multibulk: ignored, as Redis does
		}
		c.batchN++
		// CLIENT REPLY: replyOff and skipArm as the command leaves them
		// (OFF and SKIP silence their own reply), skipNext as SKIP left
		// it for this command.
		mark, skipped := len(c.slots), c.skipNext
		c.exec(cmd)
		if (skipped || c.sess.ReplyOff || c.sess.SkipArm) && !c.sess.ReplyForce {
			for i := mark; i < len(c.slots); i++ {
				c.slots[i].silent = true
			}
		}
		c.skipNext, c.sess.SkipArm, c.sess.ReplyForce = c.sess.SkipArm, false, false
	}
	if c.batchN > 0 {
		c.endBatch()
	}
	if c.head == c.tail {
		c.head, c.tail = 0, 0
	}
	if c.perr != nil {
		// Redis's text: the framer's errors and redcon's both read
		// "Protocol error: ...".
		c.wout = resp.AppendError(c.wout, "ERR "+c.perr.Error())
	}
	if len(c.wout) > 0 {
		if err := c.flush(); err != nil && c.rerr == nil {
			c.rerr = err
		}
		if cap(c.wout) > outKeep {
			c.wout = nil
		} else {
			c.wout = c.wout[:0]
		}
	}
	if c.unpinAfter {
		c.unpinAfter = false
		c.unpin()
	}
	c.s.inBatch.Add(-1)
	return c.perr != nil || c.sess.Quit || c.rerr != nil || (c.batchN > 0 && c.s.shutting.Load())
}

// flush writes c.wout.
func (c *client) flush() error {
	if c.rc == nil {
		_, err := c.nc.Write(c.wout)
		return err
	}
	c.wpos, c.werr = 0, nil
	if err := c.rc.Write(c.writable); err != nil {
		return err
	}
	return c.werr
}

// onWritable is the RawConn.Write callback of flush: it writes until
// c.wout is out (true) or the socket is full (false: wait until it drains).
func (c *client) onWritable(fd uintptr) bool {
	for c.wpos < len(c.wout) {
		n, errno := sockio.RawWrite(fd, c.wout[c.wpos:])
		switch errno {
		case 0:
			c.wpos += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// parse reads the command at the start of b: its Raw and Args alias b. n is
// its length in bytes.
func (c *client) parse(b []byte) (cmd redcon.Command, n int, err error) {
	if b[0] == '*' {
		if len(b) > 1 && b[1] == '-' {
			// A negative count, which the framer let through as an empty
			// multibulk: Redis ignores it.
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return cmd, 0, errIncomplete
			}
			return cmd, i + 1, nil
		}
		complete, args, _, rest, err := redcon.ReadNextCommand(b, c.argv)
		if err != nil {
			return cmd, 0, err
		}
		if !complete {
			return cmd, 0, errIncomplete
		}
		c.argv = args[:0]
		n = len(b) - len(rest)
		return redcon.Command{Raw: b[:n], Args: args}, n, nil
	}
	// An inline command: one line, split as redis-cli and telnet users
	// expect (quotes, escapes). redcon.Parse copies it, which is fine for
	// this rare form.
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return cmd, 0, errIncomplete
	}
	line := b[:i+1]
	if isBlank(line) {
		return cmd, i + 1, nil
	}
	cmd, err = redcon.Parse(line)
	if err != nil {
		if strings.HasPrefix(err.Error(), "Protocol error") {
			return cmd, 0, err
		}
		return redcon.Command{}, i + 1, nil // nothing but separators
	}
	return cmd, i + 1, nil
}

func isBlank(line []byte) bool {
	for _, ch := range line {
		if ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' {
			return false
		}
	}
	return true
}

// grow makes room to read into c.in[c.tail:]: it moves a partial command to
// the front, or doubles the buffer when the command fills it, and returns
// to the initial size once a large command is done.
func (c *client) grow() {
	if c.head == c.tail {
		c.head, c.tail = 0, 0
		if len(c.in) > 4*inBufSize {
			c.in = make([]byte, inBufSize)
		}
	}
	if c.tail < len(c.in) {
		return
	}
	if c.head > 0 {
		c.tail = copy(c.in, c.in[c.head:c.tail])
		c.head = 0
		return
	}
	nb := make([]byte, 2*len(c.in))
	copy(nb, c.in[:c.tail])
	c.in = nb
}
