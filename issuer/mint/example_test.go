package mint_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/spec"
)

func ExampleMint() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tok, _, err := mint.Mint(rand.Reader, mint.Key{ID: 1, Private: priv}, mint.Claims{
		TokenID:       "5f0c0000000000000000000000000001",
		Issuer:        "spiffe://acme.example/writ",
		Agent:         "spiffe://acme.example/agents/support",
		IssuedAt:      now,
		Expiry:        now.Add(5 * time.Minute),
		PolicyVersion: "sha256:9c1e000000000000000000000000000000000000000000000000000000000001",
		Rights: []spec.Right{
			{Resource: "crm/contacts", Operation: "read"},
			{Resource: "crm/notes/*", Operation: "read"},
		},
		Presenters: []string{"spiffe://acme.example/agents/support"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	blocks, rootKeyID, _ := attenuationtest.Datalog(tok)
	fmt.Println("rootKeyId:", *rootKeyID)
	for _, f := range blocks[0].Facts {
		fmt.Println(f + ";")
	}
	for _, c := range blocks[0].Checks {
		fmt.Println(c + ";")
	}
	// Output:
	// rootKeyId: 1
	// writ_version(1);
	// token_id("5f0c0000000000000000000000000001");
	// issuer("spiffe://acme.example/writ");
	// agent("spiffe://acme.example/agents/support");
	// issued_at(2026-11-27T10:00:00Z);
	// policy_version("sha256:9c1e000000000000000000000000000000000000000000000000000000000001");
	// right("crm/contacts", "read");
	// right_prefix("crm/notes/", "read");
	// check if time($t), $t <= 2026-11-27T10:05:00Z;
	// check if presenter($p), ["spiffe://acme.example/agents/support"].contains($p);
}
