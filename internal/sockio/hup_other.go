//go:build !linux

package sockio

// Without epoll there is no watch: read loops read until EAGAIN after each
// batch to hear an EOF (see hup_linux.go).

// WatchHup reports that fd cannot be watched.
func WatchHup(uintptr, func()) (uint32, bool) { return 0, false }

// UnwatchHup does nothing.
func UnwatchHup(uint32) {}
