package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// benchPolicy has n rules for n/5 teams; the caller's team has 5 rules,
// one with a time window, and a trust-domain-wide rule comes last.
func benchPolicy(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {max_ttl: 15m}\nrules:\n")
	for i := 0; i < n-1; i++ {
		team := i / 5
		fmt.Fprintf(&b, "  - name: r%d\n    subjects: [\"spiffe://acme.example/agents/team%d/*\", \"spiffe://acme.example/agents/lead%d\"]\n", i, team, team)
		fmt.Fprintf(&b, "    rights: [\"app%d/res%d:read\", \"app%d/res%d/*:read\", \"app%d/res%d/*:write\", \"shared/docs/*:read\"]\n", team, i, team, i, team, i)
		fmt.Fprintf(&b, "    max_records: %d\n    fields: [a, b, c%d]\n    services: [\"spiffe://acme.example/services/app%d\"]\n", 10+i, i%3, team)
		if i%5 == 4 {
			b.WriteString("    time_windows: [{zone: Europe/Paris, days: [mon, tue, wed, thu, fri], from: \"08:00\", to: \"20:00\"}]\n")
		}
	}
	b.WriteString("  - name: everyone\n    subjects: [\"spiffe://acme.example/*\"]\n    rights: [\"public/*:read\"]\n")
	return b.String()
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustParse(b, benchPolicy(50))
	req := Request{
		Subject: spiffeid.RequireFromString("spiffe://acme.example/agents/team3/worker7"),
		Rights:  rights(b, "app3/res15:read", "app3/res16/x/y:read", "app3/res19/z:write"),
		TTL:     5 * time.Minute,
		Now:     time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	}
	if res := p.Evaluate(req); len(res.Granted) != 3 {
		b.Fatalf("got %+v, want 3 rights granted", res)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(req)
	}
}

func BenchmarkEvaluateDenied(b *testing.B) {
	p := mustParse(b, benchPolicy(50))
	req := Request{
		Subject: spiffeid.RequireFromString("spiffe://acme.example/agents/team3/worker7"),
		Rights:  rights(b, "app3/*:read"),
		Now:     time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(req)
	}
}

func BenchmarkEvaluate1000Rules(b *testing.B) {
	p := mustParse(b, benchPolicy(1000))
	req := Request{
		Subject: spiffeid.RequireFromString("spiffe://acme.example/agents/team3/worker7"),
		Rights:  rights(b, "app3/res15:read", "app3/res16/x/y:read", "app3/res19/z:write"),
		Now:     time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(req)
	}
}

func BenchmarkParseStarter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(Starter); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1000Rules(b *testing.B) {
	src := []byte(benchPolicy(1000))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseWorstShape measures the slowest 1 MiB inputs found within
// the YAML shape limits (limits.go): flow mappings of 32 keys and flow
// collections nested 8 deep, repeated to fill the file.
func BenchmarkParseWorstShape(b *testing.B) {
	var keys []string
	for i := 0; i < MaxKeysPerMapping; i++ {
		keys = append(keys, fmt.Sprintf("k%d: 1", i))
	}
	for name, unit := range map[string]string{
		"flow-maps-32-keys": "- {" + strings.Join(keys, ", ") + "}\n",
		"flow-depth-8":      "- " + strings.Repeat("[", MaxFlowDepth) + "a" + strings.Repeat("]", MaxFlowDepth) + "\n",
	} {
		src := []byte("x:\n" + strings.Repeat(unit, (MaxPolicyBytes-8)/len(unit)))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := Parse(src); err == nil {
					b.Fatal("got no error, want one")
				}
			}
		})
	}
}
