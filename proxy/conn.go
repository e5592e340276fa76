package proxy

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/shardkv/shardkv/internal/memfree"
	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/resp"
)

// The client connection's read loop.
//
// Each client has one goroutine that reads its socket into its
// resp.RequestReader, serves every complete command the read brought as one
// batch (beginBatch, exec per command, endBatch), writes the batch's
// replies in one write, then reads again. The loop is the proxy's own
// rather than redcon.Server's because of what the profile showed, at one
// request per client round trip (redis-benchmark -P 1), where the proxy
// spends its time in system calls and in waking up:
//
//   - A read that finds nothing. Go's net.Conn.Read tries the read first
//     and only then waits for the socket to become readable, so a
//     request-reply client costs two reads per request. The loop runs
//     inside one syscall.RawConn.Read for the life of the connection: after
//     a read that did not fill the buffer it waits for the next readiness
//     event instead of asking again. The readiness state is reset only when
//     RawConn.Read starts, so no event is lost between batches.
//   - The scheduler. Reads and writes on the client's (non-blocking) socket
//     are raw system calls (internal/sockio).
//   - Copies and allocations. redcon's Reader copies every command (Raw, and
//     Args over it) behind a bufio.Reader; a RequestReader's commands alias
//     its buffer, which stays put until the batch is answered, and a batch
//     allocates nothing.

const outKeep = 1 << 20 // larger output buffers are not kept between batches

// run serves the connection until the client leaves, QUIT, a protocol
// error, or Shutdown.
func (c *client) run() {
	if c.rc != nil {
		c.readable = c.onReadable
		c.sw.Init(c.rc)
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
	// was given to Serve): plain reads.
	for {
		n, err := c.nc.Read(c.rd.Space())
		if n > 0 {
			c.s.netIn.Add(int64(n))
			if c.received(n) {
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
		p := c.rd.Space()
		n, errno := sockio.RawRead(fd, p)
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
		if n < len(p) && c.hupKey != 0 && !c.peerClosed.Load() {
			return false
		}
	}
}

// onPeerClosed is the hup watch's callback: the client closed its side.
// The deadline wakes the connection's goroutine if it waits for the poller.
func (c *client) onPeerClosed() {
	c.peerClosed.Store(true)
	if bc := c.blockConn.Load(); bc != nil {
		bc.Fail(errClientGone) // the node unblocks the client, popping nothing
	}
	_ = c.nc.SetReadDeadline(time.Now())
}

// received serves the commands that n new bytes in the reader's Space
// complete, as one batch, and writes its replies, with a protocol error
// (c.perr) after them. It reports whether the connection is over.
func (c *client) received(n int) bool {
	c.rd.Received(n)
	cmds, err := c.rd.Commands(!c.sess.Authed)
	if len(cmds) == 0 && err == nil {
		c.rd.Done()
		return false // still inside a command, or only blank lines
	}
	c.beginBatch()
batch:
	for {
		for _, cmd := range cmds {
			if c.sess.Quit {
				break
			}
			if c.roundFull() && !c.endRound() {
				break batch // the client is gone or over its output limit
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
		// After QUIT nothing more is read, as in Redis, not even an error.
		if c.sess.Quit {
			break
		}
		if err != nil {
			c.perr = err
			break
		}
		// Before AUTH the reader returns a command at a time, each checked
		// against the limits that hold once the one before it ran; the
		// batch goes on with them.
		if !c.rd.More() {
			break
		}
		cmds, err = c.rd.Commands(!c.sess.Authed)
	}
	if c.batchN > 0 {
		c.endBatch()
	}
	if c.perr != nil {
		// Redis's text, which resp.ProtocolError carries.
		c.wout = resp.AppendError(c.wout, "ERR "+c.perr.Error())
	}
	c.flushRound()
	// The batch's commands alias the reader's buffer until here.
	c.rd.Done()
	if c.bigBytes > 0 {
		memfree.Released(c.bigBytes) // the reader dropped the big requests' buffer
		c.bigBytes = 0
	}
	if c.unpinAfter {
		c.unpinAfter = false
		c.unpin()
	}
	c.s.inBatch.Add(-1)
	return c.perr != nil || c.sess.Quit || c.rerr != nil || (c.batchN > 0 && c.s.shutting.Load())
}

// flushBytes writes b: through the connection's sockio.Writer, which
// waits in the poller while the socket is full, or the net.Conn.
func (c *client) flushBytes(b []byte) error {
	var err error
	if c.rc == nil {
		_, err = c.nc.Write(b)
	} else {
		_, err = c.sw.Write(b)
	}
	return err
}
