package client_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/writ-dev/writ/issuer/client"
)

func TestJWTFile(t *testing.T) {
	a := newJWTAuthority(t, supportID)
	now := time.Now()
	valid := a.sign(t, supportID, issuerID.String(), now, 2*time.Minute)
	params := jwtsvid.Params{Audience: issuerID.String()}
	for _, tc := range []struct {
		name    string
		content string // nil file when "-"
		params  jwtsvid.Params
		want    string // "" = accepted
	}{
		{"ok/issuer-audience", valid, params, ""},
		{"ok/surrounding-whitespace", "\n  " + valid + "\r\n", params, ""},
		{"ok/no-audience-asked", valid, jwtsvid.Params{}, ""},
		{"ok/subject-asked", valid, jwtsvid.Params{Audience: issuerID.String(), Subject: supportID}, ""},
		{"fail/missing-file", "-", params, "no such file"},
		{"fail/empty", "", params, "not a compact JWT"},
		{"fail/too-large", strings.Repeat("a", 17<<10), params, "larger than"},
		{"fail/pem-not-jwt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", params, "not a compact JWT"},
		{"fail/two-tokens", valid + "\n" + valid, params, "not a compact JWT"},
		{"fail/other-audience", a.sign(t, supportID, crmID.String(), now, time.Minute), params, "audience"},
		{"fail/expired", a.sign(t, supportID, issuerID.String(), now.Add(-10*time.Minute), 5*time.Minute), params, "expired"},
		{"fail/other-subject", valid, jwtsvid.Params{Audience: issuerID.String(), Subject: billingID}, "subject"},
		{"fail/extra-audience-missing", valid, jwtsvid.Params{Audience: issuerID.String(), ExtraAudiences: []string{crmID.String()}}, "audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt")
			if tc.content != "-" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			svid, err := client.JWTFile(path).FetchJWTSVID(t.Context(), tc.params)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if svid.Marshal() != valid || svid.ID != supportID || !svid.Expiry.Equal(now.Add(2*time.Minute).Truncate(time.Second)) {
					t.Fatalf("got %s expiring %v (token kept: %v)", svid.ID, svid.Expiry, svid.Marshal() == valid)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if tc.content != "" && tc.content != "-" && strings.Contains(err.Error(), tc.content[:min(len(tc.content), 24)]) {
				t.Fatalf("error echoes the file: %v", err)
			}
		})
	}
	t.Run("fail/missing-file-is-fs-error", func(t *testing.T) {
		_, err := client.JWTFile(filepath.Join(t.TempDir(), "none")).FetchJWTSVID(t.Context(), params)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("fail/context-done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := client.JWTFile("/nonexistent").FetchJWTSVID(ctx, params); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("ok/rotation-is-followed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jwt")
		src := client.JWTFile(path)
		var got []string
		for i := range 2 {
			tok := a.sign(t, supportID, issuerID.String(), now.Add(time.Duration(i)*time.Second), time.Minute)
			// Rotate as agents do: write aside, rename over.
			if err := os.WriteFile(path+".new", []byte(tok), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
			svid, err := src.FetchJWTSVID(t.Context(), params)
			if err != nil || svid.Marshal() != tok {
				t.Fatalf("fetch %d: got %v, want the file's current token", i, err)
			}
			got = append(got, svid.Marshal())
		}
		if got[0] == got[1] {
			t.Fatal("rotated file served the old token")
		}
	})
}

var _ jwtsvid.Source = client.JWTFile("x")
