package spiretest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Messages the agent (SPIRE v1.13.3, pkg/agent/manager/sync.go) logs at
// INFO, with an entry_id field, when it has obtained an X.509-SVID for an
// entry: the first one, and every later one.
const (
	msgCreatingSVID = "Creating X509-SVID"
	msgRenewingSVID = "Renewing X509-SVID"
)

// entrySpec is what Register created, so Rotate can rewrite the same entry.
type entrySpec struct {
	id        spiffeid.ID
	parent    spiffeid.ID
	selectors []string
	x509TTL   time.Duration
	jwtTTL    time.Duration
}

// EntryOption adjusts an entry created by Register.
type EntryOption func(*entrySpec)

// WithX509SVIDTTL sets the entry's X.509-SVID lifetime (whole seconds,
// at least 1s; the agent renews at half of it). Zero means the server
// default (Config.X509SVIDTTL).
func WithX509SVIDTTL(d time.Duration) EntryOption {
	return func(e *entrySpec) { e.x509TTL = d }
}

// WithJWTSVIDTTL sets the entry's JWT-SVID lifetime (whole seconds, at
// least 1s). Zero means the server default (Config.JWTSVIDTTL).
func WithJWTSVIDTTL(d time.Duration) EntryOption {
	return func(e *entrySpec) { e.jwtTTL = d }
}

// WithSelectors adds selectors ("type:value", for example "unix:uid:1000")
// that a workload must also match.
func WithSelectors(selectors ...string) EntryOption {
	return func(e *entrySpec) { e.selectors = append(e.selectors, selectors...) }
}

// Register creates a registration entry whose parent is the agent and
// which selects processes whose executable is exePath
// (unix:path:<exePath with symlinks resolved>), and returns the entry ID.
//
// It returns once the agent has synced the entry and minted its first
// X.509-SVID, so a workload started afterwards gets its identity on its
// first Workload API call. There is no API for asking the agent about an
// entry from outside a matching workload, so Register waits for the
// agent's INFO log line "Creating X509-SVID" carrying the entry's ID (the
// agent mints SVIDs for every synced entry while its SVID cache has room,
// 1000 by default). That takes about one server cache reload plus one
// agent sync (two Config.SyncInterval). Register fails t if id is not in
// the deployment's trust domain, exePath does not exist, the server
// rejects the entry, or the agent does not pick it up in time.
func (d *Deployment) Register(t testing.TB, id spiffeid.ID, exePath string, opts ...EntryOption) string {
	t.Helper()
	if !id.MemberOf(d.cfg.TrustDomain) {
		t.Fatalf("spiretest: Register(%s): not in trust domain %s", id, d.cfg.TrustDomain)
	}
	abs, err := filepath.Abs(exePath)
	if err != nil {
		t.Fatalf("spiretest: Register(%s): %v", id, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		t.Fatalf("spiretest: Register(%s): executable: %v", id, err)
	}
	spec := entrySpec{id: id, parent: d.agentID, selectors: []string{"unix:path:" + resolved}}
	for _, opt := range opts {
		opt(&spec)
	}
	for name, ttl := range map[string]time.Duration{"X.509-SVID TTL": spec.x509TTL, "JWT-SVID TTL": spec.jwtTTL} {
		if ttl != 0 {
			if err := validateTTL(name, ttl); err != nil {
				t.Fatalf("spiretest: Register(%s): %v", id, err)
			}
		}
	}

	out := d.ServerCLI(t, append([]string{"entry", "create", "-output", "json"}, spec.flags()...)...)
	entryID, err := entryResult(out)
	if err != nil {
		t.Fatalf("spiretest: Register(%s): entry create: %v", id, err)
	}
	d.mu.Lock()
	d.entries[entryID] = spec
	d.mu.Unlock()

	d.waitSVIDs(t, entryID, 1, fmt.Sprintf("Register(%s): agent has not created an X.509-SVID for entry %s", id, entryID))
	return entryID
}

// Rotate makes the agent issue a new X.509-SVID for an entry created by
// Register, and returns once the agent has it; workloads watching the
// Workload API (an X509Source) receive it right after.
//
// Mechanism: `spire-server entry update` rewrites the entry with its
// unchanged fields. The server bumps the entry's revision number on every
// update; after the next entry cache reload the agent's sync sees the new
// revision, marks the cached SVID outdated and renews it at once, logging
// "Renewing X509-SVID" with the entry ID, which Rotate waits for. The
// typical delay is one to two Config.SyncInterval (about 1–3 s with the
// default 1s). The SVID's SPIFFE ID, TTL and key type stay the same; the
// serial number and key change.
func (d *Deployment) Rotate(t testing.TB, entryID string) {
	t.Helper()
	d.mu.Lock()
	spec, ok := d.entries[entryID]
	d.mu.Unlock()
	if !ok {
		t.Fatalf("spiretest: Rotate(%s): entry was not created by Register on this deployment", entryID)
	}
	before := d.countSVIDs(t, entryID)
	out := d.ServerCLI(t, append([]string{"entry", "update", "-output", "json", "-entryID", entryID}, spec.flags()...)...)
	if _, err := entryResult(out); err != nil {
		t.Fatalf("spiretest: Rotate(%s): entry update: %v", entryID, err)
	}
	d.waitSVIDs(t, entryID, before+1, fmt.Sprintf("Rotate(%s): agent has not renewed the X.509-SVID", entryID))
}

// flags renders the entry for `spire-server entry create|update`.
func (e entrySpec) flags() []string {
	args := []string{"-parentID", e.parent.String(), "-spiffeID", e.id.String()}
	for _, s := range e.selectors {
		args = append(args, "-selector", s)
	}
	if e.x509TTL != 0 {
		args = append(args, "-x509SVIDTTL", strconv.Itoa(int(e.x509TTL/time.Second)))
	}
	if e.jwtTTL != 0 {
		args = append(args, "-jwtSVIDTTL", strconv.Itoa(int(e.jwtTTL/time.Second)))
	}
	return args
}

// entryResult reads the one result of `entry create|update -output json`
// (a BatchCreateEntryResponse or BatchUpdateEntryResponse in protojson
// with proto field names) and returns the entry ID.
func entryResult(out []byte) (string, error) {
	var resp struct {
		Results []struct {
			Status struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
			Entry struct {
				ID string `json:"id"`
			} `json:"entry"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return "", fmt.Errorf("decode %q: %w", out, err)
	}
	if len(resp.Results) != 1 {
		return "", fmt.Errorf("got %d results, want 1: %s", len(resp.Results), out)
	}
	r := resp.Results[0]
	if r.Status.Code != 0 {
		return "", fmt.Errorf("status %d: %s", r.Status.Code, r.Status.Message)
	}
	if r.Entry.ID == "" {
		return "", fmt.Errorf("no entry id in %s", out)
	}
	return r.Entry.ID, nil
}

// waitSVIDs polls the agent log until it shows at least want X.509-SVIDs
// minted for entryID, failing t with what after the sync timeout.
func (d *Deployment) waitSVIDs(t testing.TB, entryID string, want int, what string) {
	t.Helper()
	timeout := 30*time.Second + 10*d.cfg.SyncInterval
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		if done, err := d.agent.exited(); done {
			t.Fatalf("spiretest: %s: spire-agent exited: %v", what, err)
		}
		if d.countSVIDs(t, entryID) >= want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spiretest: %s within %v", what, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countSVIDs counts the agent log lines recording a minted X.509-SVID for
// entryID.
func (d *Deployment) countSVIDs(t testing.TB, entryID string) int {
	t.Helper()
	f, err := os.Open(d.agent.logPath)
	if err != nil {
		t.Fatalf("spiretest: agent log: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(entryID)) {
			continue
		}
		var rec struct {
			Msg     string `json:"msg"`
			EntryID string `json:"entry_id"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.EntryID != entryID {
			continue
		}
		if rec.Msg == msgCreatingSVID || rec.Msg == msgRenewingSVID {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("spiretest: agent log: %v", err)
	}
	return n
}
