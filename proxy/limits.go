package proxy

import (
	"net"
	"sync/atomic"

	"github.com/shardkv/shardkv/resp"
)

// Redis's request limits. redcon enforces none: its parsers take whatever
// arrives, so a client declaring a 2 GiB bulk or sending an endless inline
// line would make the proxy buffer it. The framer follows the request
// framing as bytes arrive, without buffering anything itself, and stops the
// connection at the first byte that breaks a limit: the read loop
// (conn.go) runs it over every read, before it parses commands.
const (
	maxInlineLen   = 64 << 10 // PROTO_INLINE_MAX_SIZE: an inline line or a header line
	maxBulkLen     = resp.MaxBulkLen
	maxMultibulk   = resp.MaxElements
	maxUnauthCount = 10    // multibulk count before AUTH, as Redis
	maxUnauthBulk  = 16384 // bulk length before AUTH, as Redis
)

// protocolError is a request that breaks the framing or a limit; its text
// is Redis's, without the "ERR " the reply adds.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

var (
	errInlineTooBig    = &protocolError{"Protocol error: too big inline request"}
	errMbulkLineTooBig = &protocolError{"Protocol error: too big mbulk count string"}
	errBulkLineTooBig  = &protocolError{"Protocol error: too big bulk count string"}
	errMultibulkLen    = &protocolError{"Protocol error: invalid multibulk length"}
	errBulkLen         = &protocolError{"Protocol error: invalid bulk length"}
	errUnauthMultibulk = &protocolError{"Protocol error: unauthenticated multibulk length"}
	errUnauthBulkLen   = &protocolError{"Protocol error: unauthenticated bulk length"}
)

// Framing states.
const (
	fsStart     = iota // between commands
	fsInline           // inside an inline command line
	fsCount            // the digits of a multibulk count, after '*'
	fsCountLF          // after the count's '\r'
	fsBulkStart        // expecting '$'
	fsBulkLen          // the digits of a bulk length, after '$'
	fsBulkLenLF        // after the bulk length's '\r'
	fsBulkData         // skipping a payload and its CRLF
)

// framer follows request framing: byte by byte through headers, one step
// per read through payloads. Its memory is the same whatever the client
// declares.
type framer struct {
	state  int
	line   int   // bytes of the current header or inline line so far
	num    int64 // the header number being parsed
	neg    bool
	digits int
	args   int64 // bulks still expected in the current multibulk
	skip   int64 // payload bytes (plus CRLF) still to pass
	// unauth reports whether the client has yet to authenticate, which
	// lowers the limits as Redis does.
	unauth func() bool
}

// scan advances over b. It returns the offset just after the last command
// completed in b (-1 if none), the offset where the command in progress
// began (-1 if it began in an earlier read), and the first violation.
func (f *framer) scan(b []byte) (lastEnd, cmdStart int, err error) {
	lastEnd, cmdStart = -1, -1
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch f.state {
		case fsStart:
			cmdStart = i
			if c == '*' {
				f.state = fsCount
				f.line, f.num, f.neg, f.digits = 0, 0, false, 0
				continue
			}
			f.state = fsInline
			f.line = 0
			fallthrough
		case fsInline:
			j := indexByte(b[i:], '\n')
			if j < 0 {
				f.line += len(b) - i
				if f.line > maxInlineLen {
					return lastEnd, cmdStart, errInlineTooBig
				}
				return lastEnd, cmdStart, nil
			}
			if f.line+j > maxInlineLen {
				return lastEnd, cmdStart, errInlineTooBig
			}
			i += j
			f.state = fsStart
			lastEnd = i + 1
		case fsCount, fsBulkLen:
			if c == '\r' {
				if f.digits == 0 {
					return lastEnd, cmdStart, f.lenErr()
				}
				if f.neg {
					f.num = -f.num
				}
				if err := f.endHeader(); err != nil {
					return lastEnd, cmdStart, err
				}
				f.state++ // fsCountLF or fsBulkLenLF
				continue
			}
			f.line++
			if f.line > maxInlineLen {
				if f.state == fsCount {
					return lastEnd, cmdStart, errMbulkLineTooBig
				}
				return lastEnd, cmdStart, errBulkLineTooBig
			}
			switch {
			case c == '-' && f.line == 1:
				f.neg = true
			case c >= '0' && c <= '9' && f.digits < 18:
				f.num = f.num*10 + int64(c-'0')
				f.digits++
			default:
				return lastEnd, cmdStart, f.lenErr()
			}
		case fsCountLF:
			if f.num <= 0 {
				// An empty multibulk: redcon reports it.
				f.state = fsStart
				lastEnd = i + 1
				continue
			}
			f.args = f.num
			f.state = fsBulkStart
		case fsBulkStart:
			if c != '$' {
				return lastEnd, cmdStart, &protocolError{"Protocol error: expected '$', got '" + printable(c) + "'"}
			}
			f.state = fsBulkLen
			f.line, f.num, f.neg, f.digits = 0, 0, false, 0
		case fsBulkLenLF:
			f.skip = f.num + 2
			f.state = fsBulkData
		case fsBulkData:
			n := int64(len(b) - i)
			if n < f.skip {
				f.skip -= n
				return lastEnd, cmdStart, nil
			}
			i += int(f.skip) - 1
			f.skip = 0
			f.args--
			if f.args == 0 {
				f.state = fsStart
				lastEnd = i + 1
			} else {
				f.state = fsBulkStart
			}
		}
	}
	return lastEnd, cmdStart, nil
}

func (f *framer) lenErr() error {
	if f.state == fsCount {
		return errMultibulkLen
	}
	return errBulkLen
}

func (f *framer) endHeader() error {
	unauth := f.unauth != nil && f.unauth()
	if f.state == fsCount {
		if f.num > maxMultibulk {
			return errMultibulkLen
		}
		if unauth && f.num > maxUnauthCount {
			return errUnauthMultibulk
		}
		return nil
	}
	if f.num < 0 || f.num > maxBulkLen {
		return errBulkLen
	}
	if unauth && f.num > maxUnauthBulk {
		return errUnauthBulkLen
	}
	return nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func printable(c byte) string {
	if c < ' ' || c > '~' {
		return "?"
	}
	return string(c)
}

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
	f       framer
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
		lastEnd, cmdStart, serr := l.f.scan(p[n : n+m])
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
	if pe, ok := err.(*protocolError); ok {
		l.Conn.Write(resp.AppendError(nil, "ERR "+pe.msg))
		l.pending = errClosedAfterProtocolError
		return err
	}
	return err
}

var errClosedAfterProtocolError = &protocolError{"connection closed after a protocol error"}
