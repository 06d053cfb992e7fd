package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
)

// maxJWTSVIDInput bounds a JWT-SVID read from a file or stdin.
const maxJWTSVIDInput = 64 << 10

// mintCredential is how `token mint` authenticates and verifies the
// issuer: TLS settings (with or without a client certificate) and, for
// JWT-SVID callers, the bearer credential.
type mintCredential struct {
	tls    *tls.Config
	jwt    string
	closer func() error
}

func runTokenMint(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "token mint", "writ token mint --server URL (--bundle FILE (--svid CERT --svid-key KEY | --jwt-svid FILE|-) | --workload-api SOCKET [--jwt]) --right RES:OP ... [--ttl D] [--audience ID] [--exchange]")
	cf := addClientFlags(fs)
	ttl := fs.Duration("ttl", 0, "token lifetime (default: the issuer's default)")
	var rights listFlag
	fs.Var(&rights, "right", "RESOURCE:OPERATION to request (repeatable; RESOURCE may end in /*)")
	asJSON := fs.Bool("json", false, "print the whole response as JSON instead of the token")
	wapi := fs.String("workload-api", "", "get the agent's SVID and the trust bundle from the SPIFFE Workload API at this address (unix:///path/agent.sock)")
	jwtFile := fs.String("jwt-svid", "", "authenticate with the JWT-SVID in this file ('-': stdin) instead of mTLS")
	useJWT := fs.Bool("jwt", false, "with --workload-api: authenticate with a JWT-SVID for the issuer's audience instead of mTLS")
	audience := fs.String("audience", "", "SPIFFE ID of the one service the token is for")
	exchange := fs.Bool("exchange", false, "use OAuth 2.0 token exchange (RFC 8693) with the JWT-SVID as subject_token")
	wait := fs.Duration("wait", 30*time.Second, "with --workload-api: how long to wait for an identity")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *ttl < 0:
		return usagef("token mint: --ttl must be positive")
	case len(pos) > 0:
		return usagef("token mint: unexpected argument %q", pos[0])
	case len(rights) == 0:
		return usagef("token mint: at least one --right is required")
	case *wait <= 0:
		return usagef("token mint: --wait must be positive")
	case *exchange && *ttl > 0:
		return usagef("token mint: --ttl is not a token-exchange parameter; drop --exchange or --ttl")
	}
	for _, r := range rights {
		if _, err := spec.ParseRight(r); err != nil {
			return usagef("token mint: --right: %v", err)
		}
	}
	if *audience != "" {
		if _, err := spiffeid.FromString(*audience); err != nil {
			return usagef("token mint: --audience: %v", err)
		}
	}
	if u, err := url.Parse(*cf.server); err != nil || u.Scheme != "https" || u.Host == "" {
		return usagef("token mint: --server %q: want https://host:port (credentials never go over plain HTTP)", *cf.server)
	}
	cred, err := mintCredentials(ctx, e, cf, *wapi, *wait, *jwtFile, *useJWT)
	if err != nil {
		return err
	}
	defer cred.closer()
	if *exchange && cred.jwt == "" {
		return usagef("token mint: --exchange needs a JWT-SVID (--jwt-svid, or --workload-api with --jwt)")
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cred.tls},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	endpoint := strings.TrimRight(*cf.server, "/") + "/v1/token"

	var hreq *http.Request
	if *exchange {
		form := url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {cred.jwt},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"scope":              {strings.Join(rights, " ")},
		}
		if *audience != "" {
			form.Set("audience", *audience)
		}
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err == nil {
			hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req := issuer.TokenRequest{Rights: rights, Audience: *audience}
		if *ttl > 0 {
			req.TTL = ttl.String()
		}
		body, _ := json.Marshal(&req)
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err == nil {
			hreq.Header.Set("Content-Type", "application/json")
			if cred.jwt != "" {
				hreq.Header.Set("Authorization", "Bearer "+cred.jwt)
			}
		}
	}
	if err != nil {
		return usagef("token mint: --server: %v", err)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return fmt.Errorf("token mint: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("token mint: %w", err)
	}
	if *exchange {
		return printExchange(e, resp, rb, *asJSON)
	}
	if resp.StatusCode != http.StatusOK {
		e.stderr.Write(rb)
		var p issuer.Problem
		if json.Unmarshal(rb, &p) == nil && p.Type == spec.ProblemType(spec.ReasonNotGranted) {
			return deniedError{}
		}
		return fmt.Errorf("token mint: issuer answered %s", resp.Status)
	}
	var tr issuer.TokenResponse
	if err := json.Unmarshal(rb, &tr); err != nil {
		return fmt.Errorf("token mint: response: %w", err)
	}
	if *asJSON {
		e.stdout.Write(rb)
		return nil
	}
	for _, d := range tr.Denied {
		fmt.Fprintf(e.stderr, "writ: not granted: %s (%s)", d.Right, d.Reason)
		if len(d.Alternatives) > 0 {
			fmt.Fprintf(e.stderr, "; could ask for: %s", strings.Join(d.Alternatives, ", "))
		}
		fmt.Fprintln(e.stderr)
	}
	fmt.Fprintln(e.stdout, tr.Token)
	return nil
}

func printExchange(e env, resp *http.Response, rb []byte, asJSON bool) error {
	if resp.StatusCode != http.StatusOK {
		e.stderr.Write(rb)
		var oe issuer.ExchangeError
		if json.Unmarshal(rb, &oe) == nil && oe.Error == "invalid_scope" {
			return deniedError{}
		}
		return fmt.Errorf("token mint: issuer answered %s", resp.Status)
	}
	var er issuer.ExchangeResponse
	if err := json.Unmarshal(rb, &er); err != nil {
		return fmt.Errorf("token mint: response: %w", err)
	}
	if asJSON {
		e.stdout.Write(rb)
		return nil
	}
	fmt.Fprintln(e.stdout, er.AccessToken)
	return nil
}

// mintCredentials builds the TLS settings and credential of token mint
// from the flags: files (--bundle with --svid/--svid-key or --jwt-svid) or
// the Workload API.
func mintCredentials(ctx context.Context, e env, cf clientFlags, wapi string, wait time.Duration, jwtFile string, useJWT bool) (*mintCredential, error) {
	noop := func() error { return nil }
	if wapi != "" {
		if err := checkWorkloadAPIAddr(wapi); err != nil {
			return nil, usagef("token mint: --workload-api: %v", err)
		}
		if *cf.bundle != "" || *cf.cert != "" || *cf.key != "" || jwtFile != "" {
			return nil, usagef("token mint: --workload-api replaces --bundle, --svid, --svid-key and --jwt-svid")
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		src, err := workloadapi.NewX509Source(wctx, workloadapi.WithClientOptions(workloadapi.WithAddr(wapi)))
		if err != nil {
			return nil, fmt.Errorf("token mint: no X.509-SVID from the workload API at %s within %v (is this workload registered?): %w", wapi, wait, err)
		}
		svid, err := src.GetX509SVID()
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("token mint: workload API: %w", err)
		}
		issuerID, err := issuerIDFor(*cf.issuerID, svid.ID.TrustDomain())
		if err != nil {
			src.Close()
			return nil, err
		}
		if !useJWT {
			return &mintCredential{tls: tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(issuerID)), closer: src.Close}, nil
		}
		jsrc, err := workloadapi.NewJWTSource(wctx, workloadapi.WithClientOptions(workloadapi.WithAddr(wapi)))
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("token mint: workload API %s: %w", wapi, err)
		}
		defer jsrc.Close()
		jwt, err := jsrc.FetchJWTSVID(wctx, jwtsvid.Params{Audience: issuerID.String()})
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("token mint: workload API: JWT-SVID: %w", err)
		}
		return &mintCredential{tls: tlsconfig.TLSClientConfig(src, tlsconfig.AuthorizeID(issuerID)), jwt: jwt.Marshal(), closer: src.Close}, nil
	}
	if useJWT {
		return nil, usagef("token mint: --jwt needs --workload-api; use --jwt-svid FILE with files")
	}
	if *cf.bundle == "" {
		return nil, usagef("token mint: --bundle (or --workload-api) is required")
	}
	if jwtFile != "" {
		if *cf.cert != "" || *cf.key != "" {
			return nil, usagef("token mint: use either --jwt-svid or --svid/--svid-key")
		}
		b, auth, err := cf.trust()
		if err != nil {
			return nil, err
		}
		jwt, err := readJWTSVID(e, jwtFile)
		if err != nil {
			return nil, err
		}
		return &mintCredential{tls: tlsconfig.TLSClientConfig(b, auth), jwt: jwt, closer: noop}, nil
	}
	if *cf.cert == "" || *cf.key == "" {
		return nil, usagef("token mint: --svid and --svid-key (or --jwt-svid, or --workload-api) are required")
	}
	cfg, err := cf.mtls()
	if err != nil {
		return nil, err
	}
	return &mintCredential{tls: cfg, closer: noop}, nil
}

// issuerIDFor returns the --issuer-id flag, or spiffe://<td>/writ.
func issuerIDFor(flagValue string, td spiffeid.TrustDomain) (spiffeid.ID, error) {
	if flagValue == "" {
		return spiffeid.FromPath(td, defaultIssuerPath)
	}
	id, err := spiffeid.FromString(flagValue)
	if err != nil {
		return spiffeid.ID{}, usagef("--issuer-id: %v", err)
	}
	return id, nil
}

// readJWTSVID reads a JWT-SVID from a file or stdin ("-"), trimmed.
func readJWTSVID(e env, name string) (string, error) {
	var r io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("token mint: --jwt-svid: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxJWTSVIDInput+1))
	if err != nil {
		return "", fmt.Errorf("token mint: --jwt-svid: %w", err)
	}
	if len(b) > maxJWTSVIDInput {
		return "", usagef("token mint: --jwt-svid: larger than %d bytes", maxJWTSVIDInput)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", usagef("token mint: --jwt-svid: want one JWT-SVID")
	}
	return tok, nil
}
