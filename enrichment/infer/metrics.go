package infer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics observes the inference. Build it once per process with
// [NewMetrics] and pass it to [WithMetrics]; it is safe for concurrent use.
type Metrics struct {
	confidence prometheus.Histogram
}

// ConfidenceBuckets are the upper bounds of the confidence histogram.
// Confidence runs from 0.25 to 1.
var ConfidenceBuckets = []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}

// NewMetrics registers the inference metrics with reg:
//
//	deskrelay_profile_inference_confidence
//
// a histogram of the confidence of every inferred profile, whether it was
// named or left unknown. A nil reg gives a working collector that is not
// registered (tests). It panics if the metric is already registered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{confidence: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
		Name:    "deskrelay_profile_inference_confidence",
		Help:    "Confidence of inferred profiles (0.25 = nothing known, 1 = certain), named or left unknown.",
		Buckets: ConfidenceBuckets,
	})}
}
