package proxy

import (
	"net"
	"sync/atomic"

	"github.com/shardkv/shardkv/resp"
)

// limitConn is the framer as a net.Conn, for the read loop's fallback on a
// connection without a file descriptor (conn.go). Read hands over only
// bytes the framer accepted; on a violation, the complete commands before it
// are handed over first, and the next Read writes Redis's error to the
// client and fails, which closes the connection after the earlier commands
// were answered. Read keeps reading until a command is complete or the
// buffer is full, so a partial command is re-parsed only when the buffer
// has grown, not once per packet.
type limitConn struct {
	net.Conn
	f       *resp.FrameScanner
	pending error         // returned by the next Read
	in      *atomic.Int64 // bytes received, for INFO stats
}

func (l *limitConn) Read(p []byte) (int, error) {
	if l.pending != nil {
		return 0, l.fail()
	}
	n := 0
	for n < len(p) {
		m, err := l.Conn.Read(p[n:])
		if l.in != nil {
			l.in.Add(int64(m))
		}
		lastEnd, cmdStart, serr := l.f.Scan(p[n : n+m])
		if serr != nil {
			l.pending = serr
			if cmdStart >= 0 && n+cmdStart > 0 {
				return n + cmdStart, nil
			}
			return 0, l.fail()
		}
		n += m
		if err != nil {
			if n > 0 {
				l.pending = err
				return n, nil
			}
			return 0, err
		}
		if lastEnd >= 0 || m == 0 {
			return n, nil
		}
	}
	return n, nil
}

// fail writes the pending protocol error to the client, as Redis does
// before it closes the connection, and returns it.
func (l *limitConn) fail() error {
	err := l.pending
	if pe, ok := err.(*resp.ProtocolError); ok {
		l.Conn.Write(resp.AppendError(nil, "ERR "+pe.Msg))
		l.pending = errClosedAfterProtocolError
		return err
	}
	return err
}

var errClosedAfterProtocolError = &resp.ProtocolError{Msg: "connection closed after a protocol error"}
