package client

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Token is a writ token as the issuer returned it. A *Token returned by
// Client.Token is shared by every caller until the next renewal: treat it
// and its slices as read-only.
//
// Value is a bearer secret. String, GoString and LogValue print the token
// id, never Value, so that logging a Token by mistake leaks nothing; do
// not log Value yourself.
type Token struct {
	// Value is the Biscuit token, base64url (padded): the text to send as
	// "Authorization: Bearer <Value>" (see Transport) or to attenuate.
	Value string
	// ID is the token id (32 hex digits), the one to log and revoke.
	ID string
	// ExpiresAt is the expiry the issuer stated (UTC).
	ExpiresAt time.Time
	// Granted are the rights the token carries, "RESOURCE:OPERATION".
	Granted []string
	// Denied are the requested rights the policy did not grant, with the
	// reason and the alternatives the caller could ask for instead.
	Denied []DeniedRight
	// PolicyVersion is the issuance policy that decided.
	PolicyVersion string
	// KeyID is the root key that signed the token.
	KeyID uint32
}

// String describes t without its value.
func (t Token) String() string {
	return fmt.Sprintf("writ token %s (key %d, expires %s)", t.ID, t.KeyID, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString describes t without its value, for %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("client.Token{ID: %q, KeyID: %d, ExpiresAt: %q, Value: <redacted>}", t.ID, t.KeyID, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// LogValue logs t as its id, key id and expiry, never its value.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_id", t.ID),
		slog.Uint64("key_id", uint64(t.KeyID)),
		slog.Time("expires_at", t.ExpiresAt),
	)
}

// TokenSource supplies tokens; *Client implements it. Token must be safe
// for concurrent use and may block until ctx ends.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}
