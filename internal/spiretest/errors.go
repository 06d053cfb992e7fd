package spiretest

import "errors"

// ErrBinariesNotFound reports that spire-server or spire-agent is missing
// from the directory Binaries looked in.
var ErrBinariesNotFound = errors.New("spiretest: SPIRE binaries not found")
