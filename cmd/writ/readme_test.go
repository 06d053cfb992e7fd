package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeCommand is one ./bin/writ command of the README walk-through.
type readmeCommand struct {
	line     string
	args     []string
	stdin    string // file redirected from, or ""
	stdout   string // file redirected to, or ""
	wantCode int
}

// readmeCommands extracts the ./bin/writ commands of README.md's sh code
// blocks. A block that shows a denial ("allowed": false) expects exit 3.
func readmeCommands(t *testing.T, readme string, vars map[string]string) []readmeCommand {
	t.Helper()
	var out []readmeCommand
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no sh blocks")
	}
	for _, b := range blocks {
		text := strings.ReplaceAll(b[1], "\\\n", " ")
		want := exitOK
		if strings.Contains(text, `"allowed": false`) {
			want = exitDenied
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if i := strings.Index(line, " #"); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			if m := regexp.MustCompile(`^([A-Z]+)="(.*)"$`).FindStringSubmatch(line); m != nil {
				vars[m[1]] = m[2]
				continue
			}
			if !strings.HasPrefix(line, "./bin/writ ") {
				continue
			}
			c := readmeCommand{line: line, wantCode: want}
			words := strings.Fields(line)[1:]
			for i := 0; i < len(words); i++ {
				w := words[i]
				switch {
				case w == "<":
					c.stdin, i = words[i+1], i+1
				case w == ">":
					c.stdout, i = words[i+1], i+1
				case strings.HasPrefix(w, "$"):
					c.args = append(c.args, strings.Fields(vars[w[1:]])...)
				default:
					c.args = append(c.args, w)
				}
			}
			out = append(out, c)
		}
	}
	return out
}

// TestREADMEWalkthrough runs every command of the README against a real
// `writ dev` issuer, so the front door never rots.
func TestREADMEWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var devErr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"dev", "--listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0", "--log-level", "warn"}, strings.NewReader(""), pw, &devErr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("writ dev exited %d: %s", code, devErr.String())
		}
	})
	url := ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := regexp.MustCompile(`writ dev issuer on (https://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatalf("no URL in writ dev banner; stderr: %s", devErr.String())
	}
	go io.Copy(io.Discard, pr)
	waitReady(t, url)

	os.WriteFile("my-policy.yaml", mustRead(t, ".writ-dev/policy.yaml"), 0o644)
	cmds := readmeCommands(t, string(readme), map[string]string{})
	ran := 0
	for _, c := range cmds {
		if c.args[0] == "server" {
			continue // would start a second node on the same data
		}
		args := make([]string, len(c.args))
		for i, a := range c.args {
			args[i] = strings.ReplaceAll(a, "https://127.0.0.1:8443", url)
		}
		hasServer := false
		for _, a := range args {
			if a == "--server" {
				hasServer = true
			}
		}
		if !hasServer && (args[0] == "admin" || args[0] == "revoke" || args[0] == "revocations" || args[0] == "keys" || (args[0] == "token" && args[1] == "mint")) {
			args = append(args, "--server", url)
		}
		var stdin io.Reader = strings.NewReader("")
		if c.stdin != "" {
			stdin = bytes.NewReader(mustRead(t, c.stdin))
		}
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, stdin, &stdout, &stderr)
		if code != c.wantCode {
			t.Fatalf("%s\nexit %d, want %d\nstdout: %s\nstderr: %s", c.line, code, c.wantCode, stdout.String(), stderr.String())
		}
		if c.stdout != "" {
			if err := os.WriteFile(c.stdout, stdout.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ran++
	}
	if ran < 8 {
		t.Fatalf("ran %d README commands, want at least 8", ran)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var out, errb bytes.Buffer
		if run(context.Background(), []string{"admin", "policy", "get", "--server", url, "--bundle", ".writ-dev/ca/ca.pem",
			"--svid", ".writ-dev/svids/admin.pem", "--svid-key", ".writ-dev/svids/admin-key.pem"}, nil, &out, &errb) == exitOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("dev issuer not ready after 30s")
}
