package proxy

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
	"github.com/tidwall/redcon"
)

// resp.FrameScanner and redcon, the proxy's parser, agree on where commands end, however the bytes are
// split into reads.
func FuzzFramerAgreesWithRedcon(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), uint8(3))
	f.Add([]byte("SET a b\r\nGET a\r\n"), uint8(1))
	f.Add([]byte("*1\r\n$0\r\n\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		if chunk == 0 {
			chunk = 1
		}
		var fr resp.FrameScanner
		ends := []int{}
		var ferr error
		for off := 0; off < len(in) && ferr == nil; off += int(chunk) {
			end := min(off+int(chunk), len(in))
			last, _, err := fr.Scan(in[off:end])
			if last >= 0 {
				ends = append(ends, off+last)
			}
			ferr = err
		}
		if ferr != nil || len(ends) == 0 {
			return
		}
		// Every prefix the scanner calls complete parses in redcon without
		// leftover bytes of a partial command.
		upto := ends[len(ends)-1]
		rd := redcon.NewReader(bytes.NewReader(in[:upto]))
		for {
			if _, err := rd.ReadCommand(); err != nil {
				if err != io.EOF && !strings.Contains(err.Error(), "Protocol error") && !strings.Contains(err.Error(), "unbalanced") {
					t.Fatalf("redcon: %v", err)
				}
				return
			}
		}
	})
}

// limitConn hands redcon the commands before a violation, and only then
// fails with Redis's error on the wire.
func TestLimitConnOrder(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	lc := &limitConn{Conn: b, f: &resp.FrameScanner{}}
	go a.Write([]byte("PING\r\n*9999999\r\n"))
	buf := make([]byte, 4096)
	n, err := lc.Read(buf)
	if err != nil || string(buf[:n]) != "PING\r\n" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	got := make(chan string, 1)
	go func() {
		a.SetReadDeadline(time.Now().Add(5 * time.Second))
		p := make([]byte, 100)
		n, _ := a.Read(p)
		got <- string(p[:n])
	}()
	if _, err := lc.Read(buf); err == nil || err.Error() != "Protocol error: invalid multibulk length" {
		t.Fatalf("second read: %v", err)
	}
	if s := <-got; s != "-ERR Protocol error: invalid multibulk length\r\n" {
		t.Fatalf("on the wire: %q", s)
	}
}
