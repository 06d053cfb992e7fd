package issuer

import (
	"context"
	"encoding/json"
	"fmt"
)

// applier commits one encoded command through consensus and returns the
// state machine's result. *cluster.Node satisfies it.
type applier interface {
	Apply(ctx context.Context, cmd []byte) (any, error)
}

// auditLog group-commits audit records: requests wait on their record while
// a few workers drain the queue into one raft entry per batch, so minting
// throughput is bound by signing and TLS, not by fsync.
type auditLog struct {
	node     applier
	queue    chan *pendingAudit
	maxBatch int
	workers  int
	metrics  *metrics
}

type pendingAudit struct {
	raw  json.RawMessage // the record, encoded once by Commit
	done chan error
}

// auditAppend is the wire form of an audit.append command built from
// records already encoded: it marshals to the same bytes as a command
// with Type cmdAuditAppend, without encoding each record a second time.
type auditAppend struct {
	V     int               `json:"v"`
	Type  string            `json:"type"`
	ID    string            `json:"id"`
	Audit []json.RawMessage `json:"audit"`
}

// maxBatchBytes bounds the encoded audit records of one raft entry, well
// below cluster.DefaultMaxCommandBytes (1 MiB). One record is at most
// about 400 KiB (a 64 KiB request body JSON-escaped), so it always fits.
const maxBatchBytes = 512 << 10

func newAuditLog(node applier, maxBatch, workers int, m *metrics) *auditLog {
	return &auditLog{node: node, queue: make(chan *pendingAudit, maxBatch*workers*4), maxBatch: maxBatch, workers: workers, metrics: m}
}

// Commit enqueues rec and returns once it is committed (or ctx ends). A
// nil error means the record is durable in the replicated audit chain.
func (a *auditLog) Commit(ctx context.Context, rec *AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("issuer: audit: encode: %w", err)
	}
	p := &pendingAudit{raw: b, done: make(chan error, 1)}
	select {
	case a.queue <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The record may still commit; the caller's request fails closed.
		return ctx.Err()
	}
}

// Run drains the queue until ctx ends. Records still queued at shutdown
// are failed, never silently dropped.
func (a *auditLog) Run(ctx context.Context) error {
	errc := make(chan error, a.workers)
	for i := 0; i < a.workers; i++ {
		go func() { errc <- a.worker(ctx) }()
	}
	var first error
	for i := 0; i < a.workers; i++ {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	for {
		select {
		case p := <-a.queue:
			p.done <- fmt.Errorf("issuer: audit: shutting down")
		default:
			return first
		}
	}
}

func (a *auditLog) worker(ctx context.Context) error {
	batch := make([]*pendingAudit, 0, a.maxBatch)
	var carry *pendingAudit
	for {
		batch = batch[:0]
		size := 0
		if carry != nil {
			batch, size, carry = append(batch, carry), len(carry.raw), nil
		} else {
			select {
			case <-ctx.Done():
				return nil
			case p := <-a.queue:
				batch, size = append(batch, p), len(p.raw)
			}
		}
	fill:
		for len(batch) < a.maxBatch {
			select {
			case p := <-a.queue:
				if size+len(p.raw) > maxBatchBytes {
					carry = p
					break fill
				}
				batch, size = append(batch, p), size+len(p.raw)
			default:
				break fill
			}
		}
		err := a.commitBatch(ctx, batch)
		for _, p := range batch {
			p.done <- err
		}
		if carry != nil && ctx.Err() != nil {
			carry.done <- fmt.Errorf("issuer: audit: shutting down")
			carry = nil
		}
	}
}

func (a *auditLog) commitBatch(ctx context.Context, batch []*pendingAudit) error {
	recs := make([]json.RawMessage, len(batch))
	for i, p := range batch {
		recs[i] = p.raw
	}
	id, err := newCommandID()
	if err != nil {
		return err
	}
	cmd, err := json.Marshal(&auditAppend{V: commandVersion, Type: cmdAuditAppend, ID: id, Audit: recs})
	if err != nil {
		return fmt.Errorf("issuer: audit: encode: %w", err)
	}
	if a.metrics != nil {
		a.metrics.auditBatch.Observe(float64(len(batch)))
	}
	res, err := a.node.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("issuer: audit: %w", err)
	}
	if err := checkApplied(res, len(recs)); err != nil {
		return fmt.Errorf("issuer: audit: %w", err)
	}
	return nil
}
