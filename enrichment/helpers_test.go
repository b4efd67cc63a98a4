package enrichment

import (
	"flag"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// defaultQuadrant is the quadrant of an empty config: scale 10, thresholds 5.
func defaultQuadrant(t testing.TB) Quadrant {
	t.Helper()
	q, err := NewQuadrant(config.Profiles{})
	if err != nil {
		t.Fatalf("NewQuadrant(zero config) = %v", err)
	}
	return q
}

func ptr(f float64) *float64 { return &f }
