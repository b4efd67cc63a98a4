package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update accepts)\n--- want\n%s\n--- got\n%s", path, want, got)
	}
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

// natsEnv is a provisioned bus on a real in-process NATS server.
type natsEnv struct {
	b       *bus.Bus
	cursors *bus.Cursors
	leases  *bus.Leases
}

func newNATS(t testing.TB) natsEnv {
	t.Helper()
	s := bustest.Start(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := bus.New(nc, config.NATS{}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	cur, err := b.Cursors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := b.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return natsEnv{b: b, cursors: cur, leases: l}
}

// sleeps records the waits a runner asked for and waits at most a few
// milliseconds of each, so that tests see the schedule without living it.
type sleeps struct {
	mu  sync.Mutex
	got []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	t := time.NewTimer(min(d, 2*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.got...)
}

func (e natsEnv) runner(t testing.TB, name, holder string, p connectors.Poller, sink connectors.Sink, sl *sleeps) *connectors.PollRunner {
	r := &connectors.PollRunner{
		Source: name, Holder: holder, Poller: p, Sink: sink, DLQ: e.b, Cursors: e.cursors, Lease: e.leases,
		Interval: time.Second, LeaseTTL: 3 * time.Second, Log: zap.NewNop(), Metrics: connectors.NewPollMetrics(nil),
	}
	if sl != nil {
		r.Sleep = sl.sleep
	}
	if tt, ok := t.(*testing.T); ok {
		r.Log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	return r
}

// ingestCount is the number of messages in the ingest stream.
func (e natsEnv) ingestCount(t testing.TB) uint64 {
	t.Helper()
	s, err := e.b.JetStream().Stream(context.Background(), e.b.StreamName(bus.KindIngest))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// storedTickets reads every ticket in the ingest stream and counts them
// by ticket id and update time.
func (e natsEnv) storedTickets(t testing.TB) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := int(e.ingestCount(t))
	c, err := e.b.JetStream().OrderedConsumer(ctx, e.b.StreamName(bus.KindIngest), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for seen := 0; seen < n; {
		batch, err := c.Fetch(min(500, n-seen), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var tk ticket.Ticket
			if err := json.Unmarshal(m.Data(), &tk); err != nil {
				t.Fatal(err)
			}
			out[tk.ID+"@"+tk.UpdatedAt.Format(time.RFC3339)]++
			got++
		}
		if got == 0 {
			t.Fatalf("read %d of %d ingest messages, then nothing", seen, n)
		}
		seen += got
	}
	return out
}

// waitFor polls cond every few milliseconds until it holds or timeout,
// reporting what it last saw.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last saw %s", what, timeout, saw)
		}
		<-tick.C
	}
}
