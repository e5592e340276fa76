package sockio

import (
	"syscall"
	"unsafe"
)

// RawRead and RawWrite are read(2) and write(2) on a non-blocking socket,
// made without telling the scheduler (RawSyscall): they never wait (a write
// to a local socket does take the few µs of the receiver's TCP work), so the
// goroutine keeps its P. syscall.Read and Write enter and leave the
// scheduler's syscall state around each call, and the first one after the
// process was idle wakes the runtime's monitor thread (sysmon) from its deep
// sleep to poll every 20µs for the next millisecond or more. Under
// request-reply load a server idles between requests all the time, and perf
// showed that thread's sleeps and wake-ups at 10-18% of the proxy's CPU
// (under 0.1% with raw calls). Both servers' connection loops and the
// backend client use them, always on a descriptor obtained through
// syscall.RawConn. The race detector does not see these calls' buffer
// accesses; callers own their buffers.
func RawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// RawWrite is write(2) without the scheduler's syscall bookkeeping; see RawRead.
func RawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// WriteAll writes p to the non-blocking socket fd with RawWrite until all of
// it is out, the socket is full or the write fails, retrying a write that a
// signal interrupted (EINTR). It returns the bytes written and 0, EAGAIN
// (the socket takes no more now: the caller waits for it to drain in its own
// way) or the failure. Every raw write loop of the servers is this loop;
// what they do after EAGAIN differs and stays theirs.
func WriteAll(fd uintptr, p []byte) (int, syscall.Errno) {
	done := 0
	for done < len(p) {
		n, errno := RawWrite(fd, p[done:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return done, errno
		case n <= 0:
			// write(2) on a socket takes a byte or fails; a zero is
			// reported as a failure rather than retried for ever.
			return done, syscall.EIO
		}
		done += n
	}
	return done, 0
}

// Writer writes through a connection's syscall.RawConn with WriteAll, and
// while the socket is full waits for it to drain in the runtime's poller
// (RawConn.Write honours the connection's write deadline). The callback
// RawConn.Write takes is made once, in Init, so a Write allocates nothing.
// One goroutine writes at a time; the zero Writer must be given Init.
type Writer struct {
	rc syscall.RawConn
	fn func(fd uintptr) bool
	// p is what the current Write has left to write, err why it stopped.
	p   []byte
	err error
}

// Init makes w write through rc.
func (w *Writer) Init(rc syscall.RawConn) {
	w.rc = rc
	w.fn = w.writable
}

// Write writes all of p, unless the socket fails or the deadline passes.
func (w *Writer) Write(p []byte) (int, error) {
	w.p, w.err = p, nil
	err := w.rc.Write(w.fn)
	n := len(p) - len(w.p)
	w.p = nil
	if err == nil {
		err = w.err
	}
	return n, err
}

// writable is the RawConn.Write callback: false waits until the socket
// takes more.
func (w *Writer) writable(fd uintptr) bool {
	n, errno := WriteAll(fd, w.p)
	w.p = w.p[n:]
	switch errno {
	case 0:
		return true
	case syscall.EAGAIN:
		return false
	}
	w.err = errno
	return true
}
