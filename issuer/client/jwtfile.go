package client

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// JWTFileSource is a jwtsvid.Source that reads one JWT-SVID from a file,
// again on every fetch, so that whatever rotates the file (a SPIRE agent
// helper, a Kubernetes projected volume) is followed without a restart.
// Create it with JWTFile. It is safe for concurrent use.
//
// The token is parsed with go-spiffe's jwtsvid.ParseInsecure, without
// checking its signature, only to refuse early a file that holds no
// JWT-SVID, one for another audience or subject, or an expired one
// (go-spiffe compares exp with the wall clock, with one minute of
// leeway). The issuer is what validates it.
type JWTFileSource struct {
	path string
}

// JWTFile returns a JWTFileSource for the file at path. The file holds
// the compact JWT, surrounding whitespace allowed, at most 16 KiB.
func JWTFile(path string) *JWTFileSource { return &JWTFileSource{path: path} }

// FetchJWTSVID reads and parses the file. It fails when ctx has ended,
// the file cannot be read or is too large, or the token is not a JWT-SVID
// whose audience contains params.Audience and params.ExtraAudiences and
// whose subject is params.Subject (when set). Errors never contain the
// token.
func (s *JWTFileSource) FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("client: JWT-SVID file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJWTFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client: JWT-SVID file %s: %w", s.path, err)
	}
	if len(b) > maxJWTFileBytes {
		return nil, fmt.Errorf("client: JWT-SVID file %s: larger than %d bytes", s.path, maxJWTFileBytes)
	}
	token := strings.TrimSpace(string(b))
	if !headerSafeJWT(token) {
		return nil, fmt.Errorf("client: JWT-SVID file %s: not a compact JWT", s.path)
	}
	var aud []string
	if params.Audience != "" {
		aud = []string{params.Audience}
	}
	svid, err := jwtsvid.ParseInsecure(token, aud)
	if err != nil {
		return nil, fmt.Errorf("client: JWT-SVID file %s: %w", s.path, err)
	}
	for _, a := range params.ExtraAudiences {
		if !slices.Contains(svid.Audience, a) {
			return nil, fmt.Errorf("client: JWT-SVID file %s: audience %q missing", s.path, a)
		}
	}
	if !params.Subject.IsZero() && svid.ID != params.Subject {
		return nil, fmt.Errorf("client: JWT-SVID file %s: subject is %s, want %s", s.path, svid.ID, params.Subject)
	}
	return svid, nil
}
