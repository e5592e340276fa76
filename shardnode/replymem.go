package shardnode

import (
	"errors"
	"os"
	"strconv"
	"time"

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
	serveDone serveState = iota // every command executed
	servePark                   // a write run waits for the event loop's commit
	serveHeld                   // the replies fill the pass: write them, then resume
)

// repliesFull reports whether the replies waiting to be written fill the
// pass.
func (c *client) repliesFull() bool { return len(c.out) >= maxPassReplies }

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
	l := c.srv.obuf.Class(conncmd.ObufNormal)
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
		l := c.srv.obuf.Class(conncmd.ObufNormal)
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
	out, ok, err := c.st.getAppend(append(c.out, bulkGap[:]...), key)
	if err != nil || !ok {
		c.out = out[:mark]
		return ok, err
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
	n := memfree.Big(cap(c.out)) + memfree.Big(cap(c.scratch))
	c.out, c.scratch = nil, nil
	memfree.Gone(n)
}
