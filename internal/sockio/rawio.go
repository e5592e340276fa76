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
