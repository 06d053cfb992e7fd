package spiretest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BinEnv names the environment variable holding the directory with
// spire-server and spire-agent. When it is set, missing binaries fail tests
// instead of skipping them.
const BinEnv = "WRIT_SPIRE_BIN"

// modulePath identifies writ's go.mod when looking for the repository root.
const modulePath = "github.com/writ-dev/writ"

// Binaries returns the paths of spire-server and spire-agent: in the
// directory named by $WRIT_SPIRE_BIN, else in <repo>/bin/spire, where
// <repo> is the nearest parent of the working directory whose go.mod
// declares writ's module. The error wraps ErrBinariesNotFound and names
// the directory searched and how to build the binaries.
func Binaries() (server, agent string, err error) {
	dir, err := binDir()
	if err != nil {
		return "", "", err
	}
	server = filepath.Join(dir, "spire-server")
	agent = filepath.Join(dir, "spire-agent")
	for _, p := range []string{server, agent} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", "", fmt.Errorf("%w at %s (%v); run `make spire`", ErrBinariesNotFound, dir, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", "", fmt.Errorf("%w at %s: %s is not an executable file; run `make spire`", ErrBinariesNotFound, dir, p)
		}
	}
	return server, agent, nil
}

// binDir resolves the directory Binaries looks in.
func binDir() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("%w: %s=%q: %v", ErrBinariesNotFound, BinEnv, dir, err)
		}
		return abs, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "spire"), nil
}

// repoRoot walks up from the working directory to writ's go.mod.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: working directory: %v", ErrBinariesNotFound, err)
	}
	for dir := wd; ; {
		if declaresModule(filepath.Join(dir, "go.mod"), modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod of %s above %s; set %s", ErrBinariesNotFound, modulePath, wd, BinEnv)
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod at path declares module mod.
func declaresModule(path, mod string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == mod
		}
	}
	return false
}

// requireBinaries returns the binaries or ends the test: a skip when
// WRIT_SPIRE_BIN is unset (a developer machine without `make spire`), a
// failure when it is set (CI asked for the SPIRE tests).
func requireBinaries(t testing.TB) (server, agent string) {
	t.Helper()
	server, agent, err := Binaries()
	switch {
	case err == nil:
		return server, agent
	case os.Getenv(BinEnv) == "" && errors.Is(err, ErrBinariesNotFound):
		t.Skipf("skipping SPIRE integration test: %v", err)
	default:
		t.Fatal(err)
	}
	return "", ""
}

// SkipIfNoBinaries skips t with a message naming `make spire` when the
// SPIRE binaries are missing and WRIT_SPIRE_BIN is unset, and fails t when
// WRIT_SPIRE_BIN is set but does not hold them. Start does the same; call
// this first when a test has expensive setup before Start.
func SkipIfNoBinaries(t testing.TB) {
	t.Helper()
	requireBinaries(t)
}
