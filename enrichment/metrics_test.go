package enrichment

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	NewChain(zap.NewNop(), m, time.Second, &fakeSource{name: "directory"}, &fakeSource{name: "survey"})
	t.Run("every series of every source exists from the start", func(t *testing.T) {
		if n := testutil.CollectAndCount(m.lookups); n != 2*len(results) {
			t.Errorf("series = %d, want %d", n, 2*len(results))
		}
		for _, r := range results {
			if v := testutil.ToFloat64(m.lookups.WithLabelValues("survey", r)); v != 0 {
				t.Errorf("lookups{survey,%s} = %v, want 0", r, v)
			}
		}
	})
	t.Run("the metrics pass the linter", func(t *testing.T) {
		for _, c := range []prometheus.Collector{m.lookups, m.chain, m.coverage, m.cache, m.evicted, m.surveys, m.familiar, m.cacheEntries} {
			problems, err := testutil.CollectAndLint(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint %s: %s", p.Metric, p.Text)
			}
		}
	})
	t.Run("coverage counts known, inferred and unknown", func(t *testing.T) {
		for _, p := range []ticket.Profile{
			{Name: ticket.Doer, Source: "directory"},
			{Name: ticket.Trier, Source: SourceInferred},
			{Name: ticket.Unknown, Source: SourceInferred}, // inferred, below the threshold
			{Name: ticket.Unknown, Source: SourceNone},
		} {
			m.Cover(p)
		}
		for class, want := range map[string]float64{CoverageKnown: 1, CoverageInferred: 2, CoverageUnknown: 1} {
			if got := testutil.ToFloat64(m.coverage.WithLabelValues(class)); got != want {
				t.Errorf("coverage{%s} = %v, want %v", class, got, want)
			}
		}
	})
}
