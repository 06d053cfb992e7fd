package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"slices"

	"github.com/writ-dev/writ/spec"
)

// VersionPrefix starts every policy version.
const VersionPrefix = "sha256:"

// Policy is a parsed, checked and compiled issuance policy. It is
// immutable: every method is safe for concurrent use, and slices it
// returns belong to the caller.
type Policy struct {
	rules     []*rule
	canonical []byte
	version   string

	// Indexes from a subject or a right to the rules that name it, each
	// list in file order. prefixSubj is keyed by "spiffe://td/path/" for
	// the pattern "spiffe://td/path/*"; prefixRight by the right's Prefix()
	// ("crm/" for "crm/*").
	exactSubj   map[string][]int32
	prefixSubj  map[string][]int32
	exactRight  map[spec.Right][]int32
	prefixRight map[spec.Right][]int32
}

func compile(doc *document) *Policy {
	p := &Policy{
		rules:       doc.rules,
		canonical:   canonical(doc),
		exactSubj:   map[string][]int32{},
		prefixSubj:  map[string][]int32{},
		exactRight:  map[spec.Right][]int32{},
		prefixRight: map[spec.Right][]int32{},
	}
	sum := sha256.Sum256(p.canonical)
	p.version = VersionPrefix + hex.EncodeToString(sum[:])
	for i, r := range doc.rules {
		id := int32(i)
		for _, s := range r.subjects {
			if s.prefix != "" {
				p.prefixSubj[s.prefix] = append(p.prefixSubj[s.prefix], id)
			} else {
				p.exactSubj[s.exact] = append(p.exactSubj[s.exact], id)
			}
		}
		for _, rt := range r.rights {
			if rt.IsPrefix() {
				k := spec.Right{Resource: rt.Prefix(), Operation: rt.Operation}
				p.prefixRight[k] = append(p.prefixRight[k], id)
			} else {
				p.exactRight[rt] = append(p.exactRight[rt], id)
			}
		}
	}
	return p
}

// Version identifies the policy by its meaning: "sha256:" and the
// lowercase hex SHA-256 of Canonical(). Comments, layout, key order, list
// order within a rule, and whether a value was written in the rule or
// came from defaults do not change it; any change to what the policy
// grants does. Tokens carry it in their policy_version fact.
func (p *Policy) Version() string { return p.version }

// Canonical returns the canonical JSON form of the policy that Version
// hashes (spec/policy.md, "Versions"). The caller owns the returned slice.
func (p *Policy) Canonical() []byte { return slices.Clone(p.canonical) }

// RuleNames returns the names of the rules in file order.
func (p *Policy) RuleNames() []string {
	out := make([]string, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.name
	}
	return out
}

// matchSubject adds to set every rule one of whose subjects matches id, a
// valid SPIFFE ID string.
func (p *Policy) matchSubject(id string, set bitset) {
	for _, i := range p.exactSubj[id] {
		set.add(int(i))
	}
	// Every "/" after the trust domain ends a proper ancestor path, which
	// is what a "/*" pattern names.
	for k := len("spiffe://"); k < len(id); k++ {
		if id[k] == '/' {
			for _, i := range p.prefixSubj[id[:k+1]] {
				set.add(int(i))
			}
		}
	}
}

// matchRight adds to set every rule that has a right r with q.Within(r).
// A prefix right covers q when its prefix, which ends in "/", is a prefix
// of q's resource (or of q's own prefix): only the "/"-terminated
// prefixes of q need looking up.
func (p *Policy) matchRight(q spec.Right, set bitset) {
	res := q.Resource
	if q.IsPrefix() {
		res = q.Prefix()
	} else {
		for _, i := range p.exactRight[q] {
			set.add(int(i))
		}
	}
	for k := 0; k < len(res); k++ {
		if res[k] == '/' {
			for _, i := range p.prefixRight[spec.Right{Resource: res[:k+1], Operation: q.Operation}] {
				set.add(int(i))
			}
		}
	}
}

// bitset is a set of rule indexes.
type bitset []uint64

// newBitsets returns count empty sets for n rules, carved from buf when
// it is large enough (buf must be zeroed).
func newBitsets(n, count int, buf []uint64) [4]bitset {
	words := (n + 63) / 64
	if len(buf) < words*count {
		buf = make([]uint64, words*count)
	}
	var out [4]bitset
	for i := range count {
		out[i] = bitset(buf[i*words : (i+1)*words : (i+1)*words])
	}
	return out
}

func (b bitset) add(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitset) clear() {
	for i := range b {
		b[i] = 0
	}
}

func (b bitset) and(c bitset) {
	for i := range b {
		b[i] &= c[i]
	}
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

func (b bitset) intersects(c bitset) bool {
	for i := range b {
		if b[i]&c[i] != 0 {
			return true
		}
	}
	return false
}

// next returns the smallest member >= i, or -1.
func (b bitset) next(i int) int {
	for ; i < len(b)*64; i++ {
		w := b[i>>6] >> (uint(i) & 63)
		if w == 0 {
			i = (i | 63)
			continue
		}
		return i + bits.TrailingZeros64(w)
	}
	return -1
}
