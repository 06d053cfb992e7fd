package policy

import (
	"time"

	"github.com/writ-dev/writ/spec"
)

// Limits on a policy file. A policy is written by administrators, but it
// travels through the replicated log and every node parses it inside the
// state machine, so its size and shape are bounded like any untrusted
// input. Each limit is enforced by Parse with a *ParseError; those that JSON
// Schema can express are also in spec/policy.schema.json.
const (
	// MaxPolicyBytes bounds the whole file.
	MaxPolicyBytes = 1 << 20
	// MaxRules bounds the number of rules.
	MaxRules = 1000
	// MaxSubjectsPerRule, MaxRightsPerRule and MaxDelegatesPerRule bound
	// the lists of one rule.
	MaxSubjectsPerRule  = 256
	MaxRightsPerRule    = 256
	MaxDelegatesPerRule = 256
	// MaxFieldsPerRule and MaxServicesPerRule match the verifier's limit
	// on the elements of one set in a token (token.md §8).
	MaxFieldsPerRule   = 64
	MaxServicesPerRule = 64
	// MaxWindowsPerRule bounds the time windows of one rule; it also keeps
	// one rule within the verifier's limit of 4 time zones per token.
	MaxWindowsPerRule = 4
	// MaxNameChars bounds a rule name, MaxDescriptionChars its description,
	// MaxFieldChars a field name and MaxZoneChars a time zone name, all in
	// Unicode code points (as JSON Schema's maxLength counts).
	MaxNameChars        = 128
	MaxDescriptionChars = 1024
	MaxFieldChars       = 128
	MaxZoneChars        = spec.MaxZoneNameBytes // zone names are ASCII
	// MaxIDBytes bounds a SPIFFE ID or ID pattern.
	MaxIDBytes = 512
	// MaxTTL is the longest max_ttl a policy may set.
	MaxTTL = 24 * time.Hour
	// MaxStaleness is the longest max_staleness a policy may set, the
	// same as MaxTTL and as attenuation.MaxStalenessBound.
	MaxStaleness = MaxTTL
	// MaxRecordsLimit is the largest max_records a policy may set.
	MaxRecordsLimit = 1_000_000_000
)

// Limits on the shape of the YAML text, checked on the token stream before
// the YAML parser builds a tree. goccy/go-yaml v1.19.2 takes time
// quadratic in the number of keys of one mapping and in the depth of
// nested flow collections (80,000 keys in one mapping, 0.8 MB: about a
// minute); no valid policy comes near these bounds.
const (
	// MaxFlowDepth bounds nested flow collections ("[", "{").
	MaxFlowDepth = 8
	// MaxNesting bounds nested mappings (block and flow together).
	MaxNesting = 16
	// MaxKeysPerMapping bounds the keys of one mapping.
	MaxKeysPerMapping = 32
)

// Limits on one evaluation and on the token it describes.
const (
	// MaxRequestRights bounds the rights of one request; a request with
	// more is denied entirely (DenyTooManyRights). The token's authority
	// block holds at most 128 facts (token.md §8).
	MaxRequestRights = 64
	// MaxTokenZones is the verifier's limit on distinct time zones per
	// token (token.md §8); rules whose windows would exceed it together
	// cannot be combined (DenyConstraintConflict).
	MaxTokenZones = 4
	// MaxTokenWindowSets bounds the time-window checks of one token.
	MaxTokenWindowSets = 8
	// MaxAlternatives bounds the alternatives offered for one denial.
	MaxAlternatives = 16
)
