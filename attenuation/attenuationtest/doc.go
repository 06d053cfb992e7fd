// Package attenuationtest is test scaffolding for writ's token builders:
// it prints tokens as Datalog text, to compare them with the shapes of
// spec/token.md, and runs biscuit-go's own authorizer as a reference.
//
// Datalog decodes with the generated protobuf code only, independently of
// the encoders under test, and prints sets in stored order (biscuit-go
// prints string sets as symbol numbers). Authorize must only see small
// tokens built by writ: biscuit-go's authorizer has no limits on appended
// blocks. Nothing here belongs on a request path.
//
//	blocks, rootKeyID, err := attenuationtest.Datalog(token)
//	// blocks[0].Facts[0] == "writ_version(1)"
package attenuationtest
