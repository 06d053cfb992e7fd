package policy

import _ "embed"

// Starter is the starter policy for the development trust domain
// writ.dev.local that `writ dev` loads. It is a copy of
// spec/testdata/policy/starter.yaml (a test keeps them identical).
// Callers must not modify it.
//
//go:embed starter.yaml
var Starter []byte
