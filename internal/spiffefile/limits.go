package spiffefile

import "time"

// MaxFileBytes bounds each certificate, key and bundle file. Real SVIDs
// and bundles are a few KiB; a larger file is refused rather than read.
const MaxFileBytes = 1 << 20

// DefaultInterval is the poll period used when Config.Interval is zero.
const DefaultInterval = 5 * time.Second

// MinInterval and MaxInterval bound a non-zero Config.Interval.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Hour
)
