package resp

import (
	"bytes"
	"strings"

	"github.com/tidwall/redcon"
)

// Request buffer sizes.
const (
	reqBufSize    = 16 << 10 // a connection's buffer, as Redis's PROTO_IOBUF_LEN
	reqBufMinRead = 4 << 10  // room a read gets at least; the buffer grows for larger commands
	reqBufKeep    = 64 << 10 // a buffer larger than this is dropped once it is empty
)

// RequestReader is one client connection's request stream: the buffer its
// reads go into, the frame scanner that checks every byte against Redis's
// framing and limits as it arrives, and the commands sliced out of the
// checked bytes.
//
// Why not redcon's Reader: it copies every command it returns (Raw, and a
// new Args slice), which profiles showed were nearly all of the node's
// allocations, and it reads again after every pipeline, so each request
// costs a read that comes back empty (EAGAIN) on top of the one that brought
// it. A RequestReader does no I/O (the caller reads into Space, with the
// system call it prefers) and returns redcon.Command values whose Raw and
// Args alias its buffer: no copy and, once its slices have grown to the
// pipeline's size, no allocation per command. Multibulk commands are sliced
// in place; inline commands (redis-cli's "SET k \"a b\"") are parsed by
// redcon.Parse, quotes and escapes as redcon has them, which copies, fine
// for that rare form. As Redis does, an empty multibulk (*0, *-1) and a
// blank inline line are skipped.
//
// A connection's loop: read into Space, Received(n), then Commands and run
// what it returns while More, then Done before the next Space. The commands
// stay valid until Done.
type RequestReader struct {
	// buf[start:end] were read and not yet returned; buf[start:valid] are
	// complete commands the scanner accepted; buf[scanned:end] were not
	// scanned yet. start <= valid <= scanned <= end.
	buf     []byte
	start   int
	valid   int
	scanned int
	end     int
	sc      frameScanner
	// err is the protocol error after the commands returned so far: the
	// scanner's, or redcon.Parse's for an inline line. It is sticky.
	err error
	// cmds and argv hold the commands returned since Done; their backing
	// arrays are reused from pipeline to pipeline.
	cmds []redcon.Command
	argv [][]byte
}

// Space returns the free tail of the buffer for the next read, at least
// 4 KiB. The buffer grows by doubling as bytes arrive when a command does
// not fit, never by what a header declares.
func (r *RequestReader) Space() []byte {
	if r.buf == nil {
		r.buf = make([]byte, reqBufSize)
	}
	if len(r.buf)-r.end < reqBufMinRead {
		r.compact()
		if len(r.buf)-r.end < reqBufMinRead {
			nb := make([]byte, 2*len(r.buf))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
	}
	return r.buf[r.end:]
}

// Received accounts for n bytes read into the start of Space.
func (r *RequestReader) Received(n int) { r.end += n }

// Commands returns the complete commands received and not returned yet, and
// the protocol error that follows them (a *ProtocolError with Redis's text),
// if any; once there is an error no more commands come.
//
// unauth applies Redis's limits before AUTH (MaxUnauthCount,
// MaxUnauthBulk). Redis checks them per command, as it parses each one, so
// a command that follows AUTH in the same read is held to them only if the
// AUTH failed. Commands therefore returns one command at a time while
// unauth: the caller runs it, and calls Commands again if More, with unauth
// as that command left it.
func (r *RequestReader) Commands(unauth bool) ([]redcon.Command, error) {
	first := len(r.cmds)
	for {
		r.scan(unauth)
		r.parse()
		// Before AUTH a scan stops after one command, which may have been
		// an empty one: go on to the next.
		if len(r.cmds) > first || r.err != nil || r.scanned == r.end {
			return r.cmds[first:], r.err
		}
	}
}

// More reports whether bytes are left that Commands has not looked at yet:
// before AUTH it stops after each command.
func (r *RequestReader) More() bool { return r.err == nil && r.scanned < r.end }

// Done forgets the commands returned since the last Done: the buffer is
// emptied, or the partial command at its end moved to the front when little
// room is left. A large buffer is dropped once empty so idle connections do
// not keep it.
func (r *RequestReader) Done() {
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
	if len(r.buf)-r.end < reqBufMinRead {
		r.compact()
	}
}

// compact moves buf[start:end] to the front.
func (r *RequestReader) compact() {
	if r.start == 0 {
		return
	}
	n := copy(r.buf, r.buf[r.start:r.end])
	r.valid -= r.start
	r.scanned -= r.start
	r.end = n
	r.start = 0
}

// scan feeds the bytes received since the last scan to the frame scanner.
// Before authentication it stops after the first complete command.
func (r *RequestReader) scan(unauth bool) {
	if r.err != nil || r.scanned == r.end {
		return
	}
	r.sc.Unauth, r.sc.StopAtEnd = unauth, unauth
	last, err := r.sc.Scan(r.buf[r.scanned:r.end])
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
// marks them returned. The scanner validated the framing, so parse trusts
// it. An inline line's error (unbalanced quotes) ends the stream after the
// commands before it.
func (r *RequestReader) parse() {
	b := r.buf
	p := r.start
	for p < r.valid {
		begin := p
		if b[p] != '*' {
			nl := p + bytes.IndexByte(b[p:r.valid], '\n')
			line := b[p : nl+1]
			p = nl + 1
			if isBlank(line) {
				continue
			}
			cmd, err := redcon.Parse(line)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "Protocol error: ") {
					// Not a protocol error: a line of nothing but
					// separators, which isBlank already skips.
					continue
				}
				r.err = &ProtocolError{err.Error()}
				p = begin
				r.valid, r.scanned = begin, r.end
				break
			}
			r.cmds = append(r.cmds, cmd)
			continue
		}
		n, q := headerNum(b, p+1)
		p = q
		if n <= 0 {
			continue
		}
		first := len(r.argv)
		for ; n > 0; n-- {
			l, q := headerNum(b, p+1) // after the '$'
			r.argv = append(r.argv, b[q:q+l:q+l])
			p = q + l + 2
		}
		r.cmds = append(r.cmds, redcon.Command{Raw: b[begin:p:p], Args: r.argv[first:len(r.argv):len(r.argv)]})
	}
	r.start = p
}

// headerNum parses the number of a validated header line starting at i and
// returns it, or -1 for a negative one (only a count, which means an empty
// multibulk), and the index after its CRLF.
func headerNum(b []byte, i int) (int, int) {
	if b[i] == '-' {
		return -1, i + bytes.IndexByte(b[i:], '\r') + 2
	}
	n := 0
	for ; b[i] != '\r'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	return n, i + 2
}

// isBlank reports whether an inline line holds nothing but spaces, tabs and
// line ends; Redis skips such a line.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
