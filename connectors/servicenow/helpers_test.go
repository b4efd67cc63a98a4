package servicenow

import (
	"flag"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/connectors/servicenow/servicenowtest"
	"github.com/deskrelay/deskrelay/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// source is a configured servicenow source against baseURL: basic auth
// with the fake's credentials, retry waits in milliseconds.
func source(t testing.TB, baseURL string, opts map[string]any, mod ...func(*config.Connector)) connectors.Source {
	t.Helper()
	c := config.Connector{
		Type:    "servicenow",
		Auth:    config.Auth{Type: "none"},
		Options: opts,
		API: config.API{
			BaseURL:      baseURL,
			Auth:         config.APIAuth{Type: "basic", Username: "deskrelay", Password: config.NewSecret("s3cret")},
			Timeout:      5 * time.Second,
			MaxRetries:   4,
			RetryWaitMin: time.Millisecond,
			RetryWaitMax: 20 * time.Millisecond,
		},
		Poll: config.Poll{Enabled: true, Interval: time.Second, PageSize: 2, Start: "2024-05-13T10:00:00Z", LeaseTTL: 3 * time.Second},
	}
	for _, m := range mod {
		m(&c)
	}
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	return connectors.Source{Name: "snow", Config: c, Log: log, Metrics: connectors.NewPollMetrics(nil)}
}

func mustPoller(t testing.TB, src connectors.Source) *poller {
	t.Helper()
	p, err := buildPoller(src, time.Now)
	if err != nil {
		t.Fatalf("buildPoller: %v", err)
	}
	return p
}

// The fake instance and fixtures, from this package's testdata.
func newFake(t testing.TB) *servicenowtest.Server { return servicenowtest.New(t, "testdata") }

func readFile(t testing.TB, name string) []byte { return servicenowtest.ReadFile(t, "testdata", name) }

func fixtureRecords(t testing.TB, name string) []map[string]any {
	return servicenowtest.Records(t, "testdata", name)
}

var genRecords = servicenowtest.Generate
