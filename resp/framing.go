package resp

import "bytes"

// Redis's request limits. A frameScanner checks the framing of the bytes as
// they arrive, before anything is parsed or buffered for a command, so a
// declared two billion arguments, a 600 MB bulk or an endless inline line get
// Redis's error while the server's memory stays what actually arrived. A
// RequestReader feeds it every read from a client.
const (
	MaxInlineLen   = 64 << 10 // PROTO_INLINE_MAX_SIZE: an inline line or a header line
	MaxUnauthCount = 10       // multibulk count before AUTH, as Redis
	MaxUnauthBulk  = 16384    // bulk length before AUTH, as Redis
)

// ProtocolError is a request that breaks the framing or a limit. Its text is
// Redis's, without the "-ERR " the reply adds.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

var (
	errInlineTooBig     = &ProtocolError{"Protocol error: too big inline request"}
	errMbulkLineTooBig  = &ProtocolError{"Protocol error: too big mbulk count string"}
	errBulkLineTooBig   = &ProtocolError{"Protocol error: too big bulk count string"}
	errMultibulkLen     = &ProtocolError{"Protocol error: invalid multibulk length"}
	errBulkLen          = &ProtocolError{"Protocol error: invalid bulk length"}
	errUnauthMultibulk  = &ProtocolError{"Protocol error: unauthenticated multibulk length"}
	errUnauthBulkLength = &ProtocolError{"Protocol error: unauthenticated bulk length"}
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
	// so far; it bounds lines at MaxInlineLen.
	line int
	// num is the header number being parsed; neg and digits describe it,
	// and bad is set once the line cannot be a valid number.
	num    int64
	neg    bool
	digits int
	bad    bool
	// args is the number of bulks still expected in the current multibulk.
	args int64
	// skip is the number of payload bytes still to pass.
	skip int64
	// Unauth lowers the limits to Redis's before AUTH.
	Unauth bool
	// StopAtEnd makes Scan return right after the first command that
	// completes, leaving the rest of b unscanned.
	StopAtEnd bool
}

// Scan advances over b. It returns the offset just after the last command
// that completed in b (-1 if none did) and an error for the first byte that
// breaks the framing or a limit.
func (s *frameScanner) Scan(b []byte) (lastEnd int, err error) {
	lastEnd = -1
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case stStart:
			if c == '*' {
				s.state = stCount
				s.line, s.num, s.neg, s.digits, s.bad = 0, 0, false, 0, false
				continue
			}
			s.state = stInline
			s.line = 0
			fallthrough
		case stInline:
			// Skip ahead to the end of the line in one step.
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				s.line += len(b) - i
				if s.line > MaxInlineLen {
					return lastEnd, errInlineTooBig
				}
				return lastEnd, nil
			}
			if s.line+j > MaxInlineLen {
				return lastEnd, errInlineTooBig
			}
			i += j
			s.state = stStart
			lastEnd = i + 1
			if s.StopAtEnd {
				return lastEnd, nil
			}
		case stCount, stBulkLen:
			if c == '\r' {
				if s.digits == 0 || s.bad {
					return lastEnd, s.lenErr()
				}
				if s.neg {
					s.num = -s.num
				}
				if err := s.endHeader(); err != nil {
					return lastEnd, err
				}
				if s.state == stCount {
					s.state = stCountLF
				} else {
					s.state = stBulkLenLF
				}
				continue
			}
			s.line++
			if s.line > MaxInlineLen {
				if s.state == stCount {
					return lastEnd, errMbulkLineTooBig
				}
				return lastEnd, errBulkLineTooBig
			}
			switch {
			case s.bad:
			case c == '-' && s.line == 1:
				s.neg = true
			case c >= '0' && c <= '9' && s.digits < 18 &&
				!(s.digits > 0 && s.num == 0) && !(c == '0' && s.neg && s.digits == 0):
				s.num = s.num*10 + int64(c-'0')
				s.digits++
			default:
				// Not a number as Redis's string2ll reads one (no leading
				// zero, no "-0"), or more digits than any limit allows.
				// Redis judges the number when its line ends (or passes the
				// line limit, a different error), so the scanner does too.
				s.bad = true
			}
		case stCountLF:
			if c != '\n' {
				return lastEnd, errMultibulkLen
			}
			switch {
			case s.num <= 0:
				// An empty multibulk: Redis ignores it.
				s.state = stStart
				lastEnd = i + 1
				if s.StopAtEnd {
					return lastEnd, nil
				}
			default:
				s.args = s.num
				s.state = stBulkStart
			}
		case stBulkStart:
			if c != '$' {
				return lastEnd, &ProtocolError{"Protocol error: expected '$', got '" + printable(c) + "'"}
			}
			s.state = stBulkLen
			s.line, s.num, s.neg, s.digits, s.bad = 0, 0, false, 0, false
		case stBulkLenLF:
			if c != '\n' {
				return lastEnd, errBulkLen
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
				return lastEnd, nil
			}
			i += int(s.skip) - 1
			s.skip = 0
			s.state = stBulkCR
		case stBulkCR:
			// The payload must end with CRLF; checking it here, before
			// redcon, lets the commands before a bad one be answered.
			if c != '\r' {
				return lastEnd, errBulkLen
			}
			s.state = stBulkLF
		case stBulkLF:
			if c != '\n' {
				return lastEnd, errBulkLen
			}
			s.args--
			if s.args == 0 {
				s.state = stStart
				lastEnd = i + 1
				if s.StopAtEnd {
					return lastEnd, nil
				}
			} else {
				s.state = stBulkStart
			}
		}
	}
	return lastEnd, nil
}

func (s *frameScanner) lenErr() error {
	if s.state == stCount {
		return errMultibulkLen
	}
	return errBulkLen
}

// endHeader checks a complete count or length against the limits.
func (s *frameScanner) endHeader() error {
	unauth := s.Unauth
	if s.state == stCount {
		if s.num > MaxElements {
			return errMultibulkLen
		}
		if unauth && s.num > MaxUnauthCount {
			return errUnauthMultibulk
		}
		return nil
	}
	if s.num < 0 || s.num > MaxBulkLen {
		return errBulkLen
	}
	if unauth && s.num > MaxUnauthBulk {
		return errUnauthBulkLength
	}
	return nil
}

func printable(c byte) string {
	if c < ' ' || c > '~' {
		return "?"
	}
	return string(c)
}
