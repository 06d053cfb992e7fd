package spiretest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 10 * time.Second

// process is one running SPIRE binary whose output goes to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed

	mu      sync.Mutex
	abandon bool // an exit before cleanup was expected (see expectExit)
}

// startProcess starts bin with args, stdout and stderr appended to logPath.
// The process is stopped in t.Cleanup.
func startProcess(t testing.TB, name, bin, logPath string, args ...string) *process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("spiretest: open %s log: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("spiretest: start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("spiretest: %v", err)
		}
	})
	return p
}

// exited reports whether the process has exited, with its wait error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// expectExit marks an exit before cleanup as expected, for a process the
// caller gave up on (a server that lost the race for its port).
func (p *process) expectExit() {
	p.mu.Lock()
	p.abandon = true
	p.mu.Unlock()
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for exit. An
// exit caused by our SIGTERM is not an error; an earlier crash is reported.
func (p *process) stop() error {
	if done, err := p.exited(); done {
		p.mu.Lock()
		abandoned := p.abandon
		p.mu.Unlock()
		if abandoned {
			return nil
		}
		return fmt.Errorf("%s exited before cleanup: %v (log %s)", p.name, err, p.logPath)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL %s: %w", p.name, err)
	}
	<-p.done
	return fmt.Errorf("%s ignored SIGTERM for %v and was killed", p.name, stopGrace)
}
