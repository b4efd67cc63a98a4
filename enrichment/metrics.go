package enrichment

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The results of one source's lookup, the values of the result label.
const (
	ResultHit     = "hit"
	ResultMiss    = "miss"
	ResultError   = "error"
	ResultTimeout = "timeout"
)

var results = []string{ResultHit, ResultMiss, ResultError, ResultTimeout}

// Metrics counts profile lookups. Build it once per process with
// [NewMetrics] and pass it to every [NewChain]; it is safe for concurrent
// use.
type Metrics struct {
	lookups *prometheus.CounterVec
}

// NewMetrics registers the enrichment metrics with reg:
//
//	deskrelay_profile_lookups_total{source, result}
//
// where source is a [Source] name and result one of hit, miss, error and
// timeout. A nil reg gives working collectors that are not registered
// (tests). It panics if the metrics are already registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_profile_lookups_total",
			Help: "Profile lookups by profile source and result (hit, miss, error, timeout).",
		}, []string{"source", "result"}),
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
