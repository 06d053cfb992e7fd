package policy

import "fmt"

// ParseError is the only error Parse returns. Line and Column are 1-based
// positions in the policy file; Line is 0 when the error concerns the
// file as a whole (its size or encoding before any line could be read).
// Msg names the offending element with a path like "rules[2].rights[0]"
// (0-based indices) and says what is wrong.
type ParseError struct {
	Line   int
	Column int
	Msg    string
}

// Error returns "policy: line N: MSG", or "policy: MSG" when Line is 0.
func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return "policy: " + e.Msg
	}
	return fmt.Sprintf("policy: line %d: %s", e.Line, e.Msg)
}
