package mint

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
)

// Key is a root signing key and the id tokens carry in rootKeyId.
type Key struct {
	ID      uint32
	Private ed25519.PrivateKey
}

// Validate reports whether k.Private is a well-formed Ed25519 private key
// whose public half matches its seed. Mint checks only the length, on every
// call; call Validate once when a key is loaded. The error wraps ErrBadKey.
func (k Key) Validate() error {
	if len(k.Private) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(k.Private), ed25519.PrivateKeySize)
	}
	want := ed25519.NewKeyFromSeed(k.Private.Seed())
	if !want.Public().(ed25519.PublicKey).Equal(k.Private.Public()) {
		return fmt.Errorf("%w: public half does not match the seed", ErrBadKey)
	}
	return nil
}

// Claims are what the issuer grants one token: the authority facts and
// checks of token.md §2. Zero-valued optional fields add no check.
type Claims struct {
	// TokenID is 32 lowercase hex digits; empty means 128 random bits
	// read from Mint's rng.
	TokenID string
	// Issuer is the issuer's SPIFFE ID; Agent is the subject's.
	Issuer, Agent string
	// IssuedAt and Expiry are rounded down to whole seconds; Expiry must
	// then be after IssuedAt.
	IssuedAt, Expiry time.Time
	// PolicyVersion is "sha256:" and 64 lowercase hex digits.
	PolicyVersion string
	// Rights are the permissions, at least one, at most MaxRights after
	// duplicates are dropped. Facts keep this order.
	Rights []spec.Right
	// Presenters, when set, binds the token to these SPIFFE IDs.
	Presenters []string
	// MaxRecords, when positive, caps the records one request may touch.
	MaxRecords int
	// Fields, when set, restricts the fields a request may read.
	Fields []string
	// Windows, when set, restrict use to recurring windows of local time.
	// Each inner list is one check (attenuation.AnyWindow), satisfied when
	// any of its windows is open; all lists must hold. An inner list holds
	// 1 to attenuation.MaxWindows windows; all lists together name at most
	// MaxTimeZones distinct zones. Checks keep the order of the lists.
	Windows [][]spec.TimeWindow
	// Services, when set, restricts the audience to these SPIFFE IDs.
	Services []string
	// MaxStaleness, when positive, makes the token usable only at
	// verifiers whose revocation list was current at most this long ago
	// (attenuation.MaxStaleness, token.md §2); verifiers that track no
	// freshness refuse it. Rounded down to the millisecond; 1 ms to
	// attenuation.MaxStalenessBound.
	MaxStaleness time.Duration
}

// Mint signs a token for c with key: the authority block of token.md §2
// (facts writ_version, token_id, issuer, agent, issued_at, policy_version,
// then one right or right_prefix per right; then the checks expiry,
// presenter, records, fields, one per window set, service, max
// staleness, those that apply)
// and rootKeyId = key.ID. It returns the serialized token and its token id.
//
// rng supplies the token id when c.TokenID is empty and the seed of the
// token's next key pair; it must be cryptographically secure. nil means
// crypto/rand.Reader.
//
// Errors wrap ErrBadClaims (and attenuation.ErrBadRestriction,
// spec.ErrBadRight or spec.ErrBadWindow when one of those explains it),
// ErrBadKey, ErrLimitExceeded, or are rng's. Mint is safe for concurrent
// use; it does not keep or modify c or key.
func Mint(rng io.Reader, key Key, c Claims) (token []byte, tokenID string, err error) {
	if len(key.Private) != ed25519.PrivateKeySize {
		return nil, "", fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(key.Private), ed25519.PrivateKeySize)
	}
	if rng == nil {
		rng = rand.Reader
	}
	v, err := validate(c)
	if err != nil {
		return nil, "", err
	}
	tokenID = c.TokenID
	if tokenID == "" {
		var id [16]byte
		if _, err := io.ReadFull(rng, id[:]); err != nil {
			return nil, "", fmt.Errorf("mint: read token id: %w", err)
		}
		tokenID = hex.EncodeToString(id[:])
	}
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rng, seed[:]); err != nil {
		return nil, "", fmt.Errorf("mint: read next key seed: %w", err)
	}

	e := encoders.Get().(*blockEncoder)
	defer encoders.Put(e)
	e.reset()

	e.addFact(fact(spec.FactWritVersion, biscuit.Integer(spec.TokenVersion)))
	e.addFact(fact(spec.FactTokenID, biscuit.String(tokenID)))
	e.addFact(fact(spec.FactIssuer, biscuit.String(c.Issuer)))
	e.addFact(fact(spec.FactAgent, biscuit.String(c.Agent)))
	e.addFact(fact(spec.FactIssuedAt, biscuit.Date(v.issuedAt)))
	e.addFact(fact(spec.FactPolicyVersion, biscuit.String(c.PolicyVersion)))
	for _, r := range v.rights {
		if r.IsPrefix() {
			e.addFact(fact(spec.FactRightPrefix, biscuit.String(r.Prefix()), biscuit.String(r.Operation)))
		} else {
			e.addFact(fact(spec.FactRight, biscuit.String(r.Resource), biscuit.String(r.Operation)))
		}
	}
	for _, ch := range v.checks {
		e.addCheck(ch)
	}
	if e.err != nil {
		return nil, "", fmt.Errorf("%w: encode authority block: %w", ErrBadClaims, e.err)
	}
	if len(e.syms) > MaxSymbols {
		return nil, "", fmt.Errorf("%w: %d symbols in the authority block, at most %d", ErrLimitExceeded, len(e.syms), MaxSymbols)
	}
	block := e.finish()

	next := ed25519.NewKeyFromSeed(seed[:])
	nextPub := next[ed25519.SeedSize:]
	// Signed payload: block ‖ u32le(algorithm Ed25519 = 0) ‖ next public key.
	signed := binary.LittleEndian.AppendUint32(block, 0)
	signed = append(signed, nextPub...)
	e.block = signed // keep the grown buffer for reuse
	sig := ed25519.Sign(key.Private, signed)

	token = appendContainer(make([]byte, 0, containerSize(len(block))), key.ID, block, nextPub, sig, seed[:])
	if len(token) > MaxTokenBytes {
		return nil, "", fmt.Errorf("%w: token is %d bytes, at most %d", ErrLimitExceeded, len(token), MaxTokenBytes)
	}
	return token, tokenID, nil
}

var encoders = sync.Pool{New: func() any { return newBlockEncoder() }}

// signedBlockSize is the size of the SignedBlock message around a block.
func signedBlockSize(blockLen int) int {
	keyMsg := 2 + 2 + ed25519.PublicKeySize // algorithm field, key field
	return 1 + protowire.SizeBytes(blockLen) +
		1 + protowire.SizeBytes(keyMsg) +
		1 + protowire.SizeBytes(ed25519.SignatureSize)
}

func containerSize(blockLen int) int {
	return 1 + protowire.SizeVarint(1<<32-1) +
		1 + protowire.SizeBytes(signedBlockSize(blockLen)) +
		1 + protowire.SizeBytes(2+ed25519.SeedSize)
}

// appendContainer writes the Biscuit message: rootKeyId (field 1, which
// biscuit-go's builder cannot set), the signed authority block and the
// proof holding the next secret, in field-number order.
func appendContainer(b []byte, rootKeyID uint32, block, nextPub, sig, nextSecret []byte) []byte {
	b = protowire.AppendTag(b, fBiscuitRootKeyID, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(rootKeyID))

	b = protowire.AppendTag(b, fBiscuitAuthority, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(signedBlockSize(len(block))))
	b = protowire.AppendTag(b, fSignedBlock, protowire.BytesType)
	b = protowire.AppendBytes(b, block)
	b = protowire.AppendTag(b, fSignedNextKey, protowire.BytesType)
	b = protowire.AppendVarint(b, 2+2+uint64(len(nextPub)))
	b = protowire.AppendTag(b, fKeyAlgorithm, protowire.VarintType)
	b = protowire.AppendVarint(b, 0) // Ed25519
	b = protowire.AppendTag(b, fKeyKey, protowire.BytesType)
	b = protowire.AppendBytes(b, nextPub)
	b = protowire.AppendTag(b, fSignedSignature, protowire.BytesType)
	b = protowire.AppendBytes(b, sig)

	b = protowire.AppendTag(b, fBiscuitProof, protowire.BytesType)
	b = protowire.AppendVarint(b, 2+uint64(len(nextSecret)))
	b = protowire.AppendTag(b, fProofNextSecret, protowire.BytesType)
	b = protowire.AppendBytes(b, nextSecret)
	return b
}

func fact(name string, terms ...biscuit.Term) biscuit.Fact {
	return biscuit.Fact{Predicate: biscuit.Predicate{Name: name, IDs: terms}}
}

func timeOf(d biscuit.Date) time.Time { return time.Time(d) }

// validated is what Mint derives from valid Claims.
type validated struct {
	issuedAt time.Time
	rights   []spec.Right
	checks   []biscuit.Check
}

func validate(c Claims) (validated, error) {
	var v validated
	badf := func(format string, args ...any) (validated, error) {
		return validated{}, fmt.Errorf("%w: %s", ErrBadClaims, fmt.Sprintf(format, args...))
	}
	if c.TokenID != "" && !isLowerHex(c.TokenID, 32) {
		return badf("token id %q: want 32 lowercase hex digits", c.TokenID)
	}
	for _, id := range [...]struct{ name, v string }{{"issuer", c.Issuer}, {"agent", c.Agent}} {
		if len(id.v) > MaxStringBytes {
			return badf("%s longer than %d bytes", id.name, MaxStringBytes)
		}
		sid, err := spiffeid.FromString(id.v)
		if err != nil {
			return badf("%s %q: %v", id.name, id.v, err)
		}
		if sid.String() != id.v {
			return badf("%s %q is not canonical (want %q)", id.name, id.v, sid.String())
		}
	}
	if c.IssuedAt.IsZero() || c.IssuedAt.Unix() <= 0 {
		return badf("issued-at %s is not after the Unix epoch", c.IssuedAt.UTC().Format(time.RFC3339))
	}
	v.issuedAt = time.Unix(c.IssuedAt.Unix(), 0).UTC()
	expiry := time.Unix(c.Expiry.Unix(), 0).UTC()
	if c.Expiry.IsZero() || !expiry.After(v.issuedAt) {
		return badf("expiry %s is not after issued-at %s", expiry.Format(time.RFC3339), v.issuedAt.Format(time.RFC3339))
	}
	if pv, ok := strings.CutPrefix(c.PolicyVersion, "sha256:"); !ok || !isLowerHex(pv, 64) {
		return badf("policy version %q: want \"sha256:\" and 64 lowercase hex digits", c.PolicyVersion)
	}

	if len(c.Rights) == 0 {
		return badf("no rights")
	}
	v.rights = make([]spec.Right, 0, len(c.Rights))
	for i, r := range c.Rights {
		if err := r.Validate(); err != nil {
			return validated{}, fmt.Errorf("%w: right %d: %w", ErrBadClaims, i, err)
		}
		if !slices.Contains(v.rights, r) {
			v.rights = append(v.rights, r)
		}
	}
	if len(v.rights) > MaxRights {
		return validated{}, fmt.Errorf("%w: %d rights, at most %d", ErrLimitExceeded, len(v.rights), MaxRights)
	}

	// The checks, in the order of token.md §2, built by the attenuation
	// package so that a check reads the same in every block.
	rs := make([]attenuation.Restriction, 0, 6+len(c.Windows))
	rs = append(rs, attenuation.ExpireBy(expiry))
	if len(c.Presenters) > 0 {
		rs = append(rs, attenuation.BindPresenters(c.Presenters...))
	}
	switch {
	case c.MaxRecords < 0:
		return badf("max records %d is negative", c.MaxRecords)
	case c.MaxRecords > 0:
		rs = append(rs, attenuation.MaxRecords(c.MaxRecords))
	}
	if len(c.Fields) > 0 {
		rs = append(rs, attenuation.OnlyFields(c.Fields...))
	}
	var zones []string
	for _, set := range c.Windows {
		for _, w := range set {
			if !slices.Contains(zones, w.Zone) {
				zones = append(zones, w.Zone)
			}
		}
	}
	if len(zones) > MaxTimeZones {
		return validated{}, fmt.Errorf("%w: %d distinct time zones, at most %d", ErrLimitExceeded, len(zones), MaxTimeZones)
	}
	for i, set := range c.Windows {
		r := attenuation.AnyWindow(set...)
		if err := r.Err(); err != nil {
			return validated{}, fmt.Errorf("%w: window set %d: %w", ErrBadClaims, i, err)
		}
		rs = append(rs, r)
	}
	if len(c.Services) > 0 {
		rs = append(rs, attenuation.OnlyServices(c.Services...))
	}
	switch {
	case c.MaxStaleness < 0:
		return badf("max staleness %s is negative", c.MaxStaleness)
	case c.MaxStaleness > 0:
		rs = append(rs, attenuation.MaxStaleness(c.MaxStaleness)) // invalid: refused below, by Check
	}
	if len(rs) > MaxChecks {
		return validated{}, fmt.Errorf("%w: %d checks, at most %d", ErrLimitExceeded, len(rs), MaxChecks)
	}
	v.checks = make([]biscuit.Check, len(rs))
	for i, r := range rs {
		ch, err := r.Check(v.issuedAt)
		if err != nil {
			return validated{}, fmt.Errorf("%w: %w", ErrBadClaims, err)
		}
		v.checks[i] = ch
	}
	return v, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
