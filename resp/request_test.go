package resp

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// readResult is what a stream of requests reads as: the commands' arguments
// and raw bytes, the protocol error after them ("" none), and the bytes of
// an incomplete command left at the end.
type readResult struct {
	args [][]string
	raw  []string
	err  string
	rest int
}

func (r readResult) String() string {
	return fmt.Sprintf("args %q err %q rest %d", r.args, r.err, r.rest)
}

func (r *readResult) add(cmd redcon.Command) {
	args := make([]string, len(cmd.Args))
	for i, a := range cmd.Args {
		args[i] = string(a)
	}
	r.args = append(r.args, args)
	r.raw = append(r.raw, string(cmd.Raw))
}

// readRequests drives a RequestReader as a server's loop does: in arrives in
// reads of sizes (cycled; none: as much as Space takes), the commands of
// each read are run before the next read, and unauth holds until a command
// "AUTH pw" runs.
func readRequests(in []byte, sizes []int, unauth bool) readResult {
	var r RequestReader
	var res readResult
	for off, k := 0, 0; off < len(in); k++ {
		p := r.Space()
		if len(sizes) > 0 {
			p = p[:min(len(p), sizes[k%len(sizes)])]
		}
		n := copy(p, in[off:])
		off += n
		r.Received(n)
		for {
			cmds, err := r.Commands(unauth)
			for _, c := range cmds {
				res.add(c)
				if len(c.Args) == 2 && strings.EqualFold(string(c.Args[0]), "auth") && string(c.Args[1]) == "pw" {
					unauth = false
				}
			}
			if err != nil {
				res.err = err.Error()
				return res
			}
			if !r.More() {
				break
			}
		}
		r.Done()
	}
	res.rest = r.end - r.start
	return res
}

func cmds(args ...[]string) [][]string { return args }

var splits = [][]int{nil, {1}, {2}, {3}, {5}, {7}, {13}, {4096}, {1, 4000, 3}}

// TestRequestReader: golden streams, each read whole and cut into reads at
// every size in splits; the result must not depend on the cut.
func TestRequestReader(t *testing.T) {
	big := strings.Repeat("b", 100<<10) // larger than the buffer
	for _, tc := range []struct {
		name, in string
		unauth   bool
		want     [][]string
		err      string
		rest     int
	}{
		{name: "pipeline", in: "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n",
			want: cmds([]string{"PING"}, []string{"GET", "k"}, []string{"SET", "k", "v1"})},
		{name: "inline", in: "PING\r\nGET k\nSET  k   v \r\n",
			want: cmds([]string{"PING"}, []string{"GET", "k"}, []string{"SET", "k", "v"})},
		{name: "inline with quotes", in: `SET k "a b" 'c d' "e\nf\t\"g\"" ''` + "\r\n",
			want: cmds([]string{"SET", "k", "a b", "c d", "e\nf\t\"g\"", ""})},
		{name: "inline and multibulk mixed", in: "ECHO a\r\n*2\r\n$4\r\nECHO\r\n$1\r\nb\r\nECHO c\r\n",
			want: cmds([]string{"ECHO", "a"}, []string{"ECHO", "b"}, []string{"ECHO", "c"})},
		{name: "blank lines and empty multibulks skipped", in: "\r\n\n  \r\n\t \r\n*0\r\n*-1\r\n*-5\r\nPING\r\n*0\r\n",
			want: cmds([]string{"PING"})},
		{name: "empty argument", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: cmds([]string{"ECHO", ""})},
		{name: "binary payload", in: "*2\r\n$4\r\nECHO\r\n$6\r\n\r\n*1\r\n\r\n", want: cmds([]string{"ECHO", "\r\n*1\r\n"})},
		{name: "bulk larger than the buffer", in: "PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$102400\r\n" + big + "\r\nPING\r\n",
			want: cmds([]string{"PING"}, []string{"SET", "k", big}, []string{"PING"})},
		{name: "incomplete command kept", in: "PING\r\n*2\r\n$3\r\nGET\r\n$1\r\n", want: cmds([]string{"PING"}), rest: 17},
		{name: "incomplete inline kept", in: "PING\r\nGET k", want: cmds([]string{"PING"}), rest: 5},

		// Over a limit or off the framing: Redis's texts, after the
		// commands before.
		{name: "multibulk count over 1M", in: "PING\r\n*1048577\r\n", want: cmds([]string{"PING"}),
			err: "Protocol error: invalid multibulk length"},
		{name: "multibulk count at 1M", in: "*1048576\r\n", rest: 10},
		{name: "two billion arguments", in: "*2000000000\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "bulk over 512 MiB", in: "*2\r\n$3\r\nGET\r\n$536870913\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk at 512 MiB", in: "*2\r\n$3\r\nGET\r\n$536870912\r\n", rest: 25},
		{name: "negative bulk", in: "*1\r\n$-1\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk not a number", in: "*1\r\n$1x\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk without digits", in: "*1\r\n$\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk with a leading zero", in: "*1\r\n$01\r\na\r\n", err: "Protocol error: invalid bulk length"},
		{name: "count with a leading zero", in: "*01\r\n$1\r\na\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "count minus zero", in: "*-0\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "count without digits", in: "*\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "count of 19 digits", in: "*0000000000000000001\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "count without LF", in: "*1\rx", err: "Protocol error: invalid multibulk length"},
		{name: "not a bulk", in: "PING\r\n*1\r\n:5\r\n", want: cmds([]string{"PING"}), err: "Protocol error: expected '$', got ':'"},
		{name: "payload longer than declared", in: "*1\r\n$3\r\nGETxx", err: "Protocol error: invalid bulk length"},
		{name: "payload without CRLF", in: "*1\r\n$1\r\nab\r\n", err: "Protocol error: invalid bulk length"},
		{name: "inline over 64 KiB", in: "PING\r\n" + strings.Repeat("a", 64<<10+1), want: cmds([]string{"PING"}),
			err: "Protocol error: too big inline request"},
		{name: "inline at 64 KiB", in: strings.Repeat("a", 64<<10) + "\n", want: cmds([]string{strings.Repeat("a", 64<<10)})},
		{name: "count line over 64 KiB", in: "*1" + strings.Repeat("x", 64<<10), err: "Protocol error: too big mbulk count string"},
		{name: "bulk line over 64 KiB", in: "*1\r\n$1" + strings.Repeat("1", 64<<10), err: "Protocol error: too big bulk count string"},
		{name: "unbalanced quotes", in: "PING\r\nSET a \"b\r\nPING\r\n", want: cmds([]string{"PING"}),
			err: "Protocol error: unbalanced quotes in request"},
		{name: "closing quote followed by a letter", in: "SET a \"b\"c\r\n", err: "Protocol error: unbalanced quotes in request"},

		// Before AUTH, Redis's lower limits, per command.
		{name: "unauthenticated count", in: "*11\r\n", unauth: true, err: "Protocol error: unauthenticated multibulk length"},
		{name: "unauthenticated bulk", in: "*1\r\n$16385\r\n", unauth: true, err: "Protocol error: unauthenticated bulk length"},
		{name: "unauthenticated at the limits", in: "*10\r\n" + strings.Repeat("$1\r\na\r\n", 9) + "$16384\r\n", unauth: true, rest: 76},
		{name: "after AUTH in the same read", in: "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*11\r\n" + strings.Repeat("$1\r\na\r\n", 11),
			unauth: true, want: cmds([]string{"AUTH", "pw"}, strings.Split(strings.Repeat("a", 11), ""))},
		{name: "after a failed AUTH", in: "*2\r\n$4\r\nAUTH\r\n$2\r\nno\r\n*11\r\n", unauth: true,
			want: cmds([]string{"AUTH", "no"}), err: "Protocol error: unauthenticated multibulk length"},
		{name: "empty commands before AUTH", in: "\r\n*0\r\n*-1\r\nAUTH pw\r\n*1\r\n$20000\r\n", unauth: true,
			want: cmds([]string{"AUTH", "pw"}), rest: 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := readResult{args: tc.want, err: tc.err, rest: tc.rest}
			for _, sizes := range splits {
				got := readRequests([]byte(tc.in), sizes, tc.unauth)
				got.raw = nil
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("reads of %v:\n got %.300s\nwant %.300s", sizes, got, want)
				}
			}
		})
	}
}

// A command's Raw is its bytes as they arrived for a multibulk, and its RESP
// form (as redcon makes it) for an inline command.
func TestRequestReaderRaw(t *testing.T) {
	in := "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET k \"a b\"\r\n"
	got := readRequests([]byte(in), nil, false)
	want := []string{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n"}
	if !reflect.DeepEqual(got.raw, want) {
		t.Fatalf("raw %q, want %q", got.raw, want)
	}
}

// The commands of a batch stay valid while the caller asks for more (before
// AUTH, one at a time), until Done.
func TestRequestReaderCommandsSurviveMore(t *testing.T) {
	var r RequestReader
	in := "*2\r\n$4\r\nECHO\r\n$1\r\na\r\n*2\r\n$4\r\nECHO\r\n$1\r\nb\r\nECHO c\r\n"
	r.Received(copy(r.Space(), in))
	var all []redcon.Command
	for {
		cmds, err := r.Commands(true)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) != 1 {
			t.Fatalf("before AUTH, %d commands at a time", len(cmds))
		}
		all = append(all, cmds...)
		if !r.More() {
			break
		}
	}
	var got []string
	for _, c := range all {
		got = append(got, string(c.Args[0])+" "+string(c.Args[1]))
	}
	if strings.Join(got, ",") != "ECHO a,ECHO b,ECHO c" {
		t.Fatalf("got %q", got)
	}
	r.Done()
}

// The buffer is dropped once a large command is done, and kept otherwise.
func TestRequestReaderBufferPolicy(t *testing.T) {
	var r RequestReader
	r.Received(copy(r.Space(), "PING\r\n"))
	r.Commands(false)
	r.Done()
	if len(r.buf) != reqBufSize {
		t.Fatalf("buffer of %d bytes after a small command, want %d", len(r.buf), reqBufSize)
	}
	in := string(AppendCommandStrings(nil, "SET", "k", strings.Repeat("v", 200<<10)))
	for off := 0; off < len(in); {
		n := copy(r.Space(), in[off:])
		off += n
		r.Received(n)
		cmds, err := r.Commands(false)
		if err != nil {
			t.Fatal(err)
		}
		if off < len(in) && len(cmds) > 0 {
			t.Fatal("a command before all of it arrived")
		}
		r.Done()
	}
	if r.buf != nil {
		t.Fatalf("a %d-byte buffer kept after the large command", len(r.buf))
	}
}

// pipeline is 32 SETs of 100 bytes and 32 GETs, alternating.
func pipeline() []byte {
	var pipe []byte
	for i := 0; i < 32; i++ {
		pipe = AppendCommandStrings(pipe, "SET", fmt.Sprintf("key:%d", i), strings.Repeat("v", 100))
		pipe = AppendCommandStrings(pipe, "GET", fmt.Sprintf("key:%d", i))
	}
	return pipe
}

// In steady state reading a pipeline allocates nothing, also when a command
// is cut between two reads.
func TestRequestReaderAllocs(t *testing.T) {
	pipe := pipeline()
	var r RequestReader
	cut := len(pipe)/2 + 3
	read := func() {
		for _, part := range [][]byte{pipe[:cut], pipe[cut:]} {
			r.Received(copy(r.Space(), part))
			cmds, err := r.Commands(false)
			if err != nil || len(cmds) == 0 {
				t.Fatalf("%d commands, %v", len(cmds), err)
			}
			r.Done()
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Fatalf("%.1f allocations per pipeline", n)
	}
}

func BenchmarkRequestReader(b *testing.B) {
	pipe := pipeline()
	var r RequestReader
	b.SetBytes(int64(len(pipe)))
	b.ReportAllocs()
	for b.Loop() {
		r.Received(copy(r.Space(), pipe))
		if cmds, err := r.Commands(false); len(cmds) != 64 || err != nil {
			b.Fatal(len(cmds), err)
		}
		r.Done()
	}
}

// redconRead is the reference FuzzRequestReader compares with: in read by
// redcon, redcon.ReadNextCommand for a multibulk and redcon.Parse for an
// inline line, with the two rules where Redis (and so the RequestReader)
// differs from redcon: a negative count is an empty multibulk, skipped, and
// a line of spaces and tabs is blank, skipped (redcon returns the tabs as an
// argument). A panic of ReadNextCommand (it slices a negative bulk length)
// reads as the error Redis gives for that length.
func redconRead(in []byte) readResult {
	var res readResult
	b := in
	for len(b) > 0 {
		if b[0] != '*' {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break
			}
			line := b[:i+1]
			if len(bytes.Trim(line, " \t\r\n")) == 0 {
				b = b[i+1:]
				continue
			}
			cmd, err := redcon.Parse(line)
			if err != nil {
				res.err = err.Error()
				return res
			}
			res.add(cmd)
			b = b[i+1:]
			continue
		}
		if n := negativeCount(b); n > 0 {
			b = b[n:]
			continue
		}
		complete, args, rest, err := readNextCommand(b)
		if err != nil {
			res.err = err.Error()
			return res
		}
		if !complete {
			break
		}
		raw := b[:len(b)-len(rest)]
		b = rest
		if len(args) > 0 {
			res.add(redcon.Command{Raw: raw, Args: args})
		}
	}
	res.rest = len(b)
	return res
}

// negativeCount returns the length of a "*-N\r\n" header at the start of b,
// or 0.
func negativeCount(b []byte) int {
	if len(b) < 5 || b[1] != '-' {
		return 0
	}
	i := 2
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 2 || i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' {
		return 0
	}
	return i + 2
}

func readNextCommand(b []byte) (complete bool, args [][]byte, rest []byte, err error) {
	defer func() {
		if recover() != nil {
			complete, args, rest, err = false, nil, nil, errors.New("Protocol error: invalid bulk length")
		}
	}()
	complete, args, _, rest, err = redcon.ReadNextCommand(b, nil)
	return complete, args, rest, err
}

// beyondRedcon reports whether in holds what the RequestReader refuses, as
// Redis does, and redcon accepts: a count over MaxElements or a length over
// MaxBulkLen, a number without digits, with a leading zero, "-0", more than
// 18 digits, or a line over the inline limit. FuzzRequestReader compares
// only other inputs with redcon; the table above pins these.
func beyondRedcon(in []byte) bool {
	if len(in) > MaxInlineLen {
		return true
	}
	for i, c := range in {
		if c != '*' && c != '$' {
			continue
		}
		n := int64(0)
		for j := i + 1; j < len(in) && j < i+12 && in[j] >= '0' && in[j] <= '9'; j++ {
			n = n*10 + int64(in[j]-'0')
		}
		if c == '*' && n > MaxElements || c == '$' && n > MaxBulkLen {
			return true
		}
	}
	for _, p := range []string{"*\r", "$\r", "*-\r", "$-\r", "*-0", "$-0"} {
		if bytes.Contains(in, []byte(p)) {
			return true
		}
	}
	digits := 0
	for i, c := range in {
		if c < '0' || c > '9' {
			digits = 0
			continue
		}
		digits++
		if digits >= 19 {
			return true
		}
		if c == '0' && i > 0 && (in[i-1] == '*' || in[i-1] == '$') && i+1 < len(in) && in[i+1] >= '0' && in[i+1] <= '9' {
			return true
		}
	}
	return false
}

// isUnauthError reports whether msg is one of the before-AUTH limits.
func isUnauthError(msg string) bool {
	return msg == errUnauthMultibulk.Msg || msg == errUnauthBulkLength.Msg
}

// FuzzRequestReader: the RequestReader reads any stream as redcon does
// (redconRead), however the stream is cut into reads: the same commands,
// byte for byte, then the same protocol error or the same incomplete rest.
// Where one has an error and the other is still waiting at the end of the
// input, the commands before must agree: the scanner judges framing byte by
// byte as it arrives, redcon once a whole command is there, and a malformed
// number only when its line ends, as Redis does. Before AUTH the reader
// returns a prefix of the same commands, and an error of its own only for a
// command over the before-AUTH limits.
func FuzzRequestReader(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), []byte{3}, false)
	f.Add([]byte("SET a \"b c\"\r\nGET a\r\n\r\n \t\r\n*0\r\n*-1\r\n"), []byte{1, 5}, false)
	f.Add([]byte("*1\r\n$0\r\n\r\n*1\r\n$3\r\nab"), []byte{2}, false)
	f.Add([]byte("*1\r\n$-2\r\n"), []byte{}, false)
	f.Add([]byte("AUTH pw\r\n*11\r\n$1\r\na\r\n"), []byte{4}, true)
	f.Add([]byte("PING\r\n*1\r\n:5\r\nSET a \"b\r\n"), []byte{7, 1}, false)
	f.Fuzz(func(t *testing.T, in, cuts []byte, unauth bool) {
		var sizes []int
		for _, c := range cuts {
			sizes = append(sizes, int(c)+1)
		}
		got := readRequests(in, sizes, false)
		whole := readRequests(in, nil, false)
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("reads of %v:\n%s\nwhole:\n%s", sizes, got, whole)
		}
		if unauth {
			before := readRequests(in, sizes, true)
			n := len(before.args)
			if n > len(got.args) || !reflect.DeepEqual(before.args, got.args[:n]) {
				t.Fatalf("before AUTH:\n%s\nafter:\n%s", before, got)
			}
			if !reflect.DeepEqual(before, got) && !isUnauthError(before.err) {
				t.Fatalf("before AUTH, without a before-AUTH error:\n%s\nafter:\n%s", before, got)
			}
		}
		if beyondRedcon(in) {
			return
		}
		want := redconRead(in)
		n := min(len(got.args), len(want.args))
		if !reflect.DeepEqual(got.args[:n], want.args[:n]) || !reflect.DeepEqual(got.raw[:n], want.raw[:n]) {
			t.Fatalf("commands differ:\n got %s\nwant %s", got, want)
		}
		switch {
		case got.err != "" && want.err != "":
			if len(got.args) != len(want.args) || got.err != printableErr(want.err) {
				t.Fatalf("errors differ:\n got %s\nwant %s", got, want)
			}
		case got.err == "" && want.err == "":
			if len(got.args) != len(want.args) || got.rest != want.rest {
				t.Fatalf("differ:\n got %s\nwant %s", got, want)
			}
		case got.err != "":
			// redcon waits for the rest of a command the scanner already
			// refused.
			if len(got.args) != len(want.args) || want.rest == 0 {
				t.Fatalf("error only here:\n got %s\nwant %s", got, want)
			}
		default:
			// The reader waits for a number's line to end, redcon refused
			// it at a bare LF.
			if len(got.args) != len(want.args) || got.rest == 0 {
				t.Fatalf("error only in redcon:\n got %s\nwant %s", got, want)
			}
		}
	})
}

// printableErr is redcon's "expected '$', got 'c'" (the byte written as the
// rune of its value) with the byte shown as the scanner shows one outside
// printable ASCII.
func printableErr(msg string) string {
	const p = "Protocol error: expected '$', got '"
	if got, ok := strings.CutPrefix(msg, p); ok {
		if r := []rune(strings.TrimSuffix(got, "'")); len(r) == 1 && r[0] < 256 {
			return p + printable(byte(r[0])) + "'"
		}
	}
	return msg
}
