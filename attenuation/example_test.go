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

func ExampleAnyWindow() {
	token := baseToken(panicTB{}) // as received from the issuer

	// Usable on weekdays 09:00–18:00 in Paris, or Saturday 10:00–14:00.
	child, err := attenuation.Restrict(token, attenuation.AnyWindow(
		spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{1, 2, 3, 4, 5}, From: 9 * 60, To: 18 * 60},
		spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{time.Saturday}, From: 10 * 60, To: 14 * 60},
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	blocks, _, _ := attenuationtest.Datalog(child)
	fmt.Println(blocks[1].Checks[0] + ";")
	// Output:
	// check if local_time("Europe/Paris", $d, $m), [1, 2, 3, 4, 5].contains($d), $m >= 540, $m < 1080 or local_time("Europe/Paris", $d, $m), [6].contains($d), $m >= 600, $m < 840;
}
