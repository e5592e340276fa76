package resp

import (
	"strings"
	"testing"
)

// TestFrameScanner feeds request streams to the scanner whole and one byte
// at a time: the verdict must not depend on how the bytes arrive.
func TestFrameScanner(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		err      string // "" accepted
		cmds     int    // complete commands seen
	}{
		{"resp", "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "", 2},
		{"inline", "PING\r\nGET k\n", "", 2},
		{"empty lines", "\r\n\r\nPING\r\n", "", 3},
		{"empty multibulk", "*0\r\n*-1\r\n", "", 2},
		{"binary payload", "*1\r\n$4\r\n\r\n\r\n\r\n", "", 1},
		{"max bulk", "*1\r\n$536870912\r\n", "", 0},
		{"bulk too long", "*1\r\n$536870913\r\n", "Protocol error: invalid bulk length", 0},
		{"600 MB bulk", "*1\r\n$600000000\r\n", "Protocol error: invalid bulk length", 0},
		{"negative bulk", "*1\r\n$-1\r\n", "Protocol error: invalid bulk length", 0},
		{"bulk not a number", "*1\r\n$12a\r\n", "Protocol error: invalid bulk length", 0},
		{"bulk empty length", "*1\r\n$\r\n", "Protocol error: invalid bulk length", 0},
		{"bulk huge digits", "*1\r\n$99999999999999999999999\r\n", "Protocol error: invalid bulk length", 0},
		{"max multibulk", "*1048576\r\n", "", 0},
		{"multibulk too long", "*1048577\r\n", "Protocol error: invalid multibulk length", 0},
		{"two billion args", "*2000000000\r\n", "Protocol error: invalid multibulk length", 0},
		{"multibulk not a number", "*x\r\n", "Protocol error: invalid multibulk length", 0},
		{"expected dollar", "*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'", 0},
		{"inline at limit", strings.Repeat("a", 64<<10) + "\n", "", 1},
		{"inline too long", strings.Repeat("a", 64<<10+1), "Protocol error: too big inline request", 0},
		{"payload without CRLF", "*1\r\n$2\r\nabc\r\n", "Protocol error: invalid bulk length", 0},
		{"count without LF", "*1\rx", "Protocol error: invalid multibulk length", 0},
		{"empty payload", "*2\r\n$3\r\nGET\r\n$0\r\n\r\n", "", 1},
		{"commands before a bad one", "PING\r\n*1\r\n$-5\r\n", "Protocol error: invalid bulk length", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{len(tc.in), 1, 7} {
				var s frameScanner
				cmds := 0
				var err error
				for i := 0; i < len(tc.in) && err == nil; i += chunk {
					end := min(i+chunk, len(tc.in))
					b := []byte(tc.in[i:end])
					var last int
					last, err = s.Scan(b)
					if last >= 0 {
						// Count complete commands up to last in this chunk.
						cmds += countComplete(tc.in[:i+last])
						cmds -= countComplete(tc.in[:i])
					}
				}
				got := ""
				if err != nil {
					got = err.Error()
				}
				if got != tc.err {
					t.Errorf("chunk %d: error %q, want %q", chunk, got, tc.err)
				}
				if tc.err == "" && cmds != tc.cmds && chunk == len(tc.in) {
					t.Errorf("chunk %d: %d commands, want %d", chunk, cmds, tc.cmds)
				}
			}
		})
	}
}

// countComplete counts the commands a fresh scanner completes in s.
func countComplete(s string) int {
	var sc frameScanner
	n := 0
	for i := 0; i < len(s); i++ {
		last, err := sc.Scan([]byte{s[i]})
		if err != nil {
			return n
		}
		if last >= 0 {
			n++
		}
	}
	return n
}

// FuzzFrameScanner: the scanner never panics, and its verdict and the
// commands it completes do not depend on how the bytes are split into reads.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), 3)
	f.Add([]byte("PING\r\nSET a b\r\n"), 1)
	f.Add([]byte("*1\r\n$600000000\r\n"), 2)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk <= 0 || chunk > len(in) {
			chunk = len(in)
		}
		run := func(chunk int) (lastEnd int, s frameScanner, err error) {
			lastEnd = -1
			for i := 0; i < len(in); i += chunk {
				last, err := s.Scan(in[i:min(i+chunk, len(in))])
				if last >= 0 {
					lastEnd = i + last
				}
				if err != nil {
					return lastEnd, s, err
				}
			}
			return lastEnd, s, nil
		}
		endWhole, stWhole, errWhole := run(len(in))
		endParts, stParts, errParts := run(chunk)
		if (errWhole == nil) != (errParts == nil) || errWhole != nil && errWhole.Error() != errParts.Error() {
			t.Fatalf("whole: %v, in chunks of %d: %v", errWhole, chunk, errParts)
		}
		if errWhole == nil && (endWhole != endParts || stWhole.state != stParts.state ||
			stWhole.args != stParts.args || stWhole.skip != stParts.skip) {
			t.Fatalf("whole: end %d state %+v; chunks of %d: end %d state %+v",
				endWhole, stWhole, chunk, endParts, stParts)
		}
	})
}

// Before AUTH, Redis allows only small requests; the scanner asks Unauth.
func TestFrameScannerUnauthenticated(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"count over 10", "*11\r\n", "Protocol error: unauthenticated multibulk length"},
		{"bulk over 16384", "*1\r\n$16385\r\n", "Protocol error: unauthenticated bulk length"},
		{"AUTH fits", "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", ""},
	} {
		s := frameScanner{Unauth: true}
		_, err := s.Scan([]byte(tc.in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.err)
		}
	}
}
