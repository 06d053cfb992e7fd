package cluster

import (
	"github.com/cockroachdb/pebble/v2"

	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// levelTrace is the slog level for hclog's Trace: below Debug.
const levelTrace = slog.LevelDebug - 4

// hclogAdapter presents an *slog.Logger as the hclog.Logger raft wants.
// Levels are decided by the slog handler; SetLevel is ignored.
type hclogAdapter struct {
	base    *slog.Logger // with implied args, without the name
	log     *slog.Logger // base plus the "logger" name attribute
	name    string
	implied []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHCLog adapts l (nil discards) to hclog for raft's components.
func newHCLog(l *slog.Logger, name string) hclog.Logger {
	base := orDiscard(l)
	return &hclogAdapter{base: base, log: base.With("logger", name), name: name}
}

// logCtx is the context handed to slog handlers: hclog passes none, and a
// log call has nothing to cancel.
var logCtx = context.Background()

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	for i, v := range args {
		// raft passes hclog.Fmt values: format them as hclog would.
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.log.Log(logCtx, toSlogLevel(level), msg, args...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.log.Enabled(logCtx, levelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.log.Enabled(logCtx, slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.log.Enabled(logCtx, slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.log.Enabled(logCtx, slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.log.Enabled(logCtx, slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{
		base:    a.base.With(args...),
		log:     a.log.With(args...),
		name:    a.name,
		implied: append(append([]any(nil), a.implied...), args...),
	}
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{base: a.base, log: a.base.With("logger", name), name: name, implied: a.implied}
}

func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.log.Enabled(logCtx, toSlogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	level := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = toSlogLevel(opts.ForceLevel)
	}
	return slog.NewLogLogger(a.log.Handler(), level)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}

// pebbleLogger presents an *slog.Logger as pebble's Logger.
type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	// pebble's informational messages (WAL replay, compactions) are
	// operator detail, not events.
	p.log.Debug("pebble", "detail", fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log.Error("pebble", "detail", fmt.Sprintf(format, args...))
}

// Fatalf is called by pebble on an internal invariant violation and must
// not return; it logs and panics (pebble's default logger exits instead).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error("pebble fatal", "detail", msg)
	panic("pebble: " + msg)
}

// PebbleLogger presents log as a pebble Logger, for other pebble databases
// of the same process (the issuer's state machine). nil discards.
func PebbleLogger(log *slog.Logger) pebble.Logger { return pebbleLogger{log: orDiscard(log)} }
