package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/cluster"
)

// JoinRequest is the body of POST /v1/admin/cluster/join.
type JoinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// RemoveRequest is the body of POST /v1/admin/cluster/remove.
type RemoveRequest struct {
	NodeID string `json:"node_id"`
}

// ClusterStatus is the body of GET /v1/admin/cluster.
type ClusterStatus struct {
	Leader            string        `json:"leader"`
	Node              string        `json:"node"` // the node that answered
	State             string        `json:"state"`
	Term              uint64        `json:"term"`
	CommitIndex       uint64        `json:"commit_index"`
	AppliedIndex      uint64        `json:"applied_index"`
	LastSnapshotIndex uint64        `json:"last_snapshot_index"`
	LastContact       *time.Time    `json:"last_contact,omitempty"`
	Voters            int           `json:"voters"`
	FailureTolerance  int           `json:"failure_tolerance"`
	Servers           []ClusterNode `json:"servers"`
	Removed           []string      `json:"removed,omitempty"`
}

// ClusterNode is one raft member as GET /v1/admin/cluster reports it.
// The answering node asks every member for its own view
// (/v1/internal/status); Reachable is false, and the rest empty, for a
// member that did not answer within a second.
type ClusterNode struct {
	ID        string     `json:"id"`
	RaftAddr  string     `json:"raft_addr"`
	APIAddr   string     `json:"api_addr,omitempty"`
	Voter     bool       `json:"voter"`
	Leader    bool       `json:"leader"`
	Reachable bool       `json:"reachable"`
	Self      *NodeStats `json:"self,omitempty"`
}

// NodeStats is a node's own raft view: GET /v1/internal/status.
type NodeStats struct {
	State        string     `json:"state"`
	Term         uint64     `json:"term"`
	CommitIndex  uint64     `json:"commit_index"`
	AppliedIndex uint64     `json:"applied_index"`
	LastContact  *time.Time `json:"last_contact,omitempty"`
	Ready        bool       `json:"ready"`
	// Members are the node ids of the raft configuration as this node sees
	// it, and Removed the ids its replicated member records mark removed:
	// a node asks the others with them whether it still belongs
	// (watchRemoval). Filled in GET /v1/internal/status only.
	Members []string `json:"members,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

func (is *Issuer) nodeStats() NodeStats {
	st := is.node.Stats()
	out := NodeStats{State: st.State, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Ready: len(is.notReady()) == 0}
	if !st.LastContact.IsZero() {
		lc := st.LastContact.UTC()
		out.LastContact = &lc
	}
	return out
}

// handleInternalStatus serves GET /v1/internal/status (issuer nodes only).
func (is *Issuer) handleInternalStatus(w http.ResponseWriter, r *http.Request) {
	if !is.internalCaller(w, r) {
		return
	}
	st := is.nodeStats()
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if servers, err := is.node.Servers(ctx); err == nil {
		st.Members = make([]string, len(servers))
		for i, s := range servers {
			st.Members[i] = s.ID
		}
	}
	for _, n := range is.state.Nodes() {
		if n.Removed {
			st.Removed = append(st.Removed, n.ID)
		}
	}
	writeJSON(w, http.StatusOK, &st)
}

// memberStats asks a member for its own view; nil if it does not answer.
func (is *Issuer) memberStats(ctx context.Context, id, apiAddr string) *NodeStats {
	if id == is.cfg.NodeID {
		st := is.nodeStats()
		return &st
	}
	if apiAddr == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+apiAddr+"/v1/internal/status", nil)
	if err != nil {
		return nil
	}
	resp, err := is.fwd.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st NodeStats
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&st) != nil {
		return nil
	}
	return &st
}

// leaderOnly answers 503 not_leader (with the leader's API address, so a
// client can go there) unless this node leads.
func (is *Issuer) leaderOnly(w http.ResponseWriter) bool {
	if is.node.IsLeader() {
		return true
	}
	leader, _ := is.node.Leader()
	rec, _ := is.state.Node(leader)
	writeProblem(w, http.StatusServiceUnavailable, ProblemNotLeader, "membership changes go to the leader", func(p *Problem) {
		p.Leader = rec.APIAddr
	})
	return false
}

func validNodeAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != "" && port != "0" && len(s) <= 255
}

func (is *Issuer) handleJoin(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req JoinRequest
	if err := decodeStrict(body, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "body: "+err.Error(), nil)
		return
	}
	if req.NodeID == "" || len(req.NodeID) > 128 || !validNodeAddr(req.RaftAddr) || !validNodeAddr(req.APIAddr) {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "want node_id (1-128 bytes), raft_addr and api_addr as host:port", nil)
		return
	}
	if !is.leaderOnly(w) {
		return
	}
	if rec, ok := is.state.Node(req.NodeID); ok && rec.Removed {
		writeProblem(w, http.StatusConflict, ProblemConflict, "node "+req.NodeID+" was removed; it may join again only under a new node id", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := is.node.AddVoter(ctx, req.NodeID, req.RaftAddr); err != nil {
		is.membershipError(w, "add voter", err)
		return
	}
	if err := is.setNode(ctx, nodeRecord{ID: req.NodeID, APIAddr: req.APIAddr, RaftAddr: req.RaftAddr}, AuditNodeJoin, admin); err != nil {
		is.membershipError(w, "record member", err)
		return
	}
	is.log.Info("node joined", "node", req.NodeID, "raft_addr", req.RaftAddr, "by", admin.String())
	is.writeStatus(w, r)
}

func (is *Issuer) handleRemove(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req RemoveRequest
	if err := decodeStrict(body, &req); err != nil || req.NodeID == "" {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "want {\"node_id\": …}", nil)
		return
	}
	if !is.leaderOnly(w) {
		return
	}
	if req.NodeID == is.cfg.NodeID {
		writeProblem(w, http.StatusConflict, ProblemConflict, "the leader cannot remove itself: step down first, then remove it from the new leader", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := is.node.RemoveServer(ctx, req.NodeID); err != nil {
		is.membershipError(w, "remove server", err)
		return
	}
	rec, _ := is.state.Node(req.NodeID)
	rec.ID, rec.Removed = req.NodeID, true
	if err := is.setNode(ctx, rec, AuditNodeLeave, admin); err != nil {
		is.membershipError(w, "record removal", err)
		return
	}
	is.log.Info("node removed", "node", req.NodeID, "by", admin.String())
	is.writeStatus(w, r)
}

func (is *Issuer) handleStepDown(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	if !is.leaderOnly(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := is.node.StepDown(ctx); err != nil {
		is.membershipError(w, "step down", err)
		return
	}
	is.log.Info("leader stepped down", "node", is.cfg.NodeID, "by", admin.String())
	is.writeStatus(w, r)
}

func (is *Issuer) handleClusterStatus(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	is.writeStatus(w, r)
}

func (is *Issuer) membershipError(w http.ResponseWriter, op string, err error) {
	is.log.Warn("membership change failed", "op", op, "err", err)
	if errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrLeadershipLost) {
		is.leaderOnly(w)
		return
	}
	writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, op+": "+err.Error(), nil)
}

// writeStatus answers with this node's view of the cluster. Membership
// comes from the raft configuration, API addresses from the replicated
// member records.
func (is *Issuer) writeStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	servers, err := is.node.Servers(ctx)
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "servers: "+err.Error(), nil)
		return
	}
	st := is.node.Stats()
	leader, _ := is.node.Leader()
	out := ClusterStatus{Leader: leader, Node: is.cfg.NodeID, State: st.State, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, LastSnapshotIndex: st.LastSnapshotIndex, Servers: []ClusterNode{}}
	if !st.LastContact.IsZero() {
		lc := st.LastContact.UTC()
		out.LastContact = &lc
	}
	member := map[string]bool{}
	out.Servers = make([]ClusterNode, len(servers))
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	var wg sync.WaitGroup
	for i, s := range servers {
		rec, _ := is.state.Node(s.ID)
		out.Servers[i] = ClusterNode{ID: s.ID, RaftAddr: s.Addr, APIAddr: rec.APIAddr, Voter: s.Voter, Leader: s.ID == leader}
		member[s.ID] = true
		if s.Voter {
			out.Voters++
		}
		wg.Add(1)
		go func(n *ClusterNode) {
			defer wg.Done()
			n.Self = is.memberStats(pctx, n.ID, n.APIAddr)
			n.Reachable = n.Self != nil
		}(&out.Servers[i])
	}
	wg.Wait()
	for _, n := range is.state.Nodes() {
		if n.Removed && !member[n.ID] {
			out.Removed = append(out.Removed, n.ID)
		}
	}
	out.FailureTolerance = max(0, (out.Voters-1)/2)
	writeJSON(w, http.StatusOK, &out)
}

// A node removed from the cluster while it was down restarts on its old
// data believing it is still a member; one removed while running is
// simply no longer contacted. Either way its view (policy, keys) is
// frozen, and two removed nodes holding an old configuration could even
// elect each other. Such a node must not serve: it looks for evidence of
// its removal at start and then every removalCheckInterval, and once
// found, fails /readyz with the reason, refuses token requests (503
// unavailable) and tells the operator to reset its data directory.

// removalCheckInterval is how often a node asks the members it knows
// whether it still belongs; removalAskTimeout bounds one round.
const (
	removalCheckInterval = 3 * time.Second
	removalAskTimeout    = 2 * time.Second
)

// removal is evidence that this node is not a member of the cluster.
type removal struct {
	evidence string
	// final: a committed member record marks the node removed. A removed
	// id never joins again, so this is never revised; other evidence is
	// checked again every round.
	final bool
}

// peerView is one member's answer to GET /v1/internal/status; st is nil
// when it did not answer.
type peerView struct {
	id string
	st *NodeStats
}

// removalEvidence decides from this node's own member record and the
// other members' answers whether node self was removed. Only committed
// facts count as final: a record marking self removed, in this node's
// state or in any member's. A leader whose configuration lacks self is
// also evidence (the removal may have committed without its record), but
// not final. A follower's configuration may be stale and is never
// evidence; neither is a member that did not answer.
func removalEvidence(self string, ownRemoved bool, views []peerView) (removal, bool) {
	if ownRemoved {
		return removal{evidence: "its own replicated member record marks it removed", final: true}, true
	}
	for _, v := range views {
		if v.st != nil && slices.Contains(v.st.Removed, self) {
			return removal{evidence: "member " + v.id + "'s replicated records mark it removed", final: true}, true
		}
	}
	for _, v := range views {
		if v.st != nil && v.st.State == "Leader" && len(v.st.Members) > 0 && !slices.Contains(v.st.Members, self) {
			return removal{evidence: "the leader " + v.id + "'s configuration does not include it"}, true
		}
	}
	return removal{}, false
}

// removedReason returns why this node refuses to serve because it is no
// longer a member of the cluster, or "" when there is no such evidence.
func (is *Issuer) removedReason() string {
	r := is.removed.Load()
	if r == nil {
		return ""
	}
	return "this node was removed from the cluster (" + r.evidence + "): it does not serve; reset its data directory and join it again under a new node id"
}

// watchRemoval looks for evidence that this node was removed, at once and
// then every removalCheckInterval, until ctx ends or the evidence is
// final.
func (is *Issuer) watchRemoval(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r := is.removed.Load(); r != nil && r.final {
			return
		}
		is.checkRemoval(ctx)
		t.Reset(removalCheckInterval)
	}
}

// checkRemoval runs one round: this node's own record, then the answers
// of every other member its records list with an API address.
func (is *Issuer) checkRemoval(ctx context.Context) {
	self := is.cfg.NodeID
	own, _ := is.state.Node(self)
	var views []peerView
	if !own.Removed {
		actx, cancel := context.WithTimeout(ctx, removalAskTimeout)
		var addrs []string
		for _, n := range is.state.Nodes() {
			if n.ID != self && !n.Removed && n.APIAddr != "" {
				views = append(views, peerView{id: n.ID})
				addrs = append(addrs, n.APIAddr)
			}
		}
		var wg sync.WaitGroup
		for i := range views {
			wg.Add(1)
			go func() {
				defer wg.Done()
				views[i].st = is.memberStats(actx, views[i].id, addrs[i])
			}()
		}
		wg.Wait()
		cancel()
	}
	if ctx.Err() != nil {
		return
	}
	prev := is.removed.Load()
	if ev, ok := removalEvidence(self, own.Removed, views); ok {
		if prev == nil || *prev != ev {
			is.removed.Store(&ev)
			is.log.Error("this node was removed from the cluster and refuses to serve: its data directory is stale; "+
				"stop it, delete its data directory and join it again under a new node id",
				"node", self, "data_dir", is.cfg.DataDir, "evidence", ev.evidence)
		}
		return
	}
	if prev != nil && !prev.final {
		for _, v := range views {
			if v.st != nil && v.st.State == "Leader" {
				// The leader's configuration includes this node again.
				is.removed.Store(nil)
				is.log.Info("this node is a cluster member again", "node", self, "leader", v.id)
				return
			}
		}
	}
}

// memberOnly refuses requests with 503 unavailable while this node knows
// it was removed from the cluster: its view of policy and keys is frozen.
// Token exchange (form-encoded) gets the OAuth error form.
func (is *Issuer) memberOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		why := is.removedReason()
		if why == "" {
			next.ServeHTTP(w, r)
			return
		}
		f := unavailable(why)
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			writeOAuthError(w, f)
			return
		}
		writeProblem(w, f.status, f.problem, f.detail, nil)
	})
}
