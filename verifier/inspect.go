package verifier

import (
	"encoding/hex"
	"time"

	"github.com/writ-dev/writ/spec"
)

// Inspection is a JSON-friendly view of a token, for people and the
// `writ token inspect` command. It is NOT verified: Inspect checks no
// signature and no key, so nothing in it may be trusted for a decision.
type Inspection struct {
	// RootKeyID is the token's rootKeyId, nil when absent.
	RootKeyID *uint32 `json:"root_key_id,omitempty"`
	// Sealed is true when the token carries a final signature and can no
	// longer be attenuated.
	Sealed bool `json:"sealed"`
	// The writ facts of the authority block (token.md §2); empty when
	// absent or not of the vocabulary's type.
	WritVersion   int64      `json:"writ_version,omitempty"`
	TokenID       string     `json:"token_id,omitempty"`
	Issuer        string     `json:"issuer,omitempty"`
	Agent         string     `json:"agent,omitempty"`
	IssuedAt      *time.Time `json:"issued_at,omitempty"`
	PolicyVersion string     `json:"policy_version,omitempty"`
	// Expiry is the earliest date of the expiry checks (check if
	// time($t), $t <= DATE) of all blocks; nil when there is none.
	Expiry *time.Time `json:"expiry,omitempty"`
	// Blocks are the token's blocks, authority first.
	Blocks []InspectedBlock `json:"blocks"`
}

// InspectedBlock is one block of an Inspection, its Datalog as text.
type InspectedBlock struct {
	Index int `json:"index"`
	// RevocationID is the lowercase hex of the block's signature, the id
	// that revokes this block and every token attenuated from it.
	RevocationID string   `json:"revocation_id"`
	Context      string   `json:"context,omitempty"`
	Facts        []string `json:"facts,omitempty"`
	Rules        []string `json:"rules,omitempty"`
	Checks       []string `json:"checks,omitempty"`
}

// Inspect decodes token (raw protobuf bytes) with DefaultLimits and
// describes it. It needs no key and verifies nothing. It returns an error
// wrapping ErrMalformed, ErrLimitsExceeded or ErrUnsupported when the
// token cannot be decoded as Biscuit v3.0; a token outside writ's
// vocabulary or operator subset (which Authorize refuses) is still
// described. Safe for concurrent use.
func Inspect(token []byte) (Inspection, error) {
	lim := DefaultLimits()
	t, err := decodeToken(token, &lim)
	if err != nil {
		return Inspection{}, err
	}
	in := Inspection{Sealed: t.finalSig != nil, Blocks: make([]InspectedBlock, len(t.blocks))}
	if t.hasRootKeyID {
		id := t.rootKeyID
		in.RootKeyID = &id
	}
	var expiry *int64
	for i := range t.blocks {
		b := &t.blocks[i]
		ib := InspectedBlock{Index: i, RevocationID: hex.EncodeToString(b.sig), Context: b.context}
		for j := range b.facts {
			ib.Facts = append(ib.Facts, factText(&b.facts[j], t.symbols))
		}
		for j := range b.rules {
			ib.Rules = append(ib.Rules, ruleText(&b.rules[j], t.symbols))
		}
		for j := range b.checks {
			ib.Checks = append(ib.Checks, checkText(&b.checks[j], t.symbols, 0))
			if d := expiryOf(&b.checks[j]); d != nil && (expiry == nil || uint64(*d) < uint64(*expiry)) {
				expiry = d
			}
		}
		in.Blocks[i] = ib
	}
	if expiry != nil {
		at := time.Unix(*expiry, 0).UTC()
		in.Expiry = &at
	}
	for _, f := range t.blocks[0].facts {
		if len(f.terms) != 1 || f.terms[0].isVar {
			continue
		}
		v := f.terms[0].val
		switch {
		case f.name == spec.FactWritVersion && v.kind == kindInt:
			in.WritVersion = v.num
		case f.name == spec.FactTokenID && v.kind == kindString:
			in.TokenID = v.str
		case f.name == spec.FactIssuer && v.kind == kindString:
			in.Issuer = v.str
		case f.name == spec.FactAgent && v.kind == kindString:
			in.Agent = v.str
		case f.name == spec.FactPolicyVersion && v.kind == kindString:
			in.PolicyVersion = v.str
		case f.name == spec.FactIssuedAt && v.kind == kindDate:
			at := time.Unix(v.num, 0).UTC()
			in.IssuedAt = &at
		}
	}
	return in, nil
}
