package enrichment

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
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
		problems, err := testutil.CollectAndLint(m.lookups)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	})
}
