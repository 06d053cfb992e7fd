package issuer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Audit record kinds.
const (
	AuditMint      = "token.mint"
	AuditDeny      = "token.deny"
	AuditPolicySet = "policy.set"
	AuditKeyAdd    = "key.add"
	AuditNodeSet   = "node.set"       // a node registered or changed its addresses
	AuditNodeJoin  = "cluster.join"   // an admin added a node
	AuditNodeLeave = "cluster.remove" // an admin removed a node
)

// AuditRecord is one entry of the tamper-evident audit trail. Seq, Prev and
// Hash are assigned by the state machine when the record is committed, so
// every node computes the same chain: Hash = SHA-256(Prev ‖ canonical JSON
// of the record with Hash empty). Records never contain tokens or keys.
type AuditRecord struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Hash string `json:"hash"`

	Time time.Time `json:"time"`
	Node string    `json:"node,omitempty"`
	Kind string    `json:"kind"`
	// Caller is the SPIFFE ID that made the request.
	Caller string `json:"caller"`
	// Credential is how the caller authenticated: "x509-svid" or
	// "jwt-svid" (token requests only).
	Credential string `json:"credential,omitempty"`
	// Requested, Granted: rights as "RESOURCE:OPERATION".
	Requested []string      `json:"requested,omitempty"`
	Granted   []string      `json:"granted,omitempty"`
	Denied    []AuditDenial `json:"denied,omitempty"`
	// Reason is a stable code for denials.
	Reason        string    `json:"reason,omitempty"`
	TokenID       string    `json:"token_id,omitempty"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	PolicyVersion string    `json:"policy_version,omitempty"`
	KeyID         uint32    `json:"key_id,omitempty"`
	// Subject is the node a cluster change is about, or what a
	// revocation covers ("token:<id>", "block:<id>", "agent:<id>@<time>").
	Subject string `json:"subject,omitempty"`
	// Note is the admin's free-text reason for a revocation or key change.
	Note string `json:"note,omitempty"`
}

// AuditDenial is one right that was not granted and why.
type AuditDenial struct {
	Right  string `json:"right"`
	Reason string `json:"reason"`
}

// chainHash computes the hash of r linked to prev. r.Hash is ignored.
func chainHash(prev string, r *AuditRecord) (string, error) {
	c := *r
	c.Hash = ""
	c.Prev = prev
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyAuditChain checks that records form an unbroken chain starting at
// record seq first with predecessor hash prev. It returns an error wrapping
// ErrAuditChain naming the first bad record.
func VerifyAuditChain(prev string, first uint64, records []AuditRecord) error {
	for i := range records {
		r := &records[i]
		if r.Seq != first+uint64(i) {
			return fmt.Errorf("%w: record %d has seq %d, want %d", ErrAuditChain, i, r.Seq, first+uint64(i))
		}
		if r.Prev != prev {
			return fmt.Errorf("%w: record %d: prev does not match", ErrAuditChain, r.Seq)
		}
		h, err := chainHash(prev, r)
		if err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrAuditChain, r.Seq, err)
		}
		if h != r.Hash {
			return fmt.Errorf("%w: record %d: hash does not match its content", ErrAuditChain, r.Seq)
		}
		prev = h
	}
	return nil
}
