package attenuationtest

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"
)

// Request holds the ambient facts of token.md §3 for Authorize.
type Request struct {
	Time                time.Time
	Resource, Operation string
	Presenter, Service  string // empty: fact absent
	Records             int
	Fields              []string
	// HasRevocationAge adds the fact revocation_age(RevocationAgeMS), as
	// a verifier tracking freshness does (token.md §3); false: absent.
	HasRevocationAge bool
	RevocationAgeMS  int64
}

// ErrDenied is returned by Authorize when the token is well formed and
// correctly signed but a check fails or the allow policy does not match.
var ErrDenied = errors.New("attenuationtest: denied")

// Authorize runs biscuit-go's own authorizer on token with the ambient
// facts of req and the one allow policy of token.md §4, built from structs.
// It returns nil when allowed, an error wrapping ErrDenied when denied, and
// any other error when the token does not decode or verify.
//
// It is a reference for tests on small tokens built by writ: biscuit-go's
// authorizer has no limits on appended blocks and must never see
// untrusted tokens. Its 2 ms run limit is lifted to keep -race runs exact.
func Authorize(token []byte, root ed25519.PublicKey, req Request) error {
	tok, err := biscuit.Unmarshal(token)
	if err != nil {
		return fmt.Errorf("attenuationtest: unmarshal: %w", err)
	}
	a, err := tok.Authorizer(root, biscuit.WithWorldOptions(datalog.WithMaxDuration(time.Minute)))
	if err != nil {
		return fmt.Errorf("attenuationtest: verify signatures: %w", err)
	}
	fact := func(name string, terms ...biscuit.Term) {
		a.AddFact(biscuit.Fact{Predicate: biscuit.Predicate{Name: name, IDs: terms}})
	}
	now := time.Unix(req.Time.Unix(), 0).UTC()
	fact("time", biscuit.Date(now))
	fact("resource", biscuit.String(req.Resource))
	fact("operation", biscuit.String(req.Operation))
	if req.Presenter != "" {
		fact("presenter", biscuit.String(req.Presenter))
	}
	if req.Service != "" {
		fact("service", biscuit.String(req.Service))
	}
	fact("records", biscuit.Integer(req.Records))
	fields := make(biscuit.Set, len(req.Fields))
	for i, f := range req.Fields {
		fields[i] = biscuit.String(f)
	}
	fact("fields", fields)

	zones, err := zonesOf(token)
	if err != nil {
		return err
	}
	for _, z := range zones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			return fmt.Errorf("attenuationtest: zone %q: %w", z, err)
		}
		lt := now.In(loc)
		fact("local_time", biscuit.String(z), biscuit.Integer(lt.Weekday()), biscuit.Integer(lt.Hour()*60+lt.Minute()))
	}
	if req.HasRevocationAge {
		fact("revocation_age", biscuit.Integer(req.RevocationAgeMS))
	}

	v := func(s string) biscuit.Term { return biscuit.Variable(s) }
	head := biscuit.Predicate{Name: "query", IDs: []biscuit.Term{}}
	a.AddPolicy(biscuit.Policy{Kind: biscuit.PolicyKindAllow, Queries: []biscuit.Rule{
		{
			Head: head,
			Body: []biscuit.Predicate{
				{Name: "resource", IDs: []biscuit.Term{v("r")}},
				{Name: "operation", IDs: []biscuit.Term{v("o")}},
				{Name: "right", IDs: []biscuit.Term{v("r"), v("o")}},
			},
		},
		{
			Head: head,
			Body: []biscuit.Predicate{
				{Name: "resource", IDs: []biscuit.Term{v("r")}},
				{Name: "operation", IDs: []biscuit.Term{v("o")}},
				{Name: "right_prefix", IDs: []biscuit.Term{v("p"), v("o")}},
			},
			Expressions: []biscuit.Expression{{
				biscuit.Value{Term: v("r")}, biscuit.Value{Term: v("p")}, biscuit.BinaryPrefix,
			}},
		},
	}})
	if err := a.Authorize(); err != nil {
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	return nil
}

// zonesOf returns the zones named by local_time predicates in token.
func zonesOf(token []byte) ([]string, error) {
	blocks, _, err := Datalog(token)
	if err != nil {
		return nil, err
	}
	var zones []string
	for _, b := range blocks {
		for _, c := range b.Checks {
			rest := c
			for {
				i := strings.Index(rest, `local_time("`)
				if i < 0 {
					break
				}
				rest = rest[i+len(`local_time(`):]
				z, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return nil, fmt.Errorf("attenuationtest: local_time zone: %w", err)
				}
				zone, _ := strconv.Unquote(z)
				zones = append(zones, zone)
				rest = rest[len(z):]
			}
		}
	}
	return zones, nil
}
