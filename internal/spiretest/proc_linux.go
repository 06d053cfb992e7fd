package spiretest

import "syscall"

// sysProcAttr kills the SPIRE process if the test binary dies without
// running its cleanups (for example on a -timeout panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
