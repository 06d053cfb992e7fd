package client

// Limits of what the client reads from the network and from files. The
// issuer is authenticated by its SVID, but a bug, a proxy or a captive
// portal can still answer: every bound is checked before decoding.
const (
	// maxRights bounds Config.Rights (the issuer's own limit).
	maxRights = 64
	// maxTokenResponseBytes bounds the body of a 200 answer: a token of
	// the verifier's 64 KiB ceiling in base64url plus its metadata.
	maxTokenResponseBytes = 256 << 10
	// maxProblemBytes bounds the body of a refusal; a longer body is read
	// no further and reported by status only.
	maxProblemBytes = 64 << 10
	// maxTokenChars bounds the base64url text of a token: the padded
	// encoding of the verifier's 64 KiB decoded ceiling.
	maxTokenChars = (64<<10 + 2) / 3 * 4
	// maxListEntries bounds granted, denied and alternatives lists.
	maxListEntries = 256
	// maxTextChars bounds problem titles, details, reasons and the policy
	// version kept from an answer (longer text is cut).
	maxTextChars = 1024
	// maxJWTFileBytes bounds a JWT-SVID file read by JWTFileSource (the
	// issuer refuses JWT-SVIDs over 8 KiB).
	maxJWTFileBytes = 16 << 10
)
