package spiretest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"go.uber.org/goleak"
	"google.golang.org/grpc/status"
)

// The test binary doubles as the workload: copies of it at distinct paths
// are started with these variables set and act as SPIFFE workloads
// instead of running tests.
const (
	envWorkload = "SPIRETEST_WORKLOAD" // "fetch" or "watch"
	envAddr     = "SPIRETEST_ADDR"     // Workload API address
	envAudience = "SPIRETEST_AUDIENCE" // JWT-SVID audience for "fetch"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envWorkload); mode != "" {
		os.Exit(runWorkload(mode))
	}
	goleak.VerifyTestMain(m)
}

// fetchResult is what a "fetch" workload prints: its X.509-SVID chain and
// JWT-SVID, or the gRPC status of each failed fetch.
type fetchResult struct {
	X509ID   string   `json:"x509_id,omitempty"`
	Chain    [][]byte `json:"chain,omitempty"`
	X509Code string   `json:"x509_code,omitempty"`
	X509Err  string   `json:"x509_err,omitempty"`
	JWTID    string   `json:"jwt_id,omitempty"`
	Token    string   `json:"token,omitempty"`
	JWTCode  string   `json:"jwt_code,omitempty"`
	JWTErr   string   `json:"jwt_err,omitempty"`
}

// watchEvent is one line printed by a "watch" workload per X.509-SVID it
// receives.
type watchEvent struct {
	ID     string `json:"id,omitempty"`
	Serial string `json:"serial,omitempty"`
	Err    string `json:"err,omitempty"`

	at time.Time // when the test process read the line
}

func runWorkload(mode string) int {
	addr := workloadapi.WithAddr(os.Getenv(envAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	enc := json.NewEncoder(os.Stdout)
	switch mode {
	case "fetch":
		var r fetchResult
		fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
		defer fcancel()
		if svid, err := workloadapi.FetchX509SVID(fctx, addr); err != nil {
			r.X509Code, r.X509Err = status.Code(err).String(), err.Error()
		} else {
			r.X509ID = svid.ID.String()
			for _, c := range svid.Certificates {
				r.Chain = append(r.Chain, c.Raw)
			}
		}
		params := jwtsvid.Params{Audience: os.Getenv(envAudience)}
		if svid, err := workloadapi.FetchJWTSVID(fctx, params, addr); err != nil {
			r.JWTCode, r.JWTErr = status.Code(err).String(), err.Error()
		} else {
			r.JWTID, r.Token = svid.ID.String(), svid.Marshal()
		}
		if err := enc.Encode(r); err != nil {
			return 1
		}
		return 0
	case "watch":
		// Runs until standard input closes.
		go func() {
			_, _ = bufio.NewReader(os.Stdin).ReadString(0)
			cancel()
		}()
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(addr))
		if err != nil {
			_ = enc.Encode(watchEvent{Err: err.Error()})
			return 1
		}
		defer src.Close()
		last := ""
		for {
			svid, err := src.GetX509SVID()
			switch {
			case err != nil:
				_ = enc.Encode(watchEvent{Err: err.Error()})
			case svid.Certificates[0].SerialNumber.String() != last:
				last = svid.Certificates[0].SerialNumber.String()
				_ = enc.Encode(watchEvent{ID: svid.ID.String(), Serial: last})
			}
			select {
			case <-src.Updated():
			case <-ctx.Done():
				return 0
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", envWorkload, mode)
		return 2
	}
}
