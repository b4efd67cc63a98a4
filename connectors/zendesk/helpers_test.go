package zendesk

import (
	"context"
	"encoding/json"
	"flag"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/internal/golden"
	"github.com/deskrelay/deskrelay/ticket"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

// testSecret is Zendesk's static signing secret for test deliveries, used
// by both signed fixtures.
const testSecret = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="

// signatureFixture is the part of a .signature.json the tests use.
type signatureFixture struct {
	Secret          string            `json:"secret"`
	BodyFile        string            `json:"body_file"`
	Timestamp       string            `json:"timestamp"`
	ExpectedHeaders map[string]string `json:"expected_headers"`
}

func readSignature(t testing.TB, name string) signatureFixture {
	t.Helper()
	var s signatureFixture
	if err := json.Unmarshal(fixture.Read(t, "testdata", name), &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// ticketJSON renders tickets for a golden file.
func ticketJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// source returns a configured zendesk source with Zendesk signing.
func source(t testing.TB, opts map[string]any) connectors.Source {
	t.Helper()
	return connectors.Source{
		Name: "zd",
		Config: config.Connector{
			Type:    "zendesk",
			Auth:    config.Auth{Type: "hmac", Secret: config.NewSecret(testSecret)},
			Options: opts,
		},
		Log: zaptest.NewLogger(t),
	}
}

// newTestWebhook builds the webhook of src with its clock at now.
func newTestWebhook(t testing.TB, src connectors.Source, now time.Time) *webhook {
	t.Helper()
	wh, err := newWebhook(src)
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	w := wh.(*webhook)
	w.now = func() time.Time { return now }
	return w
}

// fixtureTime is the reference time of the fixtures, a minute after the
// signed timestamps.
var fixtureTime = time.Date(2024, 5, 13, 10, 16, 44, 0, time.UTC)

// memSink records tickets in memory.
type memSink struct{ got []ticket.Ticket }

func (s *memSink) Ingest(_ context.Context, t ticket.Ticket) error {
	s.got = append(s.got, t)
	return nil
}
