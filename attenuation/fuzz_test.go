package attenuation_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/attenuation"
)

// FuzzRestrict feeds arbitrary bytes to Restrict: it must never panic or
// modify its input, must fail with one of its sentinels, and on success
// must return a decodable token with exactly one more block.
func FuzzRestrict(f *testing.F) {
	base := baseToken(f)
	f.Add(base)
	f.Add(base[:len(base)/2])
	f.Add([]byte{})
	f.Add([]byte("not a token"))
	if once, err := attenuation.Restrict(base, attenuation.MaxRecords(2)); err == nil {
		f.Add(once)
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		before := bytes.Clone(token)
		out, err := attenuation.Restrict(token, attenuation.MaxRecords(1), attenuation.OnlyFields("name"))
		if !bytes.Equal(token, before) {
			t.Fatal("Restrict modified its input")
		}
		if err != nil {
			for _, s := range []error{attenuation.ErrMalformed, attenuation.ErrSealed, attenuation.ErrLimitExceeded} {
				if errors.Is(err, s) {
					return
				}
			}
			// biscuit-go may refuse a decodable container while appending
			// (e.g. symbol tables that overlap); that is an error, not a panic.
			return
		}
		var in, res pb.Biscuit
		if err := proto.Unmarshal(token, &in); err != nil {
			t.Fatalf("input accepted but does not decode: %v", err)
		}
		if err := proto.Unmarshal(out, &res); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		if got, want := len(res.GetBlocks()), len(in.GetBlocks())+1; got != want {
			t.Errorf("blocks: got %d, want %d", got, want)
		}
	})
}
