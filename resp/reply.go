package resp

import (
	"errors"
	"io"
	"strconv"
	"syscall"
)

// Replies are framed without being decoded: a Scanner finds where one reply
// ends so its bytes can be forwarded as they are, and resumes where it
// stopped when the reply arrives in pieces, so a large reply is scanned once
// however many reads it takes. Parse decodes a reply into a Value when the
// proxy has to merge replies.
//
// Every RESP2 and RESP3 type is understood: simple string '+', error '-',
// integer ':', bulk '$', array '*', null '_', double ',', boolean '#', big
// number '(', blob error '!', verbatim '=', map '%', set '~', attribute '|'
// (which precedes the reply it annotates) and push '>'. Streamed strings and
// aggregates ('$?', '*?') are not.

// These limits bound what a peer can make the reader allocate; they match
// Redis's defaults for requests.
const (
	MaxBulkLen  = 512 << 20 // proto-max-bulk-len
	MaxElements = 1 << 20   // largest multibulk request Redis accepts; replies may be larger
	maxLineLen  = 64 << 10  // longest simple string, error or header line
)

// ErrProtocol is returned for bytes that are not a valid reply.
var ErrProtocol = errors.New("resp: protocol error")

func protoErr(what string) error { return &protocolError{what} }

type protocolError struct{ what string }

func (e *protocolError) Error() string { return "resp: protocol error: " + e.what }
func (e *protocolError) Unwrap() error { return ErrProtocol }

// Scanner finds the end of one reply in a buffer that may hold only its
// beginning. The zero value is ready; Reset it before scanning the next reply.
type Scanner struct {
	pos  int // bytes of the current reply already scanned: whole elements only
	need int // elements still to scan; 0 means a fresh reply (1 element)
}

// Reset prepares the scanner for a new reply.
func (s *Scanner) Reset() { s.pos, s.need = 0, 0 }

// Scan looks at b, which begins with the reply being scanned (the same
// beginning on every call until the reply is complete). It returns the
// reply's length once b holds all of it, or 0 when more bytes are needed.
func (s *Scanner) Scan(b []byte) (int, error) {
	if s.need == 0 && s.pos == 0 {
		s.need = 1
	}
	for s.need > 0 {
		n, more, err := element(b[s.pos:])
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, nil
		}
		s.pos += n
		s.need += more - 1
	}
	n := s.pos
	s.Reset()
	return n, nil
}

// ReplyLen returns the length of the first complete reply in b, or 0 if b
// holds only part of one.
func ReplyLen(b []byte) (int, error) {
	var s Scanner
	return s.Scan(b)
}

// element scans one element header (and a string's payload). It returns its
// length, or 0 if incomplete, and how many elements it announces that
// follow (the children of an aggregate, or the reply after an attribute).
func element(b []byte) (n int, more int, err error) {
	if len(b) < 3 {
		return 0, 0, nil
	}
	end := lineEnd(b)
	if end < 0 {
		if len(b) > maxLineLen {
			return 0, 0, protoErr("line too long")
		}
		return 0, 0, nil
	}
	if end < 2 || b[end-1] != '\r' {
		return 0, 0, protoErr("line not terminated by CRLF")
	}
	line := b[1 : end-1]
	n = end + 1
	switch b[0] {
	case '+', '-', ':', ',', '#', '(':
		return n, 0, nil
	case '_':
		if len(line) != 0 {
			return 0, 0, protoErr("bad null")
		}
		return n, 0, nil
	case '$', '!', '=':
		l, ok := parseLen(line)
		if !ok || l > MaxBulkLen {
			return 0, 0, protoErr("invalid bulk length")
		}
		if l < 0 {
			if b[0] != '$' || l != -1 {
				return 0, 0, protoErr("invalid bulk length")
			}
			return n, 0, nil
		}
		total := n + l + 2
		if len(b) < total {
			return 0, 0, nil
		}
		if b[total-2] != '\r' || b[total-1] != '\n' {
			return 0, 0, protoErr("bulk not terminated by CRLF")
		}
		return total, 0, nil
	case '*', '~', '>', '%', '|':
		c, ok := parseLen(line)
		if !ok || c < -1 || (c == -1 && b[0] != '*') {
			return 0, 0, protoErr("invalid aggregate length")
		}
		switch b[0] {
		case '%':
			return n, 2 * c, nil
		case '|':
			return n, 2*c + 1, nil // the pairs, then the reply they annotate
		}
		if c < 0 {
			c = 0
		}
		return n, c, nil
	default:
		return 0, 0, protoErr("unexpected type byte " + strconv.Quote(string(b[:1])))
	}
}

func lineEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

// parseLen parses a length: -1 or a non-negative decimal without sign or
// leading garbage, small enough to never overflow.
func parseLen(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Value is a decoded reply. Aggregates hold their elements; a map holds its
// keys and values alternately, as RESP2 would send them.
type Value struct {
	Type  byte    // the RESP type byte: '+', '-', ':', '$', '*', '_', ',', '#', '(', '!', '=', '%', '~', '>'
	Str   []byte  // simple string, error, bulk, verbatim (without its format), double, big number
	Int   int64   // integer; boolean as 0 or 1
	Null  bool    // '_', $-1 or *-1
	Elems []Value // array, set, push, map (k, v, k, v, ...)
}

// IsError reports whether v is an error reply ('-' or '!').
func (v Value) IsError() bool { return v.Type == '-' || v.Type == '!' }

// IsAggregate reports whether v has elements.
func (v Value) IsAggregate() bool {
	switch v.Type {
	case '*', '~', '>', '%':
		return !v.Null
	}
	return false
}

// Text returns the string form of a scalar.
func (v Value) Text() string {
	if v.Type == ':' {
		return strconv.FormatInt(v.Int, 10)
	}
	return string(v.Str)
}

// Integer returns an integer reply, or a string that holds one.
func (v Value) Integer() (int64, bool) {
	switch v.Type {
	case ':':
		return v.Int, true
	case '$', '+':
		n, err := strconv.ParseInt(string(v.Str), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Parse decodes the first reply in b and returns it with its length. The
// Value's strings alias b.
func Parse(b []byte) (Value, int, error) {
	n, err := ReplyLen(b)
	if err != nil {
		return Value{}, 0, err
	}
	if n == 0 {
		return Value{}, 0, io.ErrUnexpectedEOF
	}
	v, m := parse(b[:n])
	if m != n {
		return Value{}, 0, protoErr("inconsistent reply")
	}
	return v, n, nil
}

// parse decodes a reply already known to be complete and well framed.
func parse(b []byte) (Value, int) {
	end := lineEnd(b)
	line := b[1 : end-1]
	n := end + 1
	v := Value{Type: b[0]}
	switch b[0] {
	case '+', '-', ',', '(':
		v.Str = line
	case ':':
		v.Int, _ = strconv.ParseInt(string(line), 10, 64)
	case '#':
		if len(line) == 1 && line[0] == 't' {
			v.Int = 1
		}
	case '_':
		v.Null = true
	case '$', '!', '=':
		l, _ := parseLen(line)
		if l < 0 {
			v.Null = true
			return v, n
		}
		v.Str = b[n : n+l]
		if b[0] == '=' && l >= 4 {
			v.Str = v.Str[4:]
		}
		n += l + 2
	case '*', '~', '>', '%', '|':
		c, _ := parseLen(line)
		if c < 0 {
			v.Null = true
			return v, n
		}
		if b[0] == '%' || b[0] == '|' {
			c *= 2
		}
		v.Elems = make([]Value, c)
		for i := range v.Elems {
			e, m := parse(b[n:])
			v.Elems[i] = e
			n += m
		}
		if b[0] == '|' {
			// An attribute annotates the reply that follows; keep the reply.
			e, m := parse(b[n:])
			return e, n + m
		}
	}
	return v, n
}

// Elements splits the aggregate reply in b (already known to be complete)
// into the raw bytes of its elements, appended to dst. It is how a merged
// reply is built from the nodes' replies without re-encoding each element.
func Elements(dst [][]byte, b []byte) ([][]byte, error) {
	end := lineEnd(b)
	if end < 2 || b[end-1] != '\r' {
		return dst, protoErr("not an aggregate")
	}
	switch b[0] {
	case '*', '~', '>', '%':
	default:
		return dst, protoErr("not an aggregate")
	}
	c, ok := parseLen(b[1 : end-1])
	if !ok {
		return dst, protoErr("invalid aggregate length")
	}
	if b[0] == '%' {
		c *= 2
	}
	pos := end + 1
	for i := 0; i < c; i++ {
		n, err := ReplyLen(b[pos:])
		if err != nil {
			return dst, err
		}
		if n == 0 {
			return dst, io.ErrUnexpectedEOF
		}
		dst = append(dst, b[pos:pos+n])
		pos += n
	}
	return dst, nil
}

// ReplyReader reads replies from a stream and hands back each one's raw
// bytes, valid until the next call to Next.
type ReplyReader struct {
	rd   io.Reader
	buf  []byte
	r, w int // buf[r:w] holds bytes read but not yet returned
	sc   Scanner
	size int // the initial size, returned to after a large reply
}

// NewReplyReader returns a reader with a buffer of size bytes that grows to
// hold the largest reply.
func NewReplyReader(rd io.Reader, size int) *ReplyReader {
	if size < 512 {
		size = 512
	}
	return &ReplyReader{rd: rd, buf: make([]byte, size), size: size}
}

// Buffered reports how many bytes are read but not yet returned.
func (r *ReplyReader) Buffered() int { return r.w - r.r }

// Next returns the raw bytes of the next reply.
func (r *ReplyReader) Next() ([]byte, error) {
	for {
		if r.w > r.r {
			n, err := r.sc.Scan(r.buf[r.r:r.w])
			if err != nil {
				return nil, err
			}
			if n > 0 {
				b := r.buf[r.r : r.r+n]
				r.r += n
				return b, nil
			}
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
}

func (r *ReplyReader) fill() error {
	r.makeRoom()
	n, err := r.rd.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// NextBuffered returns the next reply if the buffer holds all of it, else
// nil; it never reads.
func (r *ReplyReader) NextBuffered() ([]byte, error) {
	if r.w == r.r {
		return nil, nil
	}
	n, err := r.sc.Scan(r.buf[r.r:r.w])
	if err != nil || n == 0 {
		return nil, err
	}
	b := r.buf[r.r : r.r+n]
	r.r += n
	return b, nil
}

// ReadFd makes room as Next does and reads once from descriptor fd into
// the buffer with read, a read(2) the caller makes on its own terms (the
// proxy passes its raw, non-blocking one; a plain function, so no closure is
// allocated per read). It returns read's result and how much room it was
// given, so the caller can tell a short read from a full buffer.
func (r *ReplyReader) ReadFd(fd uintptr, read func(fd uintptr, p []byte) (int, syscall.Errno)) (n, room int, errno syscall.Errno) {
	r.makeRoom()
	room = len(r.buf) - r.w
	n, errno = read(fd, r.buf[r.w:])
	if errno == 0 && n > 0 {
		r.w += n
	}
	return n, room, errno
}

// makeRoom rewinds an empty buffer (dropping a large one), or moves the
// unread bytes to the front, or doubles the buffer when a reply fills it.
func (r *ReplyReader) makeRoom() {
	if r.r == r.w {
		r.r, r.w = 0, 0
		if len(r.buf) > 16*r.size && r.sc.pos == 0 {
			r.buf = make([]byte, r.size) // don't keep a large reply's buffer
		}
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			copy(r.buf, r.buf[r.r:r.w])
			r.w -= r.r
			r.r = 0
		} else {
			nb := make([]byte, 2*len(r.buf))
			copy(nb, r.buf[:r.w])
			r.buf = nb
		}
	}
}
