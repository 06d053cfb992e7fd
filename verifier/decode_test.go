package verifier

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// normalizeToken makes two decodings comparable with reflect.DeepEqual:
// empty slices become nil, the decode error becomes its text.
func normalizeToken(t *token) (string, *token) {
	sub := ""
	if t.outOfSubset != nil {
		sub = t.outOfSubset.Error()
	}
	c := *t
	c.outOfSubset = nil
	c.blocks = append([]block(nil), t.blocks...)
	for i := range c.blocks {
		b := &c.blocks[i]
		b.symbols = nilIfEmpty(b.symbols)
		b.facts = normPreds(b.facts)
		b.rules = normRules(b.rules)
		if len(b.checks) == 0 {
			b.checks = nil
		} else {
			cs := make([]check, len(b.checks))
			for j, ch := range b.checks {
				cs[j] = check{queries: normRules(ch.queries)}
			}
			b.checks = cs
		}
	}
	return sub, &c
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normPreds(ps []predicate) []predicate {
	if len(ps) == 0 {
		return nil
	}
	out := make([]predicate, len(ps))
	for i, p := range ps {
		out[i] = predicate{name: p.name, terms: nilIfEmpty(p.terms)}
	}
	return out
}

func normRules(rs []rule) []rule {
	if len(rs) == 0 {
		return nil
	}
	out := make([]rule, len(rs))
	for i, r := range rs {
		out[i] = rule{head: normPreds([]predicate{r.head})[0], body: normPreds(r.body), ops: r.ops}
		for _, e := range r.exprs {
			out[i].exprs = append(out[i].exprs, nilIfEmpty(e))
		}
	}
	return out
}

// decodersAgree checks that decode.go and the pb reference accept the
// same input, refuse it in the same class (reasons may differ when an
// input has several defects) and, when accepting, decode the same token.
// The one allowed difference: decode.go refuses a repeated singular field.
func decodersAgree(t *testing.T, data []byte, lim *Limits) {
	t.Helper()
	fast, ferr := decodeToken(data, lim)
	ref, rerr := refDecodeToken(data, lim)
	switch {
	case ferr != nil && rerr != nil:
		return
	case ferr != nil && errors.Is(ferr, errRepeatedField):
		return
	case ferr != nil || rerr != nil:
		t.Fatalf("decode.go: %v; reference: %v", ferr, rerr)
	}
	fs, fn := normalizeToken(fast)
	rs, rn := normalizeToken(ref)
	if fs != rs {
		t.Fatalf("operator subset: decode.go %q, reference %q", fs, rs)
	}
	if !reflect.DeepEqual(fn, rn) {
		t.Fatalf("decodings differ:\ndecode.go %+v\nreference %+v", fn, rn)
	}
}

func TestDecodersAgree(t *testing.T) {
	lim := DefaultLimits()
	var seeds [][]byte
	for _, tc := range coreAuthCases() {
		seeds = append(seeds, tc.token(t))
	}
	for i, s := range seeds {
		decodersAgree(t, s, &lim)
		// Same class of refusal on the table, which has one defect per
		// token.
		_, ferr := decodeToken(s, &lim)
		_, rerr := refDecodeToken(s, &lim)
		if (ferr == nil) != (rerr == nil) || (ferr != nil && reasonOf(ferr) != reasonOf(rerr)) {
			t.Errorf("seed %d: decode.go %v, reference %v", i, ferr, rerr)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range 1 + rng.IntN(3) {
			if len(b) == 0 {
				break
			}
			switch j := rng.IntN(len(b)); rng.IntN(4) {
			case 0:
				b[j] ^= 1 << rng.IntN(8)
			case 1:
				b[j] = byte(rng.IntN(256))
			case 2:
				b = append(b[:j], b[j+1:]...)
			case 3:
				b = append(b[:j], append([]byte{byte(rng.IntN(256))}, b[j:]...)...)
			}
		}
		decodersAgree(t, b, &lim)
	}
}

// The decoder refuses what proto would merge or overwrite.
func TestDecodeRefusesRepeatedFields(t *testing.T) {
	tok := stdToken(t, authority{})
	lim := DefaultLimits()
	twice := protowire.AppendTag(append([]byte(nil), tok...), fBiscuitRootKeyID, protowire.VarintType)
	twice = protowire.AppendVarint(twice, 1)
	if _, err := decodeToken(twice, &lim); !errors.Is(err, errRepeatedField) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("rootKeyId twice: got %v, want a malformed repeated field", err)
	}
	if _, err := refDecodeToken(twice, &lim); err != nil {
		t.Fatalf("reference: got %v, want proto to accept it", err)
	}
}

// FuzzDecoders holds decode.go to the pb-based reference decoder.
func FuzzDecoders(f *testing.F) {
	for _, tc := range coreAuthCases() {
		f.Add(tc.token(f))
	}
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, data []byte) {
		decodersAgree(t, data, &lim)
	})
}
