package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/deskrelay/deskrelay/ticket"
)

// Stages, the values of the stage label.
const (
	StageDecode = "decode"
	StageEnrich = "enrich"
	StageRoute  = "route"
	// StagePublishRouted is the publish of the routed message.
	StagePublishRouted = "publish_routed"
	// StagePublishDLQ is the publish of a dead letter.
	StagePublishDLQ = "publish_dlq"
)

var stages = []string{StageDecode, StageEnrich, StageRoute, StagePublishRouted, StagePublishDLQ}

// stageReady labels the inline fallbacks of tickets that came before the
// processor was ready ([ErrNotReady]).
const stageReady = "ready"

// Metrics are the processing stage's Prometheus collectors:
//
//	deskrelay_routed_total{tier,channel,profile}
//	deskrelay_dlq_total{reason}
//	deskrelay_ingest_to_routed_seconds
//	deskrelay_stage_duration_seconds{stage="decode|enrich|route|publish_routed|publish_dlq"}
//	deskrelay_pipeline_retries_total{stage="enrich|publish_routed|publish_dlq"}
//	deskrelay_pipeline_panics_total{stage}
//	deskrelay_pipeline_consume_errors_total
//	deskrelay_inline_routed_total
//	deskrelay_inline_fallbacks_total{stage="ready|enrich|route|publish_routed"}
//
// Every series of the known label values is created at zero.
type Metrics struct {
	routed *prometheus.CounterVec
	// routedBy holds routed's series of the known label values.
	routedBy map[[3]string]prometheus.Counter
	dlq      *prometheus.CounterVec
	latency  prometheus.Histogram
	stage    *prometheus.HistogramVec
	// stageObs holds stage's series of the known stages, resolved once:
	// WithLabelValues hashes the labels on every call.
	stageObs map[string]prometheus.Observer
	retries  *prometheus.CounterVec
	panics   *prometheus.CounterVec
	// consumeErrors counts errors of the consumer's message iterator
	// (missed heartbeats, a lost pull request) after which Run recreated it.
	consumeErrors prometheus.Counter
	// inlineRouted and inlineFallbacks count what RouteNow did; the
	// fallbacks by stage, resolved once.
	inlineRouted       prometheus.Counter
	inlineFallbacksVec *prometheus.CounterVec
	inlineFallbacks    map[string]prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg; a nil reg
// leaves them unregistered (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		routed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_routed_total",
			Help: "Tickets published on the routed subject, by tier, channel and caller profile.",
		}, []string{"tier", "channel", "profile"}),
		dlq: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_dlq_total",
			Help: "Ingest messages sent to the dead-letter subject, by reason.",
		}, []string{"reason"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "deskrelay_ingest_to_routed_seconds",
			Help:    "Time from storing a ticket in the ingest stream to the acknowledged routed publish, retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		stage: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deskrelay_stage_duration_seconds",
			Help:    "Time spent in one processing stage per message.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"stage"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_pipeline_retries_total",
			Help: "Ingest messages nak'd for a later retry after a transient failure, by stage.",
		}, []string{"stage"}),
		panics: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_pipeline_panics_total",
			Help: "Panics recovered while processing a message, by stage.",
		}, []string{"stage"}),
		consumeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "deskrelay_pipeline_consume_errors_total",
			Help: "Errors reading the ingest consumer (missed heartbeats during a NATS stall, a failed pull request) after which the processor backed off and resumed.",
		}),
		inlineRouted: f.NewCounter(prometheus.CounterOpts{
			Name: "deskrelay_inline_routed_total",
			Help: "Webhook tickets routed and published in the request (pipeline.inline), without the ingest stream.",
		}),
	}
	m.inlineFallbacksVec = f.NewCounterVec(prometheus.CounterOpts{
		Name: "deskrelay_inline_fallbacks_total",
		Help: "Webhook tickets that could not be routed in the request (pipeline.inline) and were stored in the ingest stream for the processor instead, by the stage that failed.",
	}, []string{"stage"})
	m.inlineFallbacks = make(map[string]prometheus.Counter, 4)
	for _, s := range []string{stageReady, StageEnrich, StageRoute, StagePublishRouted} {
		m.inlineFallbacks[s] = m.inlineFallbacksVec.WithLabelValues(s)
	}
	m.routedBy = make(map[[3]string]prometheus.Counter, len(ticket.Tiers)*len(ticket.Channels)*len(ticket.ProfileNames))
	for _, tier := range ticket.Tiers {
		for _, ch := range ticket.Channels {
			for _, p := range ticket.ProfileNames {
				k := [3]string{string(tier), string(ch), string(p)}
				m.routedBy[k] = m.routed.WithLabelValues(k[:]...)
			}
		}
	}
	for _, r := range ticket.Reasons {
		m.dlq.WithLabelValues(r)
	}
	m.stageObs = make(map[string]prometheus.Observer, len(stages))
	for _, s := range stages {
		m.stageObs[s] = m.stage.WithLabelValues(s)
		m.panics.WithLabelValues(s)
	}
	m.retries.WithLabelValues(StageEnrich)
	m.retries.WithLabelValues(StagePublishRouted)
	m.retries.WithLabelValues(StagePublishDLQ)
	return m
}

// observeStage records d seconds spent in stage.
func (m *Metrics) observeStage(stage string, d float64) {
	if o, ok := m.stageObs[stage]; ok {
		o.Observe(d)
		return
	}
	m.stage.WithLabelValues(stage).Observe(d)
}

// countRouted counts one routed ticket.
func (m *Metrics) countRouted(tier, channel, profile string) {
	if c, ok := m.routedBy[[3]string{tier, channel, profile}]; ok {
		c.Inc()
		return
	}
	m.routed.WithLabelValues(tier, channel, profile).Inc()
}
