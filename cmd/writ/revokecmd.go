package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/verifier"
)

// runRevoke serves `writ revoke`: one revocation through the admin API,
// optionally waiting until the verifiers hold it.
func runRevoke(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "revoke", "writ revoke (--token FILE|- | --token-id ID | --block ID | --agent SPIFFE_ID [--before TIME] | --key ID) [--reason TEXT] [--wait [--share 1.0] [--wait-timeout 5s]] --server URL --bundle FILE --svid CERT --svid-key KEY")
	cf := addClientFlags(fs)
	tokenFile := fs.String("token", "", "revoke this token (a file holding it, or - for stdin); with --block-of N, one of its blocks instead")
	blockOf := fs.Int("block-of", -1, "with --token: revoke block N of the token (0 = authority), i.e. it and every token attenuated from that block")
	tokenID := fs.String("token-id", "", "revoke the token with this token_id (32 hex digits)")
	block := fs.String("block", "", "revoke a block's revocation id (128 hex digits): every token attenuated from it")
	agent := fs.String("agent", "", "revoke every token of this agent SPIFFE ID issued before --before")
	before := fs.String("before", "", "with --agent: RFC 3339 time (default: now)")
	key := fs.Uint("key", 0, "revoke this root key id: every token it signed")
	reason := fs.String("reason", "", "why (kept in the revocation and the audit record)")
	wait := fs.Bool("wait", false, "return once --share of the live verifiers hold the revocation")
	share := fs.Float64("share", 1.0, "with --wait: share of live verifiers, more than 0 and at most 1")
	waitTimeout := fs.Duration("wait-timeout", 5*time.Second, "with --wait: give up after this long")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("revoke: unexpected argument %q", pos[0])
	}
	req := issuer.RevokeRequest{Reason: *reason}
	if *blockOf >= 0 && *tokenFile == "" {
		return usagef("revoke: --block-of goes with --token")
	}
	if *tokenFile != "" {
		tok, err := readToken(e, []string{*tokenFile})
		if err != nil {
			return err
		}
		info, err := verifier.Inspect(tok)
		if err != nil {
			return usagef("revoke: --token: %v", err)
		}
		switch {
		case *blockOf >= len(info.Blocks):
			return usagef("revoke: --block-of %d: the token has %d blocks", *blockOf, len(info.Blocks))
		case *blockOf >= 0:
			*block = info.Blocks[*blockOf].RevocationID
		case info.TokenID == "":
			return usagef("revoke: --token: the token has no token_id")
		default:
			*tokenID = info.TokenID
		}
	}
	n := 0
	for _, set := range []bool{*tokenID != "", *block != "", *agent != "", *key != 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return usagef("revoke: want exactly one of --token, --token-id, --block, --agent, --key")
	}
	switch {
	case *tokenID != "":
		req.Kind, req.ID = issuer.RevokeToken, *tokenID
	case *block != "":
		req.Kind, req.ID = issuer.RevokeBlock, *block
	case *agent != "":
		req.Kind, req.Agent = issuer.RevokeAgent, *agent
		if *before != "" {
			t, err := time.Parse(time.RFC3339Nano, *before)
			if err != nil {
				return usagef("revoke: --before: want an RFC 3339 time: %v", err)
			}
			req.Before = t
		}
	default:
		req.Kind, req.KeyID = "key", uint32(*key)
	}
	if *before != "" && *agent == "" {
		return usagef("revoke: --before goes with --agent")
	}
	timeout := 30 * time.Second
	if *wait {
		if *share <= 0 || *share > 1 || *waitTimeout <= 0 || *waitTimeout > 5*time.Minute {
			return usagef("revoke: --share must be in (0, 1] and --wait-timeout in (0, 5m]")
		}
		req.Wait = &issuer.WaitSpec{Share: *share, TimeoutMS: int(waitTimeout.Milliseconds())}
		timeout += *waitTimeout
	}
	body, _ := json.Marshal(&req)
	rb, status, err := adminCall(ctx, e, cf, http.MethodPost, "/v1/admin/revocations", body, timeout)
	if err != nil {
		return err
	}
	var res issuer.RevokeResult
	if err := json.Unmarshal(rb, &res); err != nil {
		return fmt.Errorf("revoke: answer: %w", err)
	}
	if _, err := e.stdout.Write(rb); err != nil {
		return err
	}
	if p := res.Propagation; p != nil {
		fmt.Fprintf(e.stderr, "writ: epoch %d reached %d of %d live verifiers (%.0f%%) in %.1f ms\n",
			p.Epoch, p.Acknowledged, p.Verifiers, 100*p.Share, p.ElapsedMS)
		if status == http.StatusAccepted {
			return fmt.Errorf("revoke: committed, but only %.0f%% of the live verifiers acknowledged within %s (wanted %.0f%%)", 100*p.Share, *waitTimeout, 100**share)
		}
	}
	return nil
}

// runRevocations serves `writ revocations list|status`.
func runRevocations(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("revocations: want one of: list, status")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "revocations "+sub, "writ revocations "+sub+" [flags] --server URL --bundle FILE --svid CERT --svid-key KEY")
	cf := addClientFlags(fs)
	var after *string
	var limit *int
	switch sub {
	case "list":
		after = fs.String("after", "", "continue after this value (the previous page's next)")
		limit = fs.Int("limit", 100, "at most this many (1 to 1000)")
	case "status":
	default:
		return usagef("revocations: unknown subcommand %q (want list, status)", sub)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("revocations %s: unexpected argument %q", sub, pos[0])
	}
	path := "/v1/admin/revocations/status"
	if sub == "list" {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		path = "/v1/admin/revocations?" + q.Encode()
	}
	rb, _, err := adminCall(ctx, e, cf, http.MethodGet, path, nil, 30*time.Second)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(rb)
	return err
}

// runKeys serves `writ keys list|rotate|revoke`.
func runKeys(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("keys: want one of: list, rotate, revoke")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "keys "+sub, "writ keys "+sub+" [flags] --server URL --bundle FILE --svid CERT --svid-key KEY")
	cf := addClientFlags(fs)
	var activate, reason *string
	var waitTimeout *time.Duration
	var id *uint
	switch sub {
	case "list":
	case "rotate":
		activate = fs.String("activate", "after_propagation", "after_propagation (once every live verifier holds the new key), now, or never (prepare only)")
		waitTimeout = fs.Duration("wait-timeout", 30*time.Second, "with after_propagation: activate anyway after this long")
		reason = fs.String("reason", "", "why (audit record)")
	case "revoke":
		id = fs.Uint("id", 0, "the root key id to revoke")
		reason = fs.String("reason", "", "why (audit record)")
	default:
		return usagef("keys: unknown subcommand %q (want list, rotate, revoke)", sub)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("keys %s: unexpected argument %q", sub, pos[0])
	}
	method, path, timeout := http.MethodGet, "/v1/admin/keys", 30*time.Second
	var body []byte
	switch sub {
	case "rotate":
		if *waitTimeout <= 0 || *waitTimeout > 5*time.Minute {
			return usagef("keys rotate: --wait-timeout must be in (0, 5m]")
		}
		method, path, timeout = http.MethodPost, "/v1/admin/keys/rotate", 30*time.Second+*waitTimeout
		body, _ = json.Marshal(issuer.RotateRequest{Activate: *activate, TimeoutMS: int(waitTimeout.Milliseconds()), Reason: *reason})
	case "revoke":
		if *id == 0 || *id > 1<<32-1 {
			return usagef("keys revoke: --id is required")
		}
		method, path = http.MethodPost, "/v1/admin/keys/"+strconv.FormatUint(uint64(*id), 10)+"/revoke"
		body, _ = json.Marshal(map[string]string{"reason": *reason})
	}
	rb, _, err := adminCall(ctx, e, cf, method, path, body, timeout)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(rb)
	return err
}

// adminCall sends one admin request and returns a 2xx answer's body;
// any other answer is printed to stderr and returned as an error.
func adminCall(ctx context.Context, e env, cf clientFlags, method, path string, body []byte, timeout time.Duration) ([]byte, int, error) {
	client, err := cf.client()
	if err != nil {
		return nil, 0, err
	}
	client.Timeout = timeout
	rb, status, err := adminRequest(ctx, client, strings.TrimRight(*cf.server, "/"), method, path, body, 64<<20)
	if err != nil {
		return nil, 0, err
	}
	if status/100 != 2 {
		e.stderr.Write(rb)
		return nil, status, fmt.Errorf("issuer answered %d %s", status, http.StatusText(status))
	}
	return rb, status, nil
}

// adminRequest sends one request to server and returns the answer's body
// (at most limit bytes) and status, whatever the status.
func adminRequest(ctx context.Context, client *http.Client, server, method, path string, body []byte, limit int64) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
	if err != nil {
		return nil, 0, usagef("--server: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, 0, err
	}
	return rb, resp.StatusCode, nil
}
