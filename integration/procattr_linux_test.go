package integration

import "syscall"

// procAttr makes the kernel kill a server if the test process dies before
// its cleanup runs, so no straggler keeps a port or a data directory.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
