package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
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
		writeProblem(w, http.StatusConflict, ProblemConflict, "node "+req.NodeID+" was removed; it may join again only under a new node id, or after an admin resets its record", nil)
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
