package issuer

import "github.com/prometheus/client_golang/prometheus"

// metrics are the issuer's Prometheus series, served at /metrics.
type metrics struct {
	minted     prometheus.Counter
	denied     *prometheus.CounterVec
	mintTime   prometheus.Histogram
	auditBatch prometheus.Histogram
	requests   *prometheus.CounterVec
	// authFailures counts token requests whose caller could not be
	// authenticated, by reason (jwt_expired, no_credential, ...).
	authFailures *prometheus.CounterVec
	// propagation: from a sync change's commit to a verifier's receipt
	// of it (spec/sync.md §6).
	propagation prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		minted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_tokens_minted_total", Help: "Tokens minted.",
		}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_token_requests_denied_total", Help: "Token requests denied, by reason.",
		}, []string{"reason"}),
		mintTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writ_mint_duration_seconds", Help: "Time to serve a token request, audit commit included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		auditBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writ_audit_batch_records", Help: "Audit records per raft entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_token_auth_failures_total", Help: "Token requests refused before authentication succeeded, by reason.",
		}, []string{"reason"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writ_sync_propagation_seconds", Help: "Time from a revocation or key change being committed to a verifier reporting it applied.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	reg.MustRegister(m.minted, m.denied, m.mintTime, m.auditBatch, m.requests, m.authFailures, m.propagation)
	return m
}
