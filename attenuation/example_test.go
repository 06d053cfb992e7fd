package attenuation_test

import (
	"fmt"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
)

func ExampleRestricter_Restrict() {
	token := baseToken(panicTB{}) // as received from the issuer

	// Hand a narrower token to a summarizer agent: read notes only, for
	// ten minutes, and only when it presents its own SVID.
	r := attenuation.Restricter{Now: func() time.Time { return time.Date(2026, 11, 27, 10, 1, 0, 0, time.UTC) }}
	child, err := r.Restrict(token,
		attenuation.OnlyRights(spec.Right{Resource: "crm/notes/*", Operation: "read"}),
		attenuation.ExpireIn(10*time.Minute),
		attenuation.BindPresenters("spiffe://acme.example/agents/summarizer"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	blocks, _, _ := attenuationtest.Datalog(child)
	for _, c := range blocks[1].Checks {
		fmt.Println(c + ";")
	}
	// Output:
	// check if resource($r), operation("read"), $r.starts_with("crm/notes/");
	// check if time($t), $t <= 2026-11-27T10:11:00Z;
	// check if presenter($p), ["spiffe://acme.example/agents/summarizer"].contains($p);
}
