package spec

import (
	"errors"
	"fmt"
	"strings"
)

// Right is one permission: an operation on a resource or on every resource
// under a prefix. People write it "RESOURCE:OPERATION", e.g.
// "crm/contacts:read" or "crm/notes/*:read".
type Right struct {
	// Resource is an exact resource name, or a prefix ending in "/*".
	Resource string `json:"resource"`
	// Operation is matched exactly.
	Operation string `json:"operation"`
}

// Limits on the text of a right, shared by the issuer and the verifier.
const (
	MaxResourceBytes  = 512
	MaxOperationBytes = 64
)

// ErrBadRight is wrapped by every error ParseRight and Right.Validate return.
var ErrBadRight = errors.New("spec: bad right")

// ParseRight parses "RESOURCE:OPERATION". The operation is the text after
// the last colon, so resources may contain colons. It returns an error
// wrapping ErrBadRight when either part is empty, too long, contains
// control characters, or the resource uses "*" anywhere but a final "/*".
func ParseRight(s string) (Right, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Right{}, fmt.Errorf("%w: %q: want RESOURCE:OPERATION", ErrBadRight, s)
	}
	r := Right{Resource: s[:i], Operation: s[i+1:]}
	if err := r.Validate(); err != nil {
		return Right{}, err
	}
	return r, nil
}

// Validate reports whether r is well formed (see ParseRight).
func (r Right) Validate() error {
	switch {
	case r.Resource == "":
		return fmt.Errorf("%w: empty resource", ErrBadRight)
	case r.Operation == "":
		return fmt.Errorf("%w: %q: empty operation", ErrBadRight, r.Resource)
	case len(r.Resource) > MaxResourceBytes:
		return fmt.Errorf("%w: resource longer than %d bytes", ErrBadRight, MaxResourceBytes)
	case len(r.Operation) > MaxOperationBytes:
		return fmt.Errorf("%w: operation longer than %d bytes", ErrBadRight, MaxOperationBytes)
	case strings.ContainsAny(r.Operation, "*:"):
		return fmt.Errorf("%w: operation %q: '*' and ':' are not allowed", ErrBadRight, r.Operation)
	case hasControl(r.Resource) || hasControl(r.Operation):
		return fmt.Errorf("%w: control character", ErrBadRight)
	}
	star := strings.IndexByte(r.Resource, '*')
	if star >= 0 && (star != len(r.Resource)-1 || !strings.HasSuffix(r.Resource, "/*") || r.Resource == "/*") {
		return fmt.Errorf("%w: resource %q: '*' is only allowed as a final \"/*\" after a non-empty prefix", ErrBadRight, r.Resource)
	}
	return nil
}

// IsPrefix reports whether r covers every resource under a prefix.
func (r Right) IsPrefix() bool { return strings.HasSuffix(r.Resource, "/*") }

// Prefix returns the prefix a prefix right covers ("crm/" for "crm/*"),
// or "" for an exact right.
func (r Right) Prefix() string {
	if !r.IsPrefix() {
		return ""
	}
	return strings.TrimSuffix(r.Resource, "*")
}

// Covers reports whether r grants operation op on resource res. It is the
// reference semantics of the allow policy in token.md §4.
func (r Right) Covers(res, op string) bool {
	if op != r.Operation {
		return false
	}
	if r.IsPrefix() {
		return strings.HasPrefix(res, r.Prefix())
	}
	return res == r.Resource
}

// Within reports whether every (resource, operation) r covers is covered
// by outer: the narrowing relation used by policy and attenuation.
func (r Right) Within(outer Right) bool {
	if r.Operation != outer.Operation {
		return false
	}
	if !outer.IsPrefix() {
		return !r.IsPrefix() && r.Resource == outer.Resource
	}
	if r.IsPrefix() {
		return strings.HasPrefix(r.Prefix(), outer.Prefix())
	}
	return strings.HasPrefix(r.Resource, outer.Prefix())
}

// String returns "RESOURCE:OPERATION".
func (r Right) String() string { return r.Resource + ":" + r.Operation }

func hasControl(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
