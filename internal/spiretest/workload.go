package spiretest

import (
	"io"
	"os"
	"testing"
)

// CopyExecutable copies the running executable (the test binary) to path
// with mode 0755 and returns path. Copies at distinct paths are distinct
// workloads to the agent's unix attestor: register some with Register,
// then run them (typically with an environment variable that TestMain
// checks to act as a workload instead of running tests). path must not
// exist. CopyExecutable fails t on any error.
func CopyExecutable(t testing.TB, path string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("spiretest: CopyExecutable: %v", err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatalf("spiretest: CopyExecutable: %v", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatalf("spiretest: CopyExecutable: %v", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatalf("spiretest: CopyExecutable to %s: %v", path, err)
	}
	if err := dst.Close(); err != nil {
		t.Fatalf("spiretest: CopyExecutable to %s: %v", path, err)
	}
	return path
}
