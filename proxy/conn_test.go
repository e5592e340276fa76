package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/resp"
)

// plainListener hides the accepted connections' file descriptors, so the
// proxy serves them with plain reads (conn.go's fallback).
type plainListener struct{ net.Listener }

type plainConn struct{ net.Conn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// frontEnds returns the address of the cluster's proxy, which reads with
// RawConn, and of a second proxy on the same nodes that reads through
// plain net.Conn reads.
func frontEnds(t *testing.T) map[string]string {
	c := startCluster(t, clusterOpts{nodes: 2})
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Map = c.m
	cfg.Logger = hclog.NewNullLogger()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(plainListener{ln}); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, sh := range srv.table.Load().shards {
		for !sh.resp2.Up() || !sh.resp3.Up() {
			if time.Now().After(deadline) {
				t.Fatal("second proxy never reached the nodes")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return map[string]string{"rawconn": c.addr, "plain": ln.Addr().String()}
}

// The request stream however it is cut into writes: byte by byte, commands
// larger than the read buffer, inline commands with quotes, blank lines and
// empty multibulks (ignored, as Redis does), a transaction whose commands
// arrive in separate writes.
func TestFrontEndFraming(t *testing.T) {
	for name, addr := range frontEnds(t) {
		t.Run(name, func(t *testing.T) {
			raw := dialRaw(t, addr)
			// Byte by byte.
			in := string(resp.AppendCommandStrings(nil, "SET", "fe:"+name+":a", "hello")) + "GET fe:" + name + ":a\r\n"
			for i := 0; i < len(in); i++ {
				if _, err := raw.nc.Write([]byte{in[i]}); err != nil {
					t.Fatal(err)
				}
				if i%7 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if got := raw.read(); got != "+OK\r\n" {
				t.Fatalf("SET byte by byte: %q", got)
			}
			if got := raw.read(); got != "$5\r\nhello\r\n" {
				t.Fatalf("inline GET byte by byte: %q", got)
			}
			// Larger than the 16 KiB read buffer, several times over,
			// pipelined with a small command on each side.
			big := strings.Repeat("x", 5*16<<10+123)
			var b []byte
			b = resp.AppendCommandStrings(b, "PING")
			b = resp.AppendCommandStrings(b, "SET", "fe:"+name+":big", big)
			b = resp.AppendCommandStrings(b, "GET", "fe:"+name+":big")
			b = resp.AppendCommandStrings(b, "ECHO", "after")
			if _, err := raw.nc.Write(b); err != nil {
				t.Fatal(err)
			}
			for i, want := range []string{"+PONG\r\n", "+OK\r\n", string(resp.AppendBulkString(nil, big)), "$5\r\nafter\r\n"} {
				if got := raw.read(); got != want {
					t.Fatalf("big pipeline reply %d: %.60q (len %d)", i, got, len(got))
				}
			}
			// Inline forms, blank lines and empty multibulks.
			raw.nc.Write([]byte("\r\n  \r\n*0\r\n*-1\r\nSET fe:" + name + ":q \"two words\\n\"\r\nGET fe:" + name + ":q\r\n"))
			if got := raw.read(); got != "+OK\r\n" {
				t.Fatalf("inline SET with quotes: %q", got)
			}
			if got := raw.read(); got != "$10\r\ntwo words\n\r\n" {
				t.Fatalf("inline GET: %q", got)
			}
			// A transaction whose commands come one write at a time: the
			// queued commands outlive the read buffer they were read into.
			key := "fe:" + name + ":tx"
			steps := [][]string{{"MULTI"}, {"SET", key, "1"}, {"INCR", key}, {"GET", key}, {"EXEC"}}
			want := []string{"+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n"}
			for i, s := range steps {
				if got := raw.do(s...); got != want[i] {
					t.Fatalf("%v: %q, want %q", s, got, want[i])
				}
			}
		})
	}
}

// Protocol errors are answered after the commands before them, then the
// connection closes; a client that only half-closes still gets its replies.
func TestFrontEndErrorsAndClose(t *testing.T) {
	for name, addr := range frontEnds(t) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct{ send, want string }{
				{"PING\r\nSET a \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
				{"PING\r\n*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
			} {
				raw := dialRaw(t, addr)
				raw.nc.Write([]byte(tc.send))
				if got := raw.read(); got != "+PONG\r\n" {
					t.Fatalf("%q: before the error: %q", tc.send, got)
				}
				if got := raw.read(); got != tc.want {
					t.Fatalf("%q: got %q, want %q", tc.send, got, tc.want)
				}
				if _, err := bufio.NewReader(raw.nc).ReadByte(); err != io.EOF {
					t.Fatalf("%q: connection still open: %v", tc.send, err)
				}
			}
			// Repeated so the FIN arrives with the bytes on most rounds: it
			// raises no readiness edge of its own.
			for i := 0; i < 20; i++ {
				raw := dialRaw(t, addr)
				raw.nc.Write([]byte("PING\r\n" + string(resp.AppendCommandStrings(nil, "ECHO", "bye"))))
				raw.nc.(*net.TCPConn).CloseWrite()
				if got := raw.read(); got != "+PONG\r\n" {
					t.Fatalf("round %d after half-close: %q", i, got)
				}
				if got := raw.read(); got != "$3\r\nbye\r\n" {
					t.Fatalf("round %d after half-close: %q", i, got)
				}
				if _, err := raw.rr.Next(); err != io.EOF {
					t.Fatalf("round %d after half-close, want EOF: %v", i, err)
				}
			}
		})
	}
}

// A large command pipelined right behind AUTH is read after AUTH ran, as
// Redis reads it, so the before-AUTH limits do not apply to it; behind an
// AUTH that failed they do, after AUTH's own reply.
func TestAuthPipelinedWithLargeCommand(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, requirePass: "secret"})
	big := []string{"MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6"}
	raw := dialRaw(t, c.addr)
	var in []byte
	in = resp.AppendCommandStrings(in, "AUTH", "secret")
	in = resp.AppendCommandStrings(in, big...)
	in = resp.AppendCommandStrings(in, "SET", "v", strings.Repeat("x", 20000))
	in = resp.AppendCommandStrings(in, "GET", "a")
	raw.nc.Write(in)
	for i, want := range []string{"+OK\r\n", "+OK\r\n", "+OK\r\n", "$1\r\n1\r\n"} {
		if got := raw.read(); got != want {
			t.Fatalf("pipelined after AUTH, reply %d: %q, want %q", i, got, want)
		}
	}
	raw = dialRaw(t, c.addr)
	in = resp.AppendCommandStrings(nil, "AUTH", "wrong")
	in = resp.AppendCommandStrings(in, big...)
	raw.nc.Write(in)
	for i, want := range []string{
		"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
		"-ERR Protocol error: unauthenticated multibulk length\r\n",
	} {
		if got := raw.read(); got != want {
			t.Fatalf("pipelined after a failed AUTH, reply %d: %q, want %q", i, got, want)
		}
	}
	if _, err := bufio.NewReader(raw.nc).ReadByte(); err != io.EOF {
		t.Fatalf("connection still open after the protocol error: %v", err)
	}
}
