package shardnode

import (
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/memfree"
)

// Reply memory. A pipeline's replies are built in c.out and written after
// it; a pipeline of 1,000 GETs of a 1 MB value read in one 22 KB read
// would build a gigabyte before writing a byte, and keep it while the
// client does not read. So a connection stops executing its pipeline once
// the replies waiting to be written reach maxPassReplies (the pipeline is
// then held: c.batch stays set, and its commands keep aliasing the request
// buffer, which is not read into meanwhile), writes them, and goes on with
// the next command once the socket took them all. On an event loop a held
// connection is resumed in the next pass if its socket took everything,
// else when it reports EPOLLOUT; a connection with a goroutine of its own
// writes, waiting as long as the client takes, then goes on. A
// connection's replies thus never hold more than maxPassReplies plus one
// reply, whatever the pipeline, and the other connections of its loop are
// served between its passes.
//
// client-output-buffer-limit (conncmd.OutputLimits, the normal class)
// closes a client whose replies waiting to be written reach the hard limit,
// or stay over the soft limit longer than its seconds, as Redis does;
// "pending" here is c.out, what was built and not yet taken by the socket.
// A proxy's connection is exempt: it carries many clients' requests, and
// the proxy applies the limit to each of them.

// maxPassReplies is how many bytes of replies a connection builds before
// it writes them.
const maxPassReplies = 1 << 20

// serveState is how serveFrom left the pipeline.
type serveState uint8

const (
	serveDone    serveState = iota // every command executed
	servePark                      // a write run waits for the event loop's commit
	serveHeld                      // the replies fill the pass: write them, then resume
	serveBlocked                   // a blocking pop blocked: the rest waits until it is served (blocking.go)
	serveTx                        // a TX.* message runs off the event loop: the rest waits for it (txexec.go)
)

// repliesFull reports whether the replies waiting to be written fill the
// pass, or a streamed value's reply must be written before the next
// command.
func (c *client) repliesFull() bool { return len(c.out) >= maxPassReplies || c.stream != nil }

// hold notes that the pipeline stopped for its replies to be written: the
// time until it resumes is not the pipeline's (slow log, latency).
func (c *client) hold() { c.heldAt = time.Now() }

// resume goes on with a held pipeline.
func (c *client) resume() {
	if !c.heldAt.IsZero() {
		c.batchT = c.batchT.Add(time.Since(c.heldAt))
		c.heldAt = time.Time{}
	}
}

// overOutputLimit reports whether c must be closed for its pending replies
// (client-output-buffer-limit, normal class), and logs it as Redis does.
// The pending replies are c.out; blocked says the socket is full, and then a
// held pipeline counts a pass more: where Redis would have built the rest
// of the pipeline's replies, the node holds them back, and a client that
// does not read must not get under the soft limit by the socket taking
// part of the last pass.
func (c *client) overOutputLimit(blocked bool) bool {
	l := c.srv.obuf.Class(c.obufClass())
	if !l.On() || connClass(c.class.Load()) == classProxy {
		return false
	}
	used := uint64(len(c.out))
	if blocked && c.batch != nil {
		used += maxPassReplies
	}
	if !l.Over(used, &c.obufSoftSince, time.Now().Unix()) {
		return false
	}
	c.srv.log.Warn(conncmd.ObufClosed,
		"client", c.sess.Addr, "id", c.sess.ID, "pending", len(c.out))
	return true
}

// writeLimited writes c.out on a connection with a goroutine of its own.
// While its replies are over the soft output buffer limit, the write's
// deadline is when the limit's time runs out: missing it closes the
// connection as over its limit (on an event loop, watchSoft does that).
func (c *client) writeLimited() error {
	since := c.obufSoftSince
	if since != 0 {
		l := c.srv.obuf.Class(c.obufClass())
		_ = c.nc.SetWriteDeadline(time.Unix(since+l.SoftSeconds+1, 0))
	}
	c.sess.SetOutputMem(int64(len(c.out)))
	m, err := c.write(c.out)
	c.sess.SetOutputMem(0)
	c.netOut.Add(int64(m))
	if since != 0 {
		_ = c.nc.SetWriteDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.srv.log.Warn(conncmd.ObufClosed,
				"client", c.sess.Addr, "id", c.sess.ID, "pending", len(c.out)-m)
		}
	}
	return err
}

// bulkGap is room for the longest bulk header, "$" and 19 digits and CRLF.
var bulkGap [22]byte

// Streamed replies. A value of bitcask.StreamMin bytes or more is not read
// into c.out whole: GET opens it as a bitcask.ValueStream (its CRC checked
// first, so what is sent is the stored value), puts the bulk header in
// c.out, and each pass then appends what fits in maxPassReplies, as a held
// pipeline (the connection's later commands wait, as behind any reply, and
// the other connections are served between its passes). A GET of a 512 MB
// value holds 1 MiB of it at a time, not 512 MB, whatever the client
// reads. Inside a transaction (a write run, EXEC) the value is read whole:
// the stream would not see the transaction's own writes.

// streamChunk is the least a pass appends of a streamed value.
const streamChunk = 64 << 10

// pumpStream appends the next part of the streamed value to c.out and
// reports whether it is done (its CRLF appended, the stream closed). A
// read error after the header went out cannot be told to the client in
// the protocol: the connection is closed.
func (c *client) pumpStream() bool {
	s := c.stream
	room := max(streamChunk, maxPassReplies-len(c.out))
	out, err := s.AppendNext(c.out, room)
	c.out = out
	if err != nil {
		c.srv.log.Error("reading a streamed value failed; closing the connection", "client", c.sess.Addr, "error", err)
		c.closeStream()
		c.sess.Quit = true
		return true
	}
	if s.Remaining() > 0 {
		return false
	}
	c.out = append(c.out, '\r', '\n')
	c.closeStream()
	return true
}

func (c *client) closeStream() {
	if c.stream != nil {
		c.stream.Close()
		c.stream = nil
	}
}

// bulkValue appends key's value to c.out as a bulk reply, read from the
// storage straight into c.out: a big value is copied once, not first into
// a scratch buffer of its size (garbage after each GET of it) and then
// into the reply. Its length is known only once it is read, so it is read
// behind room for the longest header, and moved back against the header
// it gets. It reports whether the key holds a string; nothing is appended
// when it does not.
func (c *client) bulkValue(key []byte) (bool, error) {
	mark := len(c.out)
	start := mark + len(bulkGap)
	var vs *bitcask.ValueStream
	var out []byte
	var ok bool
	var err error
	// A subscriber's pushes join c.out between passes: its values are
	// read whole.
	if c.streamOK && (c.ps == nil || c.ps.total() == 0) {
		out, vs, ok, err = c.st.getAppendOrStream(append(c.out, bulkGap[:]...), key)
	} else {
		out, ok, err = c.st.getAppend(append(c.out, bulkGap[:]...), key)
	}
	if err != nil || !ok {
		c.out = out[:mark]
		return ok, err
	}
	if vs != nil {
		c.out = out[:mark]
		c.streamReply(vs)
		return true, nil
	}
	n := len(out) - start
	var hb [len(bulkGap)]byte
	h := append(strconv.AppendInt(append(hb[:0], '$'), int64(n), 10), '\r', '\n')
	copy(out[mark+len(h):], out[start:])
	copy(out[mark:], h)
	c.out = append(out[:mark+len(h)+n], '\r', '\n')
	return true, nil
}

// dropBuffers forgets a closed connection's buffers (dropClient), and
// has big ones given back.
func (c *client) dropBuffers() {
	c.closeStream()
	n := memfree.Big(cap(c.out)) + memfree.Big(cap(c.scratch))
	c.out, c.scratch = nil, nil
	memfree.Gone(n)
}
