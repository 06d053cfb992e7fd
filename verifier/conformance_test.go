package verifier

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
)

// biscuitModuleDir returns the directory of the biscuit-go module in the
// module cache.
func biscuitModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/biscuit-auth/biscuit-go/v2").Output()
	if err != nil {
		t.Skipf("go list -m biscuit-go: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// unsupportedSamples are the vectors of Biscuit v3.1 and later, which
// writ v1 refuses as unsupported (token.md §1). All five carry blocks of
// version 4; in addition:
//   - test024 third party: externalSignature on a block, publicKeys;
//   - test025 check all: the check kind field;
//   - test026 public keys interning: publicKeys and externalSignature;
//   - test027 integer wraparound: != and * on overflowing integers;
//   - test028 v4 expressions: !=, bitwise operators.
var unsupportedSamples = map[string]bool{
	"test024_third_party.bc":           true,
	"test025_check_all.bc":             true,
	"test026_public_keys_interning.bc": true,
	"test027_integer_wraparound.bc":    true,
	"test028_expressions_v4.bc":        true,
}

// TestConformanceBiscuitSamples runs biscuit-go's sample tokens through
// decoding and the signature path. Samples whose expected result is a
// Format error must be refused; the other v3.0 samples must pass (their
// Datalog results are about biscuit's authorizer, not writ's); the v3.1+
// samples must be refused as unsupported. Limits are relaxed: the samples
// exercise the format, not writ's bounds (test017 has 39 checks).
func TestConformanceBiscuitSamples(t *testing.T) {
	dir := filepath.Join(biscuitModuleDir(t), "samples", "data", "current")
	raw, err := os.ReadFile(filepath.Join(dir, "samples.json"))
	if err != nil {
		t.Fatalf("read samples.json: %v", err)
	}
	var samples struct {
		RootPublicKey string `json:"root_public_key"`
		Testcases     []struct {
			Filename    string                     `json:"filename"`
			Title       string                     `json:"title"`
			Validations map[string]json.RawMessage `json:"validations"`
		} `json:"testcases"`
	}
	if err := json.Unmarshal(raw, &samples); err != nil {
		t.Fatalf("parse samples.json: %v", err)
	}
	pub, err := hex.DecodeString(samples.RootPublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("root public key %q: %v", samples.RootPublicKey, err)
	}
	keys := coreKeySource{0: ed25519.PublicKey(pub)}
	lim := DefaultLimits()
	lim.MaxChecksPerBlock *= 4
	lim.MaxAuthorityFacts *= 4
	if len(samples.Testcases) < 28 {
		t.Fatalf("got %d samples, want at least 28", len(samples.Testcases))
	}
	var refusedByCompile []string
	for _, tc := range samples.Testcases {
		t.Run(tc.Filename, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tc.Filename))
			if err != nil {
				t.Fatal(err)
			}
			formatErr := false
			for _, v := range tc.Validations {
				formatErr = formatErr || strings.Contains(string(v), `"Format"`)
			}
			err = decodeAndVerify(data, keys, &lim)
			switch {
			case unsupportedSamples[tc.Filename]:
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("got %v, want ErrUnsupported (%s)", err, tc.Title)
				}
			case formatErr:
				if err == nil {
					t.Fatalf("got no error, want a refusal (%s)", tc.Title)
				}
				if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrLimitsExceeded) {
					t.Fatalf("got %v, want malformed, unknown key or bad signature", err)
				}
			default:
				if err != nil {
					t.Fatalf("got %v, want the signature path to pass (%s)", err, tc.Title)
				}
				// Informational: writ's vocabulary refuses most samples.
				tok, _ := decodeToken(data, &lim)
				if _, err := compile(tok, &lim); err != nil {
					refusedByCompile = append(refusedByCompile, tc.Filename+": "+reasonOf(err))
				}
			}
		})
	}
	t.Logf("v3.0 samples refused by writ's vocabulary: %v", refusedByCompile)
}

func decodeAndVerify(data []byte, keys KeySource, lim *Limits) error {
	tok, err := decodeToken(data, lim)
	if err != nil {
		return err
	}
	buf := chainBuffer(tok)
	_, buf, err = selectRootKey(tok, keys, lim, buf)
	if err != nil {
		return err
	}
	return verifyChain(tok, buf)
}

// The expected refusals of the Format samples, by reason.
func TestConformanceFormatReasons(t *testing.T) {
	dir := filepath.Join(biscuitModuleDir(t), "samples", "data", "current")
	raw, err := os.ReadFile(filepath.Join(dir, "samples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var samples struct {
		RootPublicKey string `json:"root_public_key"`
	}
	if err := json.Unmarshal(raw, &samples); err != nil {
		t.Fatal(err)
	}
	pub, _ := hex.DecodeString(samples.RootPublicKey)
	keys := coreKeySource{0: ed25519.PublicKey(pub)}
	lim := DefaultLimits()
	// Without rootKeyId every trusted key is tried on the authority block,
	// so a bad authority signature reads as an unknown key; with the key
	// named, it is a bad signature.
	for file, want := range map[string][2]error{
		"test002_different_root_key.bc":       {ErrUnknownKey, ErrBadSignature},
		"test003_invalid_signature_format.bc": {ErrMalformed, ErrMalformed},
		"test004_random_block.bc":             {ErrMalformed, ErrMalformed},
		"test005_invalid_signature.bc":        {ErrUnknownKey, ErrBadSignature},
		"test006_reordered_blocks.bc":         {ErrBadSignature, ErrBadSignature},
	} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeAndVerify(data, keys, &lim); !errors.Is(err, want[0]) {
			t.Errorf("%s: got %v, want %v", file, err, want[0])
		}
		named := editContainer(t, data, func(c *pb.Biscuit) { c.RootKeyId = u32(0) })
		if err := decodeAndVerify(named, keys, &lim); !errors.Is(err, want[1]) {
			t.Errorf("%s with rootKeyId: got %v, want %v", file, err, want[1])
		}
	}
}
