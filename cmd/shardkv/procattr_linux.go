package main

import "syscall"

// childProcAttr puts a child in its own process group, so a Ctrl-C in the
// terminal reaches only `cluster`, which then stops the children in order;
// and asks the kernel to send the child SIGTERM if `cluster` dies without
// stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
