package shardnode

import (
	"syscall"
	"time"

	"github.com/shardkv/shardkv/internal/memfree"
	"github.com/shardkv/shardkv/internal/sockio"
)

// The request path of a connection: reads go into the connection's
// resp.RequestReader, which checks the framing and Redis's limits on the
// bytes as they arrive and returns the complete commands sliced out of its
// buffer in place (see there for why not redcon's Reader); the node's
// replies are built by resp's encoders.
//
// Reads with a goroutine per connection (Config.EventLoops -1; the event
// loops of loop_linux.go read once per readiness report instead): on a TCP
// connection the loop runs inside one syscall.RawConn.Read
// for the life of the connection, and waits for the poller only after a read
// says EAGAIN. It reads again even after a short read: Go's poller is
// edge-triggered, and a FIN that arrived together with the last bytes raises
// no edge of its own, so waiting then would never hear the client leave (a
// client that sends its last commands and closes would keep its goroutine
// and descriptor for ever).

// outKeep: an output buffer larger than this is dropped once written,
// unless the connection is busy (outKeepBusy).
const outKeep = 64 << 10

// A connection that keeps writing replies over outKeep keeps an output
// buffer of up to outKeepBusy: bigOuts goes up by one for each such write and
// down by one for each smaller one, and the buffer stays while it is at least
// outBusyRuns. A proxy multiplexes 50 clients' LRANGE of 100 values onto one
// connection, up to half a MiB of replies per batch: grown again from nothing
// for every batch, the doubling copies and their clearing were a third of the
// node's CPU.
const (
	outKeepBusy = 4 << 20
	outBusyRuns = 4
	outBusyMax  = 64
)

// serveConn reads pipelines from one client and answers them until the
// client leaves, breaks the protocol, or the server shuts down.
func (s *Server) serveConn(c *client) {
	defer s.dropClient(c)
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.serveRaw(c, raw)
		}
	} else {
		for !s.draining.Load() {
			p := c.rb.Space()
			n, err := c.nc.Read(p)
			if n > 0 && !c.received(n) || err != nil {
				break
			}
		}
	}
	if c.linger {
		// Outside the read loop: lingerClose reads, and RawConn.Read
		// holds the descriptor's read lock.
		lingerClose(c.nc)
	}
}

// serveRaw is serveConn's loop on the connection's descriptor (see the
// comment at the top of this file).
func (s *Server) serveRaw(c *client, raw syscall.RawConn) {
	defer func() { c.fd = -1 }()
	_ = raw.Read(func(fd uintptr) bool {
		for {
			if s.draining.Load() {
				return true
			}
			p := c.rb.Space()
			n, err := rawRead(fd, p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false // wait for the next edge
			case err != nil || n == 0:
				return true // reset, or EOF
			}
			c.fd = int(fd)
			c.sess.SetFD(c.fd)
			if !c.received(n) {
				return true
			}
		}
	})
}

// received handles n new bytes at the end of the buffer of a connection
// served by its own goroutine: runs the complete commands, writes the
// replies, and reports whether the connection stays open.
func (c *client) received(n int) bool {
	c.pushLock()
	defer c.pushUnlock()
	c.feed(n)
	c.run() // parks only on an event loop's connection
	for c.batch != nil {
		if w := c.blocked; w != nil {
			// A blocking pop blocked: send the replies before it, then
			// wait for it to be served, time out, or the client to leave.
			c.noteBlocked()
			werr := c.writeLimited()
			c.resetOut()
			if werr != nil || !c.unblock(c.awaitWaiter(w)) {
				c.settle()
				return false
			}
			c.run()
			continue
		}
		// Held: the replies so far fill the pass. Write them (waiting
		// for a client that reads slowly) before executing more.
		if c.overOutputLimit(false) {
			c.settle()
			return false
		}
		werr := c.writeLimited()
		c.resetOut()
		if werr != nil {
			c.settle()
			return false
		}
		c.resume()
		c.run()
	}
	perr := c.settle()
	if !c.sess.Quit && perr != nil {
		c.srv.connError(c, perr)
	}
	if perr == nil && !c.sess.Quit && c.overOutputLimit(false) {
		return false
	}
	if len(c.out) > 0 {
		var werr error
		if c.linger {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			m, err := c.write(c.out)
			c.netOut.Add(int64(m))
			werr = err
		} else {
			werr = c.writeLimited()
		}
		if werr != nil {
			return false
		}
	}
	c.resetOut()
	switch {
	case c.sess.Quit:
		c.linger = true
		return false
	case perr != nil:
		return false
	}
	return true
}

// feed accounts for n bytes read into the request buffer's Space.
func (c *client) feed(n int) {
	c.rb.Received(n)
	c.inBytes += int64(n)
	c.netIn.Store(c.inBytes)
}

// run executes the complete commands in the buffer, a pipeline at a time.
// It returns true when a write run was handed to the connection's event
// loop (serveFrom); the loop calls run again once it is committed. It also
// returns, with c.batch still set, when the replies waiting to be written
// fill the pass (held): the caller writes them and calls run again.
func (c *client) run() (parked bool) {
	for {
		if c.blocked != nil || c.txOff == txRunning {
			return false // the rest of the pipeline waits (blocking.go, txexec.go)
		}
		if c.batch == nil {
			cmds, err := c.rb.Commands(!c.sess.Authed)
			c.batchErr = err
			if len(cmds) > 0 {
				c.startBatch(cmds)
			}
		}
		if c.batch != nil {
			switch c.serveFrom() {
			case servePark:
				return true
			case serveHeld:
				c.hold()
				return false
			case serveBlocked, serveTx:
				return false
			}
			c.endBatch()
		}
		if c.batchErr != nil {
			c.perr, c.batchErr = c.batchErr, nil
			return false
		}
		// Before AUTH the reader stops after each command: go on with the
		// rest now that the command ran.
		if c.sess.Quit || !c.rb.More() {
			return false
		}
	}
}

// settle ends what run did with the buffer and returns the protocol error
// that ends the connection, if any: the replies of the commands before it
// are in c.out.
func (c *client) settle() error {
	err := c.perr
	c.perr = nil
	if c.batch == nil { // a held pipeline's commands alias the buffer
		c.rb.Done()
		c.hkey = nil // it aliased the buffer
	}
	if c.bigBytes > 0 {
		memfree.Released(c.bigBytes) // the request buffer, a value read
		c.bigBytes = 0
	}
	return err
}

// resetOut empties the output buffer after it was written, dropping a
// large one (whose memory goes back to the system, replymem.go).
func (c *client) resetOut() {
	n := cap(c.out)
	if len(c.out) > outKeep {
		c.bigOuts = min(c.bigOuts+1, outBusyMax)
	} else if c.bigOuts > 0 {
		c.bigOuts--
	}
	if n <= outKeep || (c.bigOuts >= outBusyRuns && n <= outKeepBusy) {
		c.out = c.out[:0]
		return
	}
	c.out = nil
	memfree.Released(n)
}

// rawRead is sockio.RawRead (read(2) without the runtime's syscall
// bookkeeping, which at one read and one write per request was a tenth of
// the node's CPU) with an error instead of an Errno, since a zero Errno is a
// non-nil error.
func rawRead(fd uintptr, p []byte) (int, error) {
	n, e := sockio.RawRead(fd, p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// write sends b to the client: with sockio.WriteAll on the descriptor while
// the read loop has it, the rest through the net.Conn, which waits for the
// socket to drain, when the socket buffer is full. (The read loop holds
// RawConn.Read, so it cannot wait in RawConn.Write as the proxy does.)
func (c *client) write(b []byte) (int, error) {
	done := 0
	if c.fd >= 0 {
		done, _ = sockio.WriteAll(uintptr(c.fd), b)
		if done == len(b) {
			return done, nil
		}
	}
	n, err := c.nc.Write(b[done:])
	return done + n, err
}

// flushOut sends what c.out holds with sockio.WriteAll on the connection's
// descriptor, keeping what the socket did not take for the connection to
// send itself (its own write, which then waits). The group commit leader
// calls it for the connections of its batch, which wait until it is done:
// their output and descriptor are the leader's meanwhile.
func (c *client) flushOut() {
	if c.fd < 0 || len(c.out) == 0 {
		return
	}
	done, _ := sockio.WriteAll(uintptr(c.fd), c.out)
	c.netOut.Add(int64(done))
	c.out = c.out[:copy(c.out, c.out[done:])]
}
