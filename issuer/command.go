package issuer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// commandVersion is the version of the replicated command encoding. A node
// refuses commands of any other version (fail closed): a mixed-version
// cluster must upgrade readers before writers.
const commandVersion = 1

// Command types. Unknown types are refused, never ignored.
const (
	cmdKeyAdd      = "key.add"
	cmdPolicySet   = "policy.set"
	cmdAuditAppend = "audit.append"
	cmdNodeSet     = "node.set"
	cmdRevoke      = "revoke"    // add one revocation
	cmdPrune       = "prune"     // drop expired revocations and unpublished keys
	cmdKeyState    = "key.state" // a root key changes state (rotation, revocation)
)

// command is the envelope of every entry the issuer writes to the raft log.
// A key or policy change carries its own audit record, applied in the same
// step, so no change can be live without being on the record.
type command struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// ID makes the command idempotent: the state machine applies a given
	// ID once, and a retry (after a timeout, a lost answer or a leader
	// change) gets the first application's result. Writers always set it;
	// entries written before IDs existed have none and are applied as is.
	ID     string        `json:"id,omitempty"`
	Key    *keyRecord    `json:"key,omitempty"`
	Policy *policyRecord `json:"policy,omitempty"`
	Node   *nodeRecord   `json:"node,omitempty"`
	// Revocation (revoke), Prune (prune), KeyState (key.state).
	Revocation *revocationRecord `json:"revocation,omitempty"`
	Prune      *pruneRecord      `json:"prune,omitempty"`
	KeyState   *keyStateRecord   `json:"key_state,omitempty"`
	Audit      []*AuditRecord    `json:"audit,omitempty"`
}

// keyRecord is a root key as replicated: public half in clear, private
// half sealed under the KEK.
type keyRecord struct {
	ID        uint32    `json:"id"`
	Public    []byte    `json:"public"`
	Sealed    []byte    `json:"sealed"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// ActivatedAt: when the key started signing (zero while prepared).
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	// NotAfter is when a retiring or revoked key stops being published:
	// every token it signed has expired by then. Zero while it signs.
	NotAfter time.Time `json:"not_after,omitzero"`
	// Epoch: the raft index that added the key (set by apply).
	Epoch uint64 `json:"epoch,omitempty"`
}

// Root key states (spec/sync.md §3). A key is added prepared (published,
// not signing) or, for the first key, active; activating a prepared key
// makes the active one retiring; any key may be revoked.
const (
	keyPrepared = "prepared"
	keyActive   = "active"
	keyRetiring = "retiring"
	keyRevoked  = "revoked"
)

// policyRecord is one version of the issuance policy.
type policyRecord struct {
	Version string    `json:"version"`
	Source  []byte    `json:"source"`
	SetBy   string    `json:"set_by"`
	SetAt   time.Time `json:"set_at"`
}

// nodeRecord is a cluster member as the issuers know it: where its API
// answers (for forwarding writes to the leader) and its raft address.
// Removed members keep a record with Removed set, so that a node whose
// data says it was removed does not serve as if it still belonged.
type nodeRecord struct {
	ID       string    `json:"id"`
	APIAddr  string    `json:"api_addr"`
	RaftAddr string    `json:"raft_addr"`
	Removed  bool      `json:"removed,omitempty"`
	SetAt    time.Time `json:"set_at"`
}

func encodeCommand(c *command) ([]byte, error) {
	c.V = commandVersion
	if c.ID == "" {
		id, err := newCommandID()
		if err != nil {
			return nil, err
		}
		c.ID = id
	}
	return json.Marshal(c)
}

// commandIDLen is the length of a command ID: 16 random bytes in hex.
const commandIDLen = 32

func newCommandID() (string, error) {
	var b [commandIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("issuer: command id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func validCommandID(id string) bool { return len(id) == commandIDLen && isLowerHex(id) }

// decodeCommand decodes strictly: unknown fields, unknown types, other
// versions and trailing bytes are errors wrapping ErrBadCommand.
func decodeCommand(b []byte) (*command, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c command
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data", ErrBadCommand)
	}
	if c.ID != "" && !validCommandID(c.ID) {
		return nil, fmt.Errorf("%w: id must be %d lowercase hex digits", ErrBadCommand, commandIDLen)
	}
	if c.V != commandVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadCommand, c.V, commandVersion)
	}
	payloads := 0
	for _, set := range []bool{c.Key != nil, c.Policy != nil, c.Node != nil, c.Revocation != nil, c.Prune != nil, c.KeyState != nil} {
		if set {
			payloads++
		}
	}
	// only: the command carries exactly the payload its type names.
	only := func(set bool) bool { return set && payloads == 1 }
	switch c.Type {
	case cmdRevoke:
		if !only(c.Revocation != nil) || len(c.Audit) != 1 {
			return nil, fmt.Errorf("%w: %s wants exactly a revocation and its audit record", ErrBadCommand, c.Type)
		}
	case cmdPrune:
		if !only(c.Prune != nil) || len(c.Audit) != 1 {
			return nil, fmt.Errorf("%w: %s wants exactly a prune time and its audit record", ErrBadCommand, c.Type)
		}
	case cmdKeyState:
		if !only(c.KeyState != nil) || len(c.Audit) != 1 {
			return nil, fmt.Errorf("%w: %s wants exactly a key state change and its audit record", ErrBadCommand, c.Type)
		}
	case cmdNodeSet:
		if !only(c.Node != nil) || len(c.Audit) != 1 || c.Node.ID == "" || len(c.Node.ID) > 128 {
			return nil, fmt.Errorf("%w: %s wants exactly a node record with an id and its audit record", ErrBadCommand, c.Type)
		}
	case cmdKeyAdd:
		if !only(c.Key != nil) || len(c.Audit) != 1 {
			return nil, fmt.Errorf("%w: %s wants exactly a key and its audit record", ErrBadCommand, c.Type)
		}
	case cmdPolicySet:
		if !only(c.Policy != nil) || len(c.Audit) != 1 {
			return nil, fmt.Errorf("%w: %s wants exactly a policy and its audit record", ErrBadCommand, c.Type)
		}
	case cmdAuditAppend:
		if len(c.Audit) == 0 || payloads != 0 {
			return nil, fmt.Errorf("%w: %s wants audit records only", ErrBadCommand, c.Type)
		}
	default:
		return nil, fmt.Errorf("%w: unknown type %q", ErrBadCommand, c.Type)
	}
	return &c, nil
}
