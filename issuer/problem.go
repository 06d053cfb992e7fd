package issuer

import (
	"encoding/json"
	"net/http"

	"github.com/writ-dev/writ/spec"
)

// Problem codes of the issuer's HTTP API (spec/openapi.yaml). Each maps to
// the type URI spec.ProblemType(code).
const (
	ProblemUnauthenticated = "unauthenticated"   // no credential, or one that does not verify
	ProblemForbidden       = "forbidden"         // authenticated but not allowed on this endpoint
	ProblemBadRequest      = "bad_request"       // malformed body or parameters
	ProblemTooLarge        = "request_too_large" // body over the limit
	ProblemNotGranted      = spec.ReasonNotGranted
	ProblemUnavailable     = "unavailable" // not ready: no leader, no key, no policy
	ProblemInternal        = "internal"
	ProblemNotFound        = "not_found"
	ProblemMethod          = "method_not_allowed"
	ProblemBadPolicy       = "bad_policy"
	ProblemNotLeader       = "not_leader"       // a membership change sent to a follower; Problem.Leader says where to go
	ProblemConflict        = "conflict"         // the change contradicts the cluster's state
	ProblemSyncBehind      = "sync_behind"      // the node has not applied the epoch the verifier holds
	ProblemSyncUnavailable = "sync_unavailable" // the node cannot vouch for its copy (no leader, no quorum)
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Denied lists rights that were not granted (not_granted only).
	Denied []DeniedRight `json:"denied,omitempty"`
	// PolicyVersion is the policy that decided (not_granted only).
	PolicyVersion string `json:"policy_version,omitempty"`
	// Leader is the API address of the current leader (not_leader only;
	// empty while there is none).
	Leader string `json:"leader,omitempty"`
}

var problemTitles = map[string]string{
	ProblemUnauthenticated: "Unauthenticated",
	ProblemForbidden:       "Forbidden",
	ProblemBadRequest:      "Bad request",
	ProblemTooLarge:        "Request too large",
	ProblemNotGranted:      "No requested right can be granted",
	ProblemUnavailable:     "Issuer unavailable",
	ProblemInternal:        "Internal error",
	ProblemNotFound:        "Not found",
	ProblemMethod:          "Method not allowed",
	ProblemBadPolicy:       "Invalid policy",
	ProblemNotLeader:       "Not the leader",
	ProblemConflict:        "Conflict",
	ProblemSyncBehind:      "Node behind the verifier",
	ProblemSyncUnavailable: "Sync unavailable on this node",
}

func writeProblem(w http.ResponseWriter, status int, code, detail string, extra func(*Problem)) {
	p := Problem{Type: spec.ProblemType(code), Title: problemTitles[code], Status: status, Detail: detail}
	if extra != nil {
		extra(&p)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(&p)
}
