package issuer

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/writ-dev/writ/cluster"
)

// The helpers below give a stopped test node a large revocation list
// without sending a million commands through raft's leader loop one
// fsync at a time, yet through the same code a node runs: each
// revocation is a real encoded `revoke` command (with its audit record,
// as Issuer.Revoke writes it), appended to the node's own raft log with
// the node's LogStore, and applied to the node's state with
// State.ApplyBatch in raft's batches of 64 at the same indexes. The node
// then starts on a log and a state that agree, as if it had committed
// every command itself. What is skipped: replication and the sync hub's
// signing of one change frame per revocation (no feed is attached while
// the node is stopped), neither of which the benchmarks measure.
// Shared by BenchmarkRestartRevocations and BenchmarkSyncSnapshot.

// benchRevokeAdmin is the admin the built revocations are written by.
var benchRevokeAdmin = nodeTestAdmin

// benchRevocation returns the i-th revocation of a built list, made at
// at: of every 100, 50 are token ids, 45 block revocation ids and 5 agent
// revocations. Ids derive from i, so a benchmark can ask about them.
func benchRevocation(i int, at time.Time) *revocationRecord {
	r := &revocationRecord{At: at, By: benchRevokeAdmin.String()}
	id := benchID(i)
	switch k := i % 100; {
	case k < 50:
		r.Kind, r.ID = RevokeToken, hex.EncodeToString(id[:16])
	case k < 95:
		r.Kind, r.ID = RevokeBlock, hex.EncodeToString(id[:])
	default:
		r.Kind, r.Agent, r.Before = RevokeAgent, benchAgent(i), at
	}
	// The longest horizon apply accepts (a node whose tokens live 24 h):
	// nothing expires while a benchmark runs.
	r.ExpiresAt = r.affectsFrom().Add(maxHorizon)
	return r
}

func benchID(i int) [64]byte {
	return sha512.Sum512(binary.BigEndian.AppendUint64([]byte("writ-bench-revocation"), uint64(i)))
}

func benchAgent(i int) string { return fmt.Sprintf("spiffe://acme.test/agents/bench-%08d", i) }

// benchRevokeCommand is the command Issuer.Revoke writes for r.
func benchRevokeCommand(node string, r *revocationRecord) *command {
	audit := &AuditRecord{Time: r.At, Node: node, Kind: AuditRevoke, Caller: r.By, Subject: r.subject(), ExpiresAt: r.ExpiresAt}
	return &command{Type: cmdRevoke, Revocation: r, Audit: []*AuditRecord{audit}}
}

// benchAuditCommand is an audit.append of per mint records, as the
// audit log writes them.
func benchAuditCommand(node string, i, per int, at time.Time) *command {
	recs := make([]*AuditRecord, per)
	for j := range recs {
		recs[j] = &AuditRecord{Time: at, Node: node, Kind: AuditMint, Caller: nodeTestAgent.String(),
			Credential: "x509-svid", Requested: []string{"crm/contacts:read"}, Granted: []string{"crm/contacts:read"},
			TokenID: fmt.Sprintf("%016x%016x", i, j), ExpiresAt: at.Add(5 * time.Minute), PolicyVersion: "sha256:0123456789abcdef", KeyID: 1}
	}
	return &command{Type: cmdAuditAppend, Audit: recs}
}

// builtState is what buildRevocations added.
type builtState struct {
	revocations int // revoke commands (each one revocation and one audit record)
	audit       int // audit records in all, the revocations' included
	first, last uint64
	at          time.Time // when the revocations were made (benchRevocation)
	took        time.Duration
}

func (bs builtState) String() string {
	return fmt.Sprintf("%d revocations and %d audit records at raft indexes %d..%d, built in %s",
		bs.revocations, bs.audit, bs.first, bs.last, bs.took.Round(time.Millisecond))
}

// buildRevocations appends revocations revoke commands (benchRevocation
// 0, 1, …, made at at) and, spread among them, extraAudit mint audit
// records in audit.append commands of 1,000, to the raft log and the
// state of the stopped node whose data directory is dataDir (a node that
// started once, so it has a term, a key and a policy). logf, when not nil,
// reports progress.
func buildRevocations(dataDir string, kek *KEK, node string, revocations, extraAudit int, at time.Time, logf func(string, ...any)) (built builtState, err error) {
	start := time.Now()
	store, err := cluster.OpenStore(filepath.Join(dataDir, "raft", "log"), cluster.StoreOptions{})
	if err != nil {
		return built, err
	}
	defer func() {
		if cerr := store.Close(); err == nil {
			err = cerr
		}
	}()
	last, err := store.Logs().LastIndex()
	if err != nil {
		return built, err
	}
	var tail raft.Log
	if err := store.Logs().GetLog(last, &tail); err != nil {
		return built, fmt.Errorf("last log entry %d: %w", last, err)
	}
	st, err := OpenState(filepath.Join(dataDir, "state"), kek, nil)
	if err != nil {
		return built, err
	}
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()
	if st.Applied() > last {
		return built, fmt.Errorf("state applied %d is past the log's end %d", st.Applied(), last)
	}
	const perAudit = 1000
	auditCmds := extraAudit / perAudit
	every := 0 // an audit.append after every `every` revocations
	if auditCmds > 0 {
		every = max(revocations/auditCmds, 1)
	}
	next := last + 1
	built.first, built.at = next, at
	var (
		logs    []*raft.Log
		records []int // audit records each entry of logs must chain
		window  = time.Now()
	)
	flush := func() error {
		if len(logs) == 0 {
			return nil
		}
		if err := store.Logs().StoreLogs(logs); err != nil {
			return err
		}
		// raft hands the state machine at most MaxAppendEntries (64)
		// committed entries at a time.
		for lo := 0; lo < len(logs); lo += 64 {
			hi := min(lo+64, len(logs))
			entries := make([]cluster.Entry, 0, hi-lo)
			for _, l := range logs[lo:hi] {
				entries = append(entries, cluster.Entry{Index: l.Index, Cmd: l.Data})
			}
			for j, res := range st.ApplyBatch(entries) {
				if err := checkApplied(res, records[lo+j]); err != nil {
					return fmt.Errorf("entry %d: %w", entries[j].Index, err)
				}
			}
		}
		logs, records = logs[:0], records[:0]
		return nil
	}
	// Only the commands of the last commandIDRetention indexes carry an
	// ID: a node that applied every command with one holds exactly
	// these (older ones are pruned), and the state machine is spared
	// pruning the others one at a time (see BenchmarkRestartRevocations).
	total := revocations + auditCmds
	withIDFrom := next + uint64(max(total-commandIDRetention, 0))
	add := func(c *command, recs int) error {
		var data []byte
		var err error
		if next >= withIDFrom {
			data, err = encodeCommand(c)
		} else {
			c.V = commandVersion
			data, err = json.Marshal(c)
		}
		if err != nil {
			return err
		}
		logs = append(logs, &raft.Log{Index: next, Term: tail.Term, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()})
		records = append(records, recs)
		next++
		built.audit += recs
		if len(logs) == 4096 {
			return flush()
		}
		return nil
	}
	audits := 0
	for i := range revocations {
		if err := add(benchRevokeCommand(node, benchRevocation(i, at)), 1); err != nil {
			return built, err
		}
		built.revocations++
		if every > 0 && (i+1)%every == 0 && audits < auditCmds {
			if err := add(benchAuditCommand(node, audits, perAudit, at), perAudit); err != nil {
				return built, err
			}
			audits++
		}
		if logf != nil && (i+1)%100_000 == 0 {
			logf("built %d revocations (last 100,000 in %s)", i+1, time.Since(window).Round(time.Millisecond))
			window = time.Now()
		}
	}
	for ; audits < auditCmds; audits++ {
		if err := add(benchAuditCommand(node, audits, perAudit, at), perAudit); err != nil {
			return built, err
		}
	}
	if err := flush(); err != nil {
		return built, err
	}
	built.last, built.took = next-1, time.Since(start)
	return built, nil
}

// newRevokedNode starts a fresh single node in a temporary directory,
// stops it, and gives it revocations revocations (buildRevocations) and
// extraAudit mint audit records. It returns the stopped node.
func newRevokedNode(tb testing.TB, env *testEnv, revocations, extraAudit int) (*testNode, builtState) {
	tb.Helper()
	n := startTestNode(tb, env.config(tb, "writ-1", tb.TempDir(), true))
	waitUntil(tb, "node ready", n.ready)
	n.stop()
	built, err := buildRevocations(n.cfg.DataDir, env.kek, n.cfg.NodeID, revocations, extraAudit, time.Now().UTC().Truncate(time.Millisecond), tb.Logf)
	if err != nil {
		tb.Fatalf("build revocations: %v", err)
	}
	return n, built
}

// waitLong is waitUntil with a deadline of d.
func waitLong(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
