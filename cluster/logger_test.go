package cluster

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")

	if l.IsTrace() || !l.IsDebug() || !l.IsError() {
		t.Fatalf("IsTrace/IsDebug/IsError: got %v/%v/%v, want false/true/true", l.IsTrace(), l.IsDebug(), l.IsError())
	}
	if got := l.GetLevel(); got != hclog.Debug {
		t.Fatalf("GetLevel: got %v, want Debug", got)
	}
	l.Trace("hidden")
	l.Named("net").With("peer", "n2").Warn("dial failed", "error", "refused")
	l.Log(hclog.Off, "never")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "WARN", "msg": "dial failed", "logger": "raft.net", "peer": "n2", "error": "refused"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("record %s: got %v, want %v", k, rec[k], v)
		}
	}
	if n := strings.Count(lines[0], `"logger"`); n != 1 {
		t.Errorf("record has %d logger attributes, want 1: %s", n, lines[0])
	}
}

func TestHCLogAdapterNilDiscards(t *testing.T) {
	l := newHCLog(nil, "raft")
	l.Error("dropped", "k", "v") // must not panic
	if l.IsError() {
		t.Fatal("IsError on a discarding logger: got true, want false")
	}
}
