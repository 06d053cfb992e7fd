// Package logcodec is the on-disk encoding of one raft log entry in the
// cluster package's pebble LogStore: a compact, versioned, checksummed
// binary format with a strict decoder.
//
// Trust boundary: the decoder reads bytes from disk, which may be corrupt
// or truncated; it returns an error wrapping ErrCorrupt for any input that
// Append would not have produced and never panics. It has no dependencies
// so that it can be fuzzed quickly on its own.
//
//	buf, err := logcodec.Append(nil, &logcodec.Entry{Index: 1, Term: 1, Data: cmd})
//	var e logcodec.Entry
//	err = logcodec.Decode(buf, &e)
package logcodec
