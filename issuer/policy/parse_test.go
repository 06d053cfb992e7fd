package policy

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.src))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %q, want none", err)
				}
				if p == nil {
					t.Fatal("got nil policy, want one")
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tc.wantErr)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T, want *ParseError", err)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("got  %q\nwant %q", err.Error(), tc.wantErr)
			}
		})
	}
}
