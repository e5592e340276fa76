package shardnode

import (
	"net"

	"github.com/shardkv/shardkv/resp"
)

// Redis's request limits. redcon has none: its reader grows its buffer as
// bytes arrive and scans a multibulk header's count in a loop, so a client
// could make it spin on a declared two billion arguments or buffer an endless
// inline line. limitConn sits under redcon's reader and checks the framing of
// the bytes as they arrive, before redcon sees them.
const (
	maxInlineLen   = 64 << 10 // PROTO_INLINE_MAX_SIZE: an inline line or a header line
	maxBulkLen     = resp.MaxBulkLen
	maxMultibulk   = resp.MaxElements
	maxUnauthCount = 10    // multibulk count before AUTH, as Redis
	maxUnauthBulk  = 16384 // bulk length before AUTH, as Redis
)

// protocolError is a request that breaks the framing or a limit. Its text is
// Redis's, without the "-ERR " the reply adds.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

var (
	errInlineTooBig     = &protocolError{"Protocol error: too big inline request"}
	errMbulkLineTooBig  = &protocolError{"Protocol error: too big mbulk count string"}
	errBulkLineTooBig   = &protocolError{"Protocol error: too big bulk count string"}
	errMultibulkLen     = &protocolError{"Protocol error: invalid multibulk length"}
	errBulkLen          = &protocolError{"Protocol error: invalid bulk length"}
	errUnauthMultibulk  = &protocolError{"Protocol error: unauthenticated multibulk length"}
	errUnauthBulkLength = &protocolError{"Protocol error: unauthenticated bulk length"}
)

// Scanner states.
const (
	stStart     = iota // between commands
	stInline           // inside an inline command line
	stCount            // digits of a multibulk count, after '*'
	stCountLF          // after the count's '\r'
	stBulkStart        // expecting '$'
	stBulkLen          // digits of a bulk length, after '$'
	stBulkLenLF        // after the bulk length's '\r'
	stBulkData         // skipping payload bytes
	stBulkCR           // expecting the '\r' after a payload
	stBulkLF           // expecting the '\n' after a payload
)

// frameScanner follows RESP request framing one byte at a time for headers
// and in O(1) per read for payloads. It holds no buffer: its memory is the
// same whatever the client declares.
type frameScanner struct {
	state int
	// line is the number of bytes of the current header or inline line seen
	// so far; it bounds lines at maxInlineLen.
	line int
	// num is the header number being parsed; neg and digits describe it.
	num    int64
	neg    bool
	digits int
	// args is the number of bulks still expected in the current multibulk.
	args int64
	// skip is the number of payload bytes still to pass.
	skip int64
	// unauth reports whether the client still has to authenticate, which
	// lowers the limits as Redis does.
	unauth func() bool
	// stopAtEnd makes scan return right after the first command that
	// completes, leaving the rest of b unscanned.
	stopAtEnd bool
}

// scan advances over b. It returns the offset just after the last command
// that completed in b (-1 if none did), the offset in b where the command
// being scanned began (-1 if it began in an earlier read), and an error for
// the first byte that breaks the framing or a limit.
func (s *frameScanner) scan(b []byte) (lastEnd, cmdStart int, err error) {
	lastEnd, cmdStart = -1, -1
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case stStart:
			cmdStart = i
			if c == '*' {
				s.state = stCount
				s.line, s.num, s.neg, s.digits = 0, 0, false, 0
				continue
			}
			s.state = stInline
			s.line = 0
			fallthrough
		case stInline:
			// Skip ahead to the end of the line in one step.
			j := indexByte(b[i:], '\n')
			if j < 0 {
				s.line += len(b) - i
				if s.line > maxInlineLen {
					return lastEnd, cmdStart, errInlineTooBig
				}
				return lastEnd, cmdStart, nil
			}
			if s.line+j > maxInlineLen {
				return lastEnd, cmdStart, errInlineTooBig
			}
			i += j
			s.state = stStart
			lastEnd = i + 1
			if s.stopAtEnd {
				return lastEnd, cmdStart, nil
			}
		case stCount, stBulkLen:
			if c == '\r' {
				if s.digits == 0 {
					return lastEnd, cmdStart, s.lenErr()
				}
				if s.neg {
					s.num = -s.num
				}
				if err := s.endHeader(); err != nil {
					return lastEnd, cmdStart, err
				}
				if s.state == stCount {
					s.state = stCountLF
				} else {
					s.state = stBulkLenLF
				}
				continue
			}
			s.line++
			if s.line > maxInlineLen {
				if s.state == stCount {
					return lastEnd, cmdStart, errMbulkLineTooBig
				}
				return lastEnd, cmdStart, errBulkLineTooBig
			}
			switch {
			case c == '-' && s.line == 1:
				s.neg = true
			case c >= '0' && c <= '9' && s.digits < 18:
				s.num = s.num*10 + int64(c-'0')
				s.digits++
			default:
				// Not a number, or more digits than any limit allows.
				return lastEnd, cmdStart, s.lenErr()
			}
		case stCountLF:
			if c != '\n' {
				return lastEnd, cmdStart, errMultibulkLen
			}
			switch {
			case s.num <= 0:
				// An empty multibulk: redcon reports it.
				s.state = stStart
				lastEnd = i + 1
				if s.stopAtEnd {
					return lastEnd, cmdStart, nil
				}
				if s.stopAtEnd {
					return lastEnd, cmdStart, nil
				}
			default:
				s.args = s.num
				s.state = stBulkStart
			}
		case stBulkStart:
			if c != '$' {
				return lastEnd, cmdStart, &protocolError{"Protocol error: expected '$', got '" + printable(c) + "'"}
			}
			s.state = stBulkLen
			s.line, s.num, s.neg, s.digits = 0, 0, false, 0
		case stBulkLenLF:
			if c != '\n' {
				return lastEnd, cmdStart, errBulkLen
			}
			s.skip = s.num
			s.state = stBulkData
			if s.skip == 0 {
				s.state = stBulkCR
			}
		case stBulkData:
			n := int64(len(b) - i)
			if n < s.skip {
				s.skip -= n
				return lastEnd, cmdStart, nil
			}
			i += int(s.skip) - 1
			s.skip = 0
			s.state = stBulkCR
		case stBulkCR:
			// The payload must end with CRLF; checking it here, before
			// redcon, lets the commands before a bad one be answered.
			if c != '\r' {
				return lastEnd, cmdStart, errBulkLen
			}
			s.state = stBulkLF
		case stBulkLF:
			if c != '\n' {
				return lastEnd, cmdStart, errBulkLen
			}
			s.args--
			if s.args == 0 {
				s.state = stStart
				lastEnd = i + 1
				if s.stopAtEnd {
					return lastEnd, cmdStart, nil
				}
				if s.stopAtEnd {
					return lastEnd, cmdStart, nil
				}
			} else {
				s.state = stBulkStart
			}
		}
	}
	return lastEnd, cmdStart, nil
}

func (s *frameScanner) lenErr() error {
	if s.state == stCount {
		return errMultibulkLen
	}
	return errBulkLen
}

// endHeader checks a complete count or length against the limits.
func (s *frameScanner) endHeader() error {
	unauth := s.unauth != nil && s.unauth()
	if s.state == stCount {
		if s.num > maxMultibulk {
			return errMultibulkLen
		}
		if unauth && s.num > maxUnauthCount {
			return errUnauthMultibulk
		}
		return nil
	}
	if s.num < 0 || s.num > maxBulkLen {
		return errBulkLen
	}
	if unauth && s.num > maxUnauthBulk {
		return errUnauthBulkLength
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

// limitConn is the connection redcon's reader reads from. Read returns only
// bytes whose framing the scanner accepted, and it keeps reading until a
// command is complete or the caller's buffer is full, so redcon re-parses a
// partial command only when its buffer has doubled, never once per packet.
//
// Before the client authenticates, Read hands over one command at a time
// and holds back what follows: Redis executes AUTH before it parses the
// next command, so the lower unauthenticated limits must not apply to a
// command pipelined right behind a successful AUTH.
type limitConn struct {
	net.Conn
	sc frameScanner
	// held are bytes read but not yet handed over (see above), with the
	// read error that came with them.
	held    []byte
	heldErr error
	// pending is an error to return on the next Read, after the bytes of
	// the commands that preceded it were handed over.
	pending error
	// in counts bytes read, for INFO stats.
	in int64
}

func (l *limitConn) Read(p []byte) (int, error) {
	if l.pending != nil {
		return 0, l.pending
	}
	n := 0
	for n < len(p) {
		var m int
		var err error
		if len(l.held) > 0 {
			m = copy(p[n:], l.held)
			l.held = l.held[m:]
			if len(l.held) == 0 {
				l.held, err, l.heldErr = nil, l.heldErr, nil
			}
		} else {
			m, err = l.Conn.Read(p[n:])
			l.in += int64(m)
		}
		l.sc.stopAtEnd = l.sc.unauth != nil && l.sc.unauth()
		lastEnd, cmdStart, serr := l.sc.scan(p[n : n+m])
		if serr != nil {
			// Hand over the complete commands that preceded the bad one in
			// this read; the error comes on the next Read, once their
			// replies were written. Bytes of a bad command that began in
			// an earlier read are never handed over: nothing completed
			// since, so they all belong to it.
			l.pending = serr
			if cmdStart >= 0 && n+cmdStart > 0 {
				return n + cmdStart, nil
			}
			return 0, serr
		}
		if l.sc.stopAtEnd && lastEnd >= 0 && lastEnd < m {
			// Hold back what follows the first command; it is scanned
			// again once that command ran.
			rest := p[n+lastEnd : n+m]
			l.held = append(append(make([]byte, 0, len(rest)+len(l.held)), rest...), l.held...)
			if err != nil {
				l.heldErr, err = err, nil
			}
			m = lastEnd
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
