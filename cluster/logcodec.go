package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/writ-dev/writ/cluster/internal/logcodec"
)

// The store's value format is defined in internal/logcodec; these adapt it
// to raft.Log.

// The codec accepts exactly the log types raft v1.8.0 defines.
var _ = [1]struct{}{}[raft.LogConfiguration-raft.LogType(logcodec.MaxType)]

func appendLog(dst []byte, l *raft.Log) ([]byte, error) {
	return logcodec.Append(dst, &logcodec.Entry{
		Index:      l.Index,
		Term:       l.Term,
		Type:       byte(l.Type),
		Data:       l.Data,
		Extensions: l.Extensions,
		AppendedAt: l.AppendedAt,
	})
}

// decodeLog decodes b into l; errors wrap ErrCorruptLog.
func decodeLog(b []byte, l *raft.Log) error {
	var e logcodec.Entry
	if err := logcodec.Decode(b, &e); err != nil {
		if errors.Is(err, logcodec.ErrCorrupt) {
			return fmt.Errorf("%w: %w", ErrCorruptLog, err)
		}
		return err
	}
	*l = raft.Log{
		Index:      e.Index,
		Term:       e.Term,
		Type:       raft.LogType(e.Type),
		Data:       e.Data,
		Extensions: e.Extensions,
		AppendedAt: e.AppendedAt,
	}
	return nil
}
