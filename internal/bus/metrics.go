package bus

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Ingest results, the values of the result label of
// deskrelay_ingest_published_total.
const (
	ResultStored    = "stored"
	ResultDuplicate = "duplicate"
	ResultError     = "error"
)

// Metrics are the bus's Prometheus collectors:
//
//	deskrelay_ingest_published_total{result="stored|duplicate|error"}
//	deskrelay_publish_duration_seconds{stream="ingest|routed|dlq"}
//
// The histogram measures a JetStream publish from send to PubAck, errors
// included.
type Metrics struct {
	ingest  *prometheus.CounterVec
	publish *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg; a nil reg
// leaves them unregistered (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		ingest: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_ingest_published_total",
			Help: "Tickets published to the ingest stream, by result: stored, duplicate (Nats-Msg-Id seen within the duplicate window) or error (not stored).",
		}, []string{"result"}),
		publish: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deskrelay_publish_duration_seconds",
			Help:    "Time from a JetStream publish to its acknowledgement, by stream kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"stream"}),
	}
	for _, r := range []string{ResultStored, ResultDuplicate, ResultError} {
		m.ingest.WithLabelValues(r)
	}
	for _, k := range []string{KindIngest, KindRouted, KindDLQ} {
		m.publish.WithLabelValues(k)
	}
	return m
}
