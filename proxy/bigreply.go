package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// Big GET replies. The node answers a GET of a value of 4 MiB or more on
// the proxy's connections with a stream reference, "+STREAM <id>
// <length>", not the value (SHARD.STREAMREFS, sent in the handshake): the
// value, opened as of the GET, waits on the node. When the client's turn
// comes, the proxy fetches it on a connection of its own (SHARD.FETCH id)
// and copies it to the client streamBuf bytes at a time, as fast as the
// client reads. The shared node connection carries one line, so the other
// clients' replies never wait behind the value or its client, and neither
// server holds the value: a GET of 512 MB costs the proxy streamBuf. A
// client that reads slowly holds its fetch connection, not memory; one
// gone mid-value ends its fetch, and the node forgets the reference.
//
// A fetch that fails before the value's first byte was written to the
// client (the node restarted and lost the reference, say) is the shard's
// TRYAGAIN error for that GET; one that fails after closes the client's
// connection, since the reply cannot be finished in the protocol.

// streamBuf is what a fetch copies at a time.
const streamBuf = 256 << 10

var streamBufs = sync.Pool{New: func() any { b := make([]byte, streamBuf); return &b }}

var streamRefPrefix = []byte("+STREAM ")

// parseStreamRef reads a node's "+STREAM <id> <length>\r\n" reply.
func parseStreamRef(reply []byte) (id string, n int64, ok bool) {
	if !bytes.HasPrefix(reply, streamRefPrefix) || !bytes.HasSuffix(reply, []byte("\r\n")) {
		return "", 0, false
	}
	f := bytes.Fields(reply[len(streamRefPrefix) : len(reply)-2])
	if len(f) != 2 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return string(f[0]), n, true
}

// errMidValue is why a client whose big value could not be finished is
// closed.
var errMidValue = errors.New("a streamed value could not be finished")

// emitStream writes the value a stream reference stands for, after what
// out holds, and returns out emptied (or with the shard's error reply when
// nothing of the value was written).
func (c *client) emitStream(out []byte, sh *shard, id string, n int64) []byte {
	if c.obufOver.Load() || c.rerr != nil {
		return out
	}
	if len(out) > 0 {
		if err := c.flushLimited(out); err != nil {
			c.rerr = err
			return out[:0]
		}
		c.s.netOut.Add(int64(len(out)))
		out = out[:0]
	}
	written, err := c.fetchStream(sh, id, n)
	c.roundBytes += written
	switch {
	case err == nil:
	case written == 0:
		out = resp.AppendError(out, sh.unavailable(err))
	default:
		c.s.log.Warn("closing a client: its big value could not be finished", "client", c.sess.Addr, "shard", sh.name, "error", err)
		if c.rerr == nil {
			c.rerr = errMidValue
		}
	}
	return out
}

// fetchStream copies reference id's value (n bytes) from sh's node to the
// client as a bulk reply and returns how many bytes it wrote to the client.
func (c *client) fetchStream(sh *shard, id string, n int64) (int64, error) {
	timeout := c.s.cfg.Timeout
	nc, err := net.DialTimeout("tcp", sh.addr, timeout)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	var req []byte
	if pw := c.s.cfg.NodePassword; pw != "" {
		req = resp.AppendCommandStrings(req, "AUTH", pw)
	}
	req = resp.AppendCommandStrings(req, "SHARD.FETCH", id)
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write(req); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	if c.s.cfg.NodePassword != "" {
		if line, err := br.ReadSlice('\n'); err != nil {
			return 0, err
		} else if line[0] == '-' {
			return 0, fmt.Errorf("AUTH refused by the node: %s", bytes.TrimSpace(line[1:]))
		}
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if line[0] == '-' {
		return 0, fmt.Errorf("SHARD.FETCH: %s", bytes.TrimSpace(line[1:]))
	}
	if got, perr := strconv.ParseInt(string(bytes.TrimSpace(line[1:])), 10, 64); line[0] != '$' || perr != nil || got != n {
		return 0, fmt.Errorf("SHARD.FETCH replied %q for a value of %d bytes", bytes.TrimSpace(line), n)
	}
	bp := streamBufs.Get().(*[]byte)
	defer streamBufs.Put(bp)
	buf := *bp
	// The header, then the value and its CRLF, each part read from the
	// node only once the client took the one before.
	written := int64(0)
	head := append(buf[:0], line...)
	if err := c.flushLimited(head); err != nil {
		return 0, err
	}
	written += int64(len(head))
	for left := n + 2; left > 0; {
		_ = nc.SetReadDeadline(time.Now().Add(timeout))
		m, err := br.Read(buf[:min(int64(len(buf)), left)])
		if m > 0 {
			if werr := c.flushLimited(buf[:m]); werr != nil {
				return written, werr
			}
			written += int64(m)
			left -= int64(m)
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return written, err
		}
	}
	c.s.netOut.Add(written)
	return written, nil
}
