package shardnode

import (
	"bytes"
	"syscall"
	"time"

	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/resp"
	"github.com/tidwall/redcon"
)

// The request path of a connection.
//
// Why not redcon's Reader: it copies every command it returns (Raw, and a
// new Args slice), which profiles showed were nearly all of the node's
// allocations, and it reads again after every pipeline, so each request
// costs a read that comes back empty (EAGAIN) on top of the one that
// brought it. The hot path here reads into a buffer the connection keeps,
// lets resp.FrameScanner validate the framing and Redis's limits
// byte by byte as it arrives, then slices the validated commands' arguments
// out of the buffer in place: redcon.Command values whose Raw and Args
// alias the buffer, valid until the next read, with no allocation per
// command. redcon stays for what it does well and is not hot: inline
// commands (redis-cli's "SET k \"a b\"") are parsed by redcon.Parse, quotes
// and all, and the node's replies are built by resp's encoders.
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

// Request buffer sizes.
const (
	reqBufSize    = 16 << 10 // a connection's buffer, as Redis's PROTO_IOBUF_LEN
	reqBufMinRead = 4 << 10  // space a read gets at least; the buffer grows for larger commands
	reqBufKeep    = 64 << 10 // a buffer larger than this is dropped once it is empty
)

// reqBuf holds the bytes read from one connection: buf[start:end] are not
// executed yet; buf[start:valid] are complete commands the scanner
// accepted; buf[scanned:end] were not scanned yet.
type reqBuf struct {
	buf     []byte
	start   int
	valid   int
	scanned int
	end     int
	sc      resp.FrameScanner
	// err is the protocol error the scanner found; it is answered after
	// the commands before it ran.
	err error
	// cmds and argv are reused from pipeline to pipeline.
	cmds []redcon.Command
	argv [][]byte
}

// scan feeds the bytes read since the last scan to the frame scanner. Before
// authentication it stops after the first complete command, which must run
// before what follows it is checked against the (lower) unauthenticated
// limits.
func (r *reqBuf) scan(unauth bool) {
	if r.err != nil || r.scanned == r.end {
		return
	}
	r.sc.StopAtEnd = unauth
	last, _, err := r.sc.Scan(r.buf[r.scanned:r.end])
	if last >= 0 {
		r.valid = r.scanned + last
	}
	switch {
	case err != nil:
		r.err = err
		r.scanned = r.end
	case unauth && last >= 0:
		r.scanned += last
	default:
		r.scanned = r.end
	}
}

// parse slices the complete commands in buf[start:valid] into r.cmds and
// marks them consumed. The framing was validated by the scanner, so parse
// trusts it. An empty multibulk (*0, *-1) and an empty inline line are
// skipped, as Redis does. An inline line is parsed by redcon; its error
// (unbalanced quotes) ends the parse after the commands before it.
func (r *reqBuf) parse() ([]redcon.Command, error) {
	b := r.buf
	cmds, argv := r.cmds[:0], r.argv[:0]
	p := r.start
	var err error
	for p < r.valid {
		begin := p
		if b[p] != '*' {
			nl := p + bytes.IndexByte(b[p:r.valid], '\n')
			line := b[p : nl+1]
			p = nl + 1
			if isBlank(line) {
				continue
			}
			cmd, perr := redcon.Parse(line)
			if perr != nil {
				err = perr
				p = begin
				break
			}
			cmds = append(cmds, cmd)
			continue
		}
		n, q := headerNum(b, p+1)
		p = q
		if n <= 0 {
			continue
		}
		first := len(argv)
		for ; n > 0; n-- {
			l, q := headerNum(b, p+1) // after the '$'
			argv = append(argv, b[q:q+l:q+l])
			p = q + l + 2
		}
		cmds = append(cmds, redcon.Command{Raw: b[begin:p:p], Args: argv[first:len(argv):len(argv)]})
	}
	r.start = p
	r.cmds, r.argv = cmds, argv
	return cmds, err
}

// headerNum parses the number of a validated header line starting at i
// and returns it and the index after its CRLF.
func headerNum(b []byte, i int) (int, int) {
	neg := false
	if b[i] == '-' {
		neg = true
		i++
	}
	n := 0
	for ; b[i] != '\r'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, i + 2
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\r' && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// done forgets the executed commands: the buffer is emptied, or the partial
// command at its end moved to the front when little room is left. A large
// buffer is dropped once empty so idle connections do not keep it.
func (r *reqBuf) done() {
	clear(r.cmds) // the commands alias the buffer; keep no reference
	clear(r.argv)
	r.cmds, r.argv = r.cmds[:0], r.argv[:0]
	if r.start == r.end {
		r.start, r.valid, r.scanned, r.end = 0, 0, 0, 0
		if len(r.buf) > reqBufKeep {
			r.buf = nil
		}
		return
	}
	if len(r.buf)-r.end < reqBufMinRead && r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.valid -= r.start
		r.scanned -= r.start
		r.end = n
		r.start = 0
	}
}

// space returns the free tail of the buffer, growing it (by doubling, as
// bytes arrive, never by what a header declares) when a command does not
// fit.
func (r *reqBuf) space() []byte {
	if r.buf == nil {
		r.buf = make([]byte, reqBufSize)
	}
	if len(r.buf)-r.end < reqBufMinRead {
		if r.start > 0 {
			n := copy(r.buf, r.buf[r.start:r.end])
			r.valid -= r.start
			r.scanned -= r.start
			r.end = n
			r.start = 0
		}
		if len(r.buf)-r.end < reqBufMinRead {
			nb := make([]byte, 2*len(r.buf))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
	}
	return r.buf[r.end:]
}

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
			p := c.rb.space()
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
			p := c.rb.space()
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
	c.feed(n)
	c.run() // parks only on an event loop's connection
	perr := c.settle()
	if !c.sess.Quit && perr != nil {
		c.srv.connError(c, perr)
	}
	if len(c.out) > 0 {
		if c.linger {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		}
		m, werr := c.write(c.out)
		c.netOut.Add(int64(m))
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

// feed accounts for n bytes read into the end of the buffer.
func (c *client) feed(n int) {
	c.rb.end += n
	c.inBytes += int64(n)
	c.netIn.Store(c.inBytes)
}

// run executes the complete commands in the buffer, a pipeline at a time.
// It returns true when a write run was handed to the connection's event
// loop (serveFrom); the loop calls run again once it is committed.
func (c *client) run() (parked bool) {
	r := &c.rb
	for {
		if c.batch == nil {
			r.scan(!c.sess.Authed)
			cmds, err := r.parse()
			c.batchErr = err
			if len(cmds) > 0 {
				c.startBatch(cmds)
			}
		}
		if c.batch != nil {
			if c.serveFrom() {
				return true
			}
			c.endBatch()
		}
		if c.batchErr != nil {
			c.perr, c.batchErr = c.batchErr, nil
			return false
		}
		// Before AUTH the scanner stops after each command: go on with
		// the rest now that the command ran.
		if c.sess.Quit || r.err != nil || r.scanned == r.end {
			return false
		}
	}
}

// settle ends what run did with the buffer and returns the protocol error
// that ends the connection, if any: the replies of the commands before it
// are in c.out.
func (c *client) settle() error {
	err := c.perr
	if err == nil {
		err = c.rb.err
	}
	c.perr = nil
	c.rb.done()
	c.hkey = nil // it aliased the buffer
	return err
}

// resetOut empties the output buffer after it was written, dropping a
// large one.
func (c *client) resetOut() {
	if cap(c.out) > reqBufKeep {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
}

// rawRead and rawWrite are sockio.RawRead and sockio.RawWrite (read(2) and
// write(2) without the runtime's syscall bookkeeping, which at one of each
// per request was a tenth of the node's CPU) with an error instead of an
// Errno, since a zero Errno is a non-nil error.
func rawRead(fd uintptr, p []byte) (int, error) {
	n, e := sockio.RawRead(fd, p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, e := sockio.RawWrite(uintptr(fd), p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// write sends b to the client: with write(2) on the descriptor while the
// read loop has it, the rest through the net.Conn (which waits for the
// socket to drain) when the socket buffer is full.
func (c *client) write(b []byte) (int, error) {
	done := 0
	if c.fd >= 0 {
		for done < len(b) {
			n, err := rawWrite(c.fd, b[done:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				break
			}
			done += n
		}
		if done == len(b) {
			return done, nil
		}
	}
	n, err := c.nc.Write(b[done:])
	return done + n, err
}

// flushOut sends what c.out holds with write(2) on the connection's
// descriptor, keeping what the socket did not take for the connection to
// send itself. The group commit leader calls it for the connections of its
// batch, which wait until it is done: their output and descriptor are the
// leader's meanwhile.
func (c *client) flushOut() {
	if c.fd < 0 || len(c.out) == 0 {
		return
	}
	done := 0
	for done < len(c.out) {
		n, err := rawWrite(c.fd, c.out[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		done += n
	}
	c.netOut.Add(int64(done))
	c.out = c.out[:copy(c.out, c.out[done:])]
}
