package sockio

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestWatchHup: the callback fires when the peer closes its side, also when
// the FIN arrives together with data, and not for data alone.
func TestWatchHup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("WatchHup needs epoll")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for round := 0; round < 20; round++ {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fired := make(chan struct{}, 2)
		rc, err := sc.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var key uint32
		var ok bool
		rc.Control(func(fd uintptr) { key, ok = WatchHup(fd, func() { fired <- struct{}{} }) })
		if !ok || key == 0 {
			t.Fatalf("WatchHup refused a TCP socket (key %d)", key)
		}
		cc.Write([]byte("PING\r\n"))
		select {
		case <-fired:
			t.Fatalf("round %d: fired for data", round)
		case <-time.After(20 * time.Millisecond):
		}
		cc.Write([]byte("last\r\n"))
		cc.(*net.TCPConn).CloseWrite()
		select {
		case <-fired:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no callback after the peer's FIN", round)
		}
		UnwatchHup(key)
		cc.Close()
		sc.Close()
	}
}
