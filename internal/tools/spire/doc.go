// Package spire pins the SPIRE server and agent used by the SPIRE
// integration test. It is its own module so that SPIRE's dependency graph
// never reaches writ's go.mod; `make spire` builds both binaries into
// bin/spire.
package spire
