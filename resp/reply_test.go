package resp

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

var replyCases = []struct {
	in   string
	n    int // expected length of the first reply; 0 = incomplete; -1 = error
	desc string
}{
	{"+OK\r\n", 5, "simple"},
	{"-ERR x\r\n", 8, "error"},
	{":12\r\n", 5, "int"},
	{"$3\r\nabc\r\n", 9, "bulk"},
	{"$-1\r\n", 5, "null bulk"},
	{"*-1\r\n", 5, "null array"},
	{"_\r\n", 3, "null"},
	{",1.5\r\n", 6, "double"},
	{"#t\r\n", 4, "bool"},
	{"(123\r\n", 6, "big"},
	{"=7\r\ntxt:abc\r\n", 13, "verbatim"},
	{"!3\r\nERR\r\n", 9, "blob error"},
	{"*2\r\n$1\r\na\r\n:1\r\n", 15, "array"},
	{"%1\r\n+k\r\n:1\r\n", 12, "map"},
	{"~2\r\n:1\r\n:2\r\n", 12, "set"},
	{"|1\r\n+a\r\n+b\r\n:5\r\n", 16, "attribute then reply"},
	{"*2\r\n*1\r\n:1\r\n*0\r\n", 16, "nested"},
	{"*0\r\n+extra\r\n", 4, "empty array then next"},
	{"$3\r\nab", 0, "short bulk"},
	{"*2\r\n:1\r\n", 0, "short array"},
	{"+OK", 0, "no CRLF yet"},
	{"$3\r\nabcd\r\n", -1, "bulk without CRLF"},
	{"?x\r\n", -1, "unknown type"},
	{"$-2\r\n", -1, "bad bulk length"},
	{"*x\r\n", -1, "bad count"},
	{"+OK\n", -1, "LF only"},
}

func TestReplyLen(t *testing.T) {
	for _, c := range replyCases {
		n, err := ReplyLen([]byte(c.in))
		switch {
		case c.n < 0 && err == nil:
			t.Errorf("%s: no error, n=%d", c.desc, n)
		case c.n >= 0 && err != nil:
			t.Errorf("%s: %v", c.desc, err)
		case c.n >= 0 && n != c.n:
			t.Errorf("%s: n=%d, want %d", c.desc, n, c.n)
		}
	}
}

// Scanning byte by byte (resuming) finds the same ends as scanning at once.
func TestScannerResumes(t *testing.T) {
	for _, c := range replyCases {
		if c.n <= 0 {
			continue
		}
		var s Scanner
		got := 0
		for i := 1; i <= len(c.in); i++ {
			n, err := s.Scan([]byte(c.in[:i]))
			if err != nil {
				t.Fatalf("%s: %v", c.desc, err)
			}
			if n > 0 {
				got = n
				break
			}
		}
		if got != c.n {
			t.Errorf("%s: resumed n=%d, want %d", c.desc, got, c.n)
		}
	}
}

func TestParse(t *testing.T) {
	v, n, err := Parse([]byte("*3\r\n$1\r\na\r\n:7\r\n%1\r\n+k\r\n_\r\nrest"))
	if err != nil || n != 26 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if len(v.Elems) != 3 || string(v.Elems[0].Str) != "a" || v.Elems[1].Int != 7 {
		t.Fatalf("%+v", v)
	}
	m := v.Elems[2]
	if m.Type != '%' || len(m.Elems) != 2 || !m.Elems[1].Null {
		t.Fatalf("map %+v", m)
	}
	v, _, _ = Parse([]byte("=8\r\ntxt:info\r\n"))
	if string(v.Str) != "info" {
		t.Fatalf("verbatim %q", v.Str)
	}
}

func TestElements(t *testing.T) {
	els, err := Elements(nil, []byte("*3\r\n$1\r\na\r\n$-1\r\n_\r\n"))
	if err != nil || len(els) != 3 || string(els[1]) != "$-1\r\n" || string(els[2]) != "_\r\n" {
		t.Fatalf("%q %v", els, err)
	}
}

func TestReplyReader(t *testing.T) {
	var stream bytes.Buffer
	big := bytes.Repeat([]byte("x"), 200000)
	stream.WriteString("+OK\r\n")
	stream.Write(AppendBulk(nil, big))
	stream.WriteString("*2\r\n:1\r\n:2\r\n")
	r := NewReplyReader(iotest.OneByteReader(&stream), 512)
	want := []string{"+OK\r\n", string(AppendBulk(nil, big)), "*2\r\n:1\r\n:2\r\n"}
	for _, w := range want {
		got, err := r.Next()
		if err != nil || string(got) != w {
			t.Fatalf("got %d bytes err=%v, want %d", len(got), err, len(w))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func FuzzReply(f *testing.F) {
	for _, c := range replyCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ReplyLen(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("n=%d > len %d", n, len(b))
		}
		v, m, err := Parse(b)
		if err != nil || m != n {
			t.Fatalf("Parse disagrees: m=%d n=%d err=%v", m, n, err)
		}
		_ = v
		// Byte-at-a-time scanning agrees.
		var s Scanner
		for i := 1; i <= n; i++ {
			k, err := s.Scan(b[:i])
			if err != nil {
				t.Fatalf("resume error at %d: %v", i, err)
			}
			if k > 0 {
				if k != n {
					t.Fatalf("resume n=%d, want %d", k, n)
				}
				return
			}
		}
		t.Fatalf("resumed scan never completed")
	})
}

func BenchmarkReplyLen(b *testing.B) {
	reply := AppendBulk(nil, bytes.Repeat([]byte("v"), 100))
	arr := AppendArray(nil, 16)
	for i := 0; i < 16; i++ {
		arr = append(arr, reply...)
	}
	b.Run("bulk", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if n, _ := ReplyLen(reply); n != len(reply) {
				b.Fatal(n)
			}
		}
	})
	b.Run("array16", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if n, _ := ReplyLen(arr); n != len(arr) {
				b.Fatal(n)
			}
		}
	})
}
