package connectors_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// discardSink stores nothing and never fails.
type discardSink struct{}

func (discardSink) Ingest(context.Context, ticket.Ticket) error { return nil }

// discardWriter is a ResponseWriter that keeps nothing but the headers
// and the status code.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkIngress measures the webhook handler's own work for one
// accepted ticket of about 1.3 KB on the generic source with bearer auth:
// limits, body read, auth, decode, validation, metrics and the 202
// answer, with a sink that stores nothing (the store's cost is
// BenchmarkIngest in internal/bus).
//
//	go test -run='^$' -bench=Ingress -benchmem ./connectors
func BenchmarkIngress(b *testing.B) {
	cfg := map[string]config.Connector{
		"generic": {Type: "generic", Auth: config.Auth{Type: "bearer", Token: config.NewSecret("t0ken")}},
	}
	eps, err := connectors.Build(cfg, 1<<20, zap.NewNop(), nil)
	if err != nil {
		b.Fatalf("Build: %v", err)
	}
	in := connectors.NewIngress(eps.Endpoints, discardSink{}, time.Second, 5*time.Second, zap.NewNop(), connectors.NewMetrics(nil))
	body := []byte(`{"id":"INC0012345","number":"INC0012345","title":"Outlook keeps asking for my password",` +
		`"description":"` + strings.Repeat("Since this morning the problem comes back every time I restart. ", 14) + `",` +
		`"caller":{"id":"u1234","email":"caller1234@bench.example.com","name":"Caller 1234"},` +
		`"channel":"email","category":"software","subcategory":"email","impact":2,"urgency":2,` +
		`"configuration_item":"Outlook","opened_at":"2026-11-25T09:00:00Z","updated_at":"2026-11-25T09:00:01Z","tags":["vip"]}`)
	req, err := http.NewRequest(http.MethodPost, "/webhooks/generic", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetPathValue("source", "generic")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t0ken")
	w := &discardWriter{h: http.Header{}}
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
		clear(w.h)
		in.ServeHTTP(w, req)
	}
	if w.code != http.StatusAccepted {
		b.Fatalf("answer %d, want 202", w.code)
	}
}
