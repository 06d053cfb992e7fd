package mint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
)

// benchClaims is a typical token: three rights, every kind of check.
func benchClaims() Claims {
	c := fullClaims()
	c.TokenID = ""
	c.Rights = append(c.Rights, spec.Right{Resource: "crm/accounts", Operation: "list"})
	return c
}

// BenchmarkMint measures Mint on a typical token, token id included.
func BenchmarkMint(b *testing.B) {
	key := testKey(b)
	c := benchClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Mint(rand.Reader, key, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareBiscuitMint builds the same token with biscuit-go's
// builder: the same facts, the same checks (built by the attenuation
// package, as Mint does), Serialize, and rootKeyId prepended.
func BenchmarkBareBiscuitMint(b *testing.B) {
	key := testKey(b)
	c := benchClaims()
	b.ReportAllocs()
	for b.Loop() {
		bareBiscuitMint(b, key, c)
	}
}

// BenchmarkBareBiscuitMintParallel is BenchmarkBareBiscuitMint on every
// core: the ceiling to compare the issuer's HTTP minting throughput with.
func BenchmarkBareBiscuitMintParallel(b *testing.B) {
	key := testKey(b)
	c := benchClaims()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bareBiscuitMint(b, key, c)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
}

// bareBiscuitMint is one bare biscuit-go mint: a fresh token id, the
// builder (bareMint) and rootKeyId prepended, as Mint's output carries it.
func bareBiscuitMint(b *testing.B, key Key, c Claims) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		b.Fatal(err)
	}
	c.TokenID = hex.EncodeToString(id[:])
	body := bareMint(b, rand.Reader, key, c)
	out := protowire.AppendVarint(protowire.AppendTag(make([]byte, 0, len(body)+6), 1, protowire.VarintType), uint64(key.ID))
	_ = append(out, body...)
}

// BenchmarkRestrict measures one attenuation of a minted token, for scale.
func BenchmarkRestrict(b *testing.B) {
	tok, _, err := Mint(rand.Reader, testKey(b), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	before := bytes.Clone(tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := attenuation.Restrict(tok, attenuation.MaxRecords(10), attenuation.OnlyFields("email")); err != nil {
			b.Fatal(err)
		}
	}
	if !bytes.Equal(tok, before) {
		b.Fatal("Restrict modified its input")
	}
}

// BenchmarkMintCryptoFloor is the signing work every mint must do, by any
// implementation: derive the next key pair from a seed and sign a block
// of the typical token's size. Mint's own overhead is the difference.
func BenchmarkMintCryptoFloor(b *testing.B) {
	key := testKey(b)
	tok, _, err := Mint(rand.Reader, key, benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, len(tok)-100)
	var seed [32]byte
	for b.Loop() {
		if _, err := rand.Read(seed[:]); err != nil {
			b.Fatal(err)
		}
		next := ed25519.NewKeyFromSeed(seed[:])
		copy(msg[len(msg)-32:], next[32:])
		_ = ed25519.Sign(key.Private, msg)
	}
}
