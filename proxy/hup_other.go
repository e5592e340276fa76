//go:build !linux

package proxy

// Without epoll there is no watch: clients read until EAGAIN after each
// batch (see hup_linux.go).
type hupWatch struct{}

func newHupWatch() *hupWatch                           { return nil }
func (h *hupWatch) add(uintptr, func()) (uint32, bool) { return 0, false }
func (h *hupWatch) remove(uint32)                      {}
func (h *hupWatch) close()                             {}
