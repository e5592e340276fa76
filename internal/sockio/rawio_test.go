package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// WriteAll writes what the socket takes and stops at EAGAIN with the count
// written, for the caller to wait its own way.
func TestWriteAllStopsWhenFull(t *testing.T) {
	a, b := tcpPair(t)
	rc, err := a.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte("x"), 64<<20) // more than any socket buffer
	var n int
	var errno syscall.Errno
	rc.Control(func(fd uintptr) { n, errno = WriteAll(fd, p) })
	if errno != syscall.EAGAIN || n <= 0 || n >= len(p) {
		t.Fatalf("WriteAll on a full socket: %d bytes, %v", n, errno)
	}
	b.Close()
	time.Sleep(10 * time.Millisecond)
	rc.Control(func(fd uintptr) { _, errno = WriteAll(fd, p[n:]) })
	if errno == 0 || errno == syscall.EAGAIN {
		t.Fatalf("WriteAll after the peer closed: %v", errno)
	}
}

// writerOf returns a Writer on nc's descriptor.
func writerOf(t *testing.T, nc net.Conn) *Writer {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var w Writer
	w.Init(rc)
	return &w
}

// A Writer writes everything, waiting while the socket is full, and gives
// up at the write deadline with the count written.
func TestWriter(t *testing.T) {
	a, b := tcpPair(t)
	w := writerOf(t, a)
	p := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(b, int64(len(p))))
		got <- b
	}()
	if n, err := w.Write(p); n != len(p) || err != nil {
		t.Fatalf("Write: %d of %d bytes, %v", n, len(p), err)
	}
	if !bytes.Equal(<-got, p) {
		t.Fatal("the peer read other bytes")
	}
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := w.Write(p) // nobody reads
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(p) {
		t.Fatalf("Write without a reader: %d bytes, %v", n, err)
	}
}

// A Writer's Write allocates nothing.
func TestWriterAllocs(t *testing.T) {
	a, b := tcpPair(t)
	w := writerOf(t, a)
	go io.Copy(io.Discard, b)
	p := bytes.Repeat([]byte("x"), 100)
	if n := testing.AllocsPerRun(100, func() { w.Write(p) }); n != 0 {
		t.Fatalf("%.1f allocations per Write", n)
	}
}
