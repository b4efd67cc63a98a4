package enrichment

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/deskrelay/deskrelay/ticket"
)

// The results of one source's lookup, the values of the result label.
const (
	ResultHit     = "hit"
	ResultMiss    = "miss"
	ResultError   = "error"
	ResultTimeout = "timeout"
)

var results = []string{ResultHit, ResultMiss, ResultError, ResultTimeout}

// The results of a whole [Chain.Lookup], the values of the result label of
// deskrelay_profile_chain_lookups_total.
const (
	// LookupCached: answered from the cache.
	LookupCached = "cached"
	// LookupKnown: a source knew the caller.
	LookupKnown = "known"
	// LookupUnknown: every source that answered did not know the caller,
	// or the ticket names no caller.
	LookupUnknown = "unknown"
	// LookupNoAnswer: no source answered ([ErrNoAnswer]).
	LookupNoAnswer = "no_answer"
	// LookupCancelled: the caller's context ended first.
	LookupCancelled = "cancelled"
)

var lookupResults = []string{LookupCached, LookupKnown, LookupUnknown, LookupNoAnswer, LookupCancelled}

// The classes of deskrelay_profile_coverage_total, see [Metrics.Cover].
const (
	CoverageKnown    = "known"
	CoverageInferred = "inferred"
	CoverageUnknown  = "unknown"
)

// SourceInferred is the Source of an inferred profile; [Metrics.Cover]
// counts such profiles as inferred.
const SourceInferred = "inferred"

// The results of a survey answer, the values of the result label of
// deskrelay_profile_surveys_total.
const (
	SurveyStored     = "stored"     // now the caller's profile
	SurveySuperseded = "superseded" // kept in the history; a newer value stays
	SurveyRejected   = "rejected"   // bad answer, nothing stored
	SurveyFailed     = "failed"     // the bucket could not be written
)

var surveyResults = []string{SurveyStored, SurveySuperseded, SurveyRejected, SurveyFailed}

// Metrics counts profile lookups, the cache, surveys and familiar people.
// Build it once per process with [NewMetrics] and pass it to every
// [NewChain]; it is safe for concurrent use.
type Metrics struct {
	lookups  *prometheus.CounterVec
	chain    *prometheus.CounterVec
	coverage *prometheus.CounterVec
	cache    *prometheus.CounterVec
	evicted  *prometheus.CounterVec
	surveys  *prometheus.CounterVec
	familiar *prometheus.CounterVec

	cacheHit, cacheNegHit, cacheMiss      prometheus.Counter
	cacheExpired, cacheEvicted            prometheus.Counter
	cacheInvalidated                      prometheus.Counter
	cacheEntries                          prometheus.Gauge
	chainCounters                         map[string]prometheus.Counter
	coverKnown, coverInferred, coverUnkwn prometheus.Counter
}

// NewMetrics registers the enrichment metrics with reg:
//
//	deskrelay_profile_lookups_total{source, result}      per source: hit, miss, error, timeout
//	deskrelay_profile_chain_lookups_total{result}        per lookup: cached, known, unknown, no_answer, cancelled
//	deskrelay_profile_cache_requests_total{result}       hit, negative_hit, miss
//	deskrelay_profile_cache_evictions_total{reason}      expired, capacity, invalidated
//	deskrelay_profile_cache_entries
//	deskrelay_profile_coverage_total{coverage}           known, inferred, unknown (see Cover)
//	deskrelay_profile_surveys_total{via, result}         via http, nats; stored, superseded, rejected, failed
//	deskrelay_profile_familiar_total{result}             remembered, skipped, failed
//
// A nil reg gives working collectors that are not registered (tests). It
// panics if the metrics are already registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_lookups_total",
			Help: "Profile lookups by profile source and result (hit, miss, error, timeout).",
		}, []string{"source", "result"}),
		chain: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_chain_lookups_total",
			Help: "Profile lookups of the whole chain by result (cached, known, unknown, no_answer, cancelled).",
		}, []string{"result"}),
		coverage: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_coverage_total",
			Help: "Routed tickets by how well their caller's profile is known (known, inferred, unknown).",
		}, []string{"coverage"}),
		cache: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_cache_requests_total",
			Help: "Profile cache requests by result (hit, negative_hit, miss).",
		}, []string{"result"}),
		evicted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_cache_evictions_total",
			Help: "Profiles dropped from the cache by reason (expired, capacity, invalidated).",
		}, []string{"reason"}),
		surveys: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_surveys_total",
			Help: "Survey answers by way in (http, nats) and result (stored, superseded, rejected, failed).",
		}, []string{"via", "result"}),
		familiar: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_familiar_total",
			Help: "Tickets offered to the familiar-people history by result (remembered, skipped, failed).",
		}, []string{"result"}),
		cacheEntries: f.NewGauge(prometheus.GaugeOpts{
			Name: "deskrelay_profile_cache_entries",
			Help: "Callers in the profile cache.",
		}),
	}
	m.cacheHit = m.cache.WithLabelValues("hit")
	m.cacheNegHit = m.cache.WithLabelValues("negative_hit")
	m.cacheMiss = m.cache.WithLabelValues("miss")
	m.cacheExpired = m.evicted.WithLabelValues("expired")
	m.cacheEvicted = m.evicted.WithLabelValues("capacity")
	m.cacheInvalidated = m.evicted.WithLabelValues("invalidated")
	m.chainCounters = make(map[string]prometheus.Counter, len(lookupResults))
	for _, r := range lookupResults {
		m.chainCounters[r] = m.chain.WithLabelValues(r)
	}
	m.coverKnown = m.coverage.WithLabelValues(CoverageKnown)
	m.coverInferred = m.coverage.WithLabelValues(CoverageInferred)
	m.coverUnkwn = m.coverage.WithLabelValues(CoverageUnknown)
	for _, via := range []string{"http", "nats"} {
		for _, r := range surveyResults {
			m.surveys.WithLabelValues(via, r)
		}
	}
	for _, r := range []string{"remembered", "skipped", "failed"} {
		m.familiar.WithLabelValues(r)
	}
	return m
}

// Cover counts one routed ticket's profile in
// deskrelay_profile_coverage_total: inferred when its Source is
// [SourceInferred] (even when the inference stayed unknown), unknown when
// its name is unknown, known otherwise. Call it once per routed ticket,
// with the profile that was routed.
func (m *Metrics) Cover(p ticket.Profile) {
	switch {
	case p.Source == SourceInferred:
		m.coverInferred.Inc()
	case p.Name == ticket.Unknown:
		m.coverUnkwn.Inc()
	default:
		m.coverKnown.Inc()
	}
}

// counters are one source's series, created up front so that rates start
// at zero and a lookup does not search the vector.
type counters struct {
	hit, miss, err, timeout prometheus.Counter
}

func (m *Metrics) forSource(name string) counters {
	for _, r := range results {
		m.lookups.WithLabelValues(name, r)
	}
	return counters{
		hit:     m.lookups.WithLabelValues(name, ResultHit),
		miss:    m.lookups.WithLabelValues(name, ResultMiss),
		err:     m.lookups.WithLabelValues(name, ResultError),
		timeout: m.lookups.WithLabelValues(name, ResultTimeout),
	}
}
