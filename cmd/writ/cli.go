package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes (spec/cli.md).
const (
	exitOK     = 0
	exitError  = 1
	exitUsage  = 2
	exitDenied = 3
)

// usageError marks errors caused by how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// deniedError marks a verification that completed with a denial.
type deniedError struct{}

func (deniedError) Error() string { return "denied" }

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "start a single-node dev issuer with a dev trust domain (no config); 'dev svid' issues SVIDs", runDev},
		{"server", "start an issuer node from a YAML config file", runServer},
		{"token", "mint, inspect, attenuate and verify tokens", runToken},
		{"admin", "admin operations: policy get/set, audit", runAdmin},
		{"cluster", "cluster membership: status, join, remove, step-down (admin)", runCluster},
		{"revoke", "revoke a token, a block, an agent's tokens or a root key (admin); --wait for the verifiers", runRevoke},
		{"revocations", "revocations list and status: which verifiers hold which epoch (admin)", runRevocations},
		{"keys", "root keys: list, rotate, revoke (admin)", runKeys},
		{"version", "print the version", func(_ context.Context, e env, _ []string) error {
			fmt.Fprintln(e.stdout, "writ", version)
			return nil
		}},
	}
}

var version = "dev"

const topUsage = `writ — capability tokens for AI agents

Usage: writ <command> [flags]

Commands:
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printTop(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(stderr, c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(stderr, "writ: unknown command %q\n\n", args[0])
	printTop(stderr)
	return exitUsage
}

func printTop(w io.Writer) {
	fmt.Fprint(w, topUsage)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'writ <command> -h' for a command's flags. Reference: spec/cli.md")
}

func exitCode(stderr io.Writer, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "writ:", ue.msg)
		return exitUsage
	case errors.Is(err, deniedError{}):
		return exitDenied
	default:
		fmt.Fprintln(stderr, "writ:", err)
		return exitError
	}
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(e env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args allowing flags after positional arguments, and
// maps flag errors to usage errors.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}
