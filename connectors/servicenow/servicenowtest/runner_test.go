package servicenowtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	_ "github.com/deskrelay/deskrelay/connectors/servicenow"
	"github.com/deskrelay/deskrelay/connectors/servicenow/servicenowtest"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/busrig"
	"github.com/deskrelay/deskrelay/ticket"
)

// These tests run the ServiceNow poller under the real PollRunner, with a
// real in-process NATS for the ingest stream, cursors, leases and dead
// letters. They live here, apart from the connector's own tests, so that
// the connector's test binary does not link nats-server: its fuzz targets
// would crawl through nats-server's coverage counters.

var start = time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)

func newFake(t testing.TB) *servicenowtest.Server { return servicenowtest.New(t, "../testdata") }

func fixtureRecords(t testing.TB, name string) []map[string]any {
	return servicenowtest.Records(t, "../testdata", name)
}

var genRecords = servicenowtest.Generate

// source is a configured servicenow source against baseURL: basic auth
// with the fake's credentials, retry waits in milliseconds.
func source(t testing.TB, baseURL string, mod ...func(*config.Connector)) connectors.Source {
	t.Helper()
	c := config.Connector{
		Type: "servicenow",
		Auth: config.Auth{Type: "none"},
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
		log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	return connectors.Source{Name: "snow", Config: c, Log: log, Metrics: connectors.NewPollMetrics(nil)}
}

// mustPoller builds the poller the way deskrelay does: through the
// registered spec.
func mustPoller(t testing.TB, src connectors.Source) connectors.Poller {
	t.Helper()
	spec, ok := connectors.Lookup("servicenow")
	if !ok {
		t.Fatal("servicenow is not registered")
	}
	p, err := spec.NewPoller(src)
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
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
	r := busrig.Start(t, config.NATS{})
	return natsEnv{b: r.Bus, cursors: r.Cursors, leases: r.Leases}
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
	return busrig.Count(t, e.b, bus.KindIngest)
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

// crashSink stores through next until its budget is spent, then "dies":
// it cancels the runner and refuses the ticket.
type crashSink struct {
	next   connectors.Sink
	budget atomic.Int64
	cancel context.CancelFunc
}

func (s *crashSink) Ingest(ctx context.Context, t ticket.Ticket) error {
	if s.budget.Add(-1) < 0 {
		s.cancel()
		return errors.New("process died")
	}
	return s.next.Ingest(ctx, t)
}

// countingPoller counts the polls of one runner.
type countingPoller struct {
	connectors.Poller
	n atomic.Int64
}

func (c *countingPoller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	c.n.Add(1)
	return c.Poller.Poll(ctx, cur)
}

// run starts r and returns a stop function that cancels it and returns
// Run's result.
func run(t *testing.T, r *connectors.PollRunner) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("runner did not stop within 10s")
			return nil
		}
	}
}

func checkStoredOnce(t *testing.T, e natsEnv, want int) {
	t.Helper()
	if n := e.ingestCount(t); n != uint64(want) {
		t.Errorf("ingest stream holds %d messages, want %d", n, want)
	}
	stored := e.storedTickets(t)
	if len(stored) != want {
		t.Errorf("ingest stream holds %d distinct ticket versions, want %d", len(stored), want)
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("ticket %s stored %d times", id, n)
		}
	}
}

// TestRunnerSameSecond250: 250 records share one second across page
// boundaries: stored exactly once, and polling on stores nothing more.
func TestRunnerSameSecond250(t *testing.T) {
	e := newNATS(t)
	f := newFake(t)
	f.Add(genRecords(250, 250, start, 10)...)
	p := mustPoller(t, source(t, f.URL(), func(c *config.Connector) { c.Poll.PageSize = 100 }))
	stop := run(t, e.runner(t, "snow", "a", p, e.b, &sleeps{}))
	waitFor(t, 20*time.Second, "250 tickets stored", func() (bool, string) {
		n := e.ingestCount(t)
		return n >= 250, fmt.Sprintf("%d stored", n)
	})
	polled := f.Table.Load()
	waitFor(t, 10*time.Second, "five more polls", func() (bool, string) {
		return f.Table.Load() >= polled+5, fmt.Sprintf("%d polls", f.Table.Load())
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, e, 250)
}

// TestRunnerCrashHalfPage: the process dies after storing half a page; a
// new runner resumes from the last stored cursor: nothing lost, nothing
// doubled.
func TestRunnerCrashHalfPage(t *testing.T) {
	e := newNATS(t)
	f := newFake(t)
	f.Add(genRecords(250, 60, start, 11)...)
	src := source(t, f.URL(), func(c *config.Connector) { c.Poll.PageSize = 100 })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sink := &crashSink{next: e.b, cancel: cancel}
	sink.budget.Store(150) // page 1 and half of page 2
	r := e.runner(t, "snow", "a", mustPoller(t, src), sink, &sleeps{})
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run of the dying runner = %v", err)
	}
	// The runner stores a page's tickets concurrently: page 1 is complete,
	// and up to 50 of page 2 made it before the "crash".
	if n := e.ingestCount(t); n < 100 || n > 150 {
		t.Fatalf("before the restart %d tickets are stored, want 100 to 150", n)
	}
	cur, _ := e.cursors.Load(t.Context(), "snow")
	var c struct {
		SysID string `json:"sys_id"`
	}
	if err := json.Unmarshal(cur, &c); err != nil || c.SysID == "" {
		t.Fatalf("stored cursor %s, want the end of page 1", cur)
	}
	// A new process: a new poller and runner on the same stores.
	stop := run(t, e.runner(t, "snow", "b", mustPoller(t, src), e.b, &sleeps{}))
	waitFor(t, 20*time.Second, "250 tickets stored", func() (bool, string) {
		n := e.ingestCount(t)
		return n >= 250, fmt.Sprintf("%d stored", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, e, 250)
}

// TestRunnerTwoReplicas: two runners for one source: only the lease
// holder polls; when it stops, the other takes over.
func TestRunnerTwoReplicas(t *testing.T) {
	e := newNATS(t)
	f := newFake(t)
	f.Add(genRecords(300, 7, start, 12)...)
	src := source(t, f.URL(), func(c *config.Connector) { c.Poll.PageSize = 50 })
	a := &countingPoller{Poller: mustPoller(t, src)}
	b := &countingPoller{Poller: mustPoller(t, src)}
	stopA := run(t, e.runner(t, "snow", "a", a, e.b, &sleeps{}))
	waitFor(t, 10*time.Second, "a holds the lease", func() (bool, string) {
		h, _ := e.leases.Holder(t.Context(), "snow")
		return h == "a", "holder " + h
	})
	stopB := run(t, e.runner(t, "snow", "b", b, e.b, &sleeps{}))
	waitFor(t, 20*time.Second, "300 tickets stored", func() (bool, string) {
		n := e.ingestCount(t)
		return n >= 300, fmt.Sprintf("%d stored", n)
	})
	polls := a.n.Load()
	waitFor(t, 10*time.Second, "a polls on", func() (bool, string) {
		return a.n.Load() >= polls+3, fmt.Sprintf("%d polls", a.n.Load())
	})
	if n := b.n.Load(); n != 0 {
		t.Errorf("the replica without the lease polled %d times", n)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	f.Add(genRecords(40, 7, start.Add(time.Hour), 13)...)
	waitFor(t, 20*time.Second, "b takes over and stores 40 more", func() (bool, string) {
		n := e.ingestCount(t)
		return n >= 340, fmt.Sprintf("%d stored, b polled %d times", n, b.n.Load())
	})
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, e, 340)
}

// TestRunnerStopsOn401: refused credentials stop the poller at once, with
// one request and ErrPollerStopped.
func TestRunnerStopsOn401(t *testing.T) {
	e := newNATS(t)
	f := newFake(t)
	f.Add(fixtureRecords(t, "incident_list_page1.json")...)
	src := source(t, f.URL(), func(c *config.Connector) { c.API.Auth.Password = config.NewSecret("expired") })
	sl := &sleeps{}
	r := e.runner(t, "snow", "a", mustPoller(t, src), e.b, sl)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := r.Run(ctx)
	if !errors.Is(err, connectors.ErrPollerStopped) || !connectors.IsVendorStatus(err, http.StatusUnauthorized) {
		t.Fatalf("Run = %v, want ErrPollerStopped with the 401", err)
	}
	if n := f.All.Load(); n != 1 {
		t.Errorf("requests = %d, want 1: no retry, no loop", n)
	}
	if h, _ := e.leases.Holder(t.Context(), "snow"); h != "" {
		t.Errorf("the stopped poller still holds the lease (%q)", h)
	}
}

// TestRunner429Honoured: a 429 whose rate-limit window resets in 10
// minutes makes the runner wait that long, with no request in between.
func TestRunner429Honoured(t *testing.T) {
	e := newNATS(t)
	f := newFake(t)
	f.Add(fixtureRecords(t, "incident_list_page1.json")...)
	f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n == 1 { // only the first request is limited
			f.TooMany(w, "120", time.Now().Add(10*time.Minute))
			return true
		}
		return false
	}
	sl := &sleeps{}
	stop := run(t, e.runner(t, "snow", "a", mustPoller(t, source(t, f.URL())), e.b, sl))
	waitFor(t, 10*time.Second, "2 tickets stored", func() (bool, string) {
		n := e.ingestCount(t)
		return n >= 2, fmt.Sprintf("%d stored", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := sl.all()
	if len(got) == 0 || got[0] < 9*time.Minute || got[0] > 10*time.Minute {
		t.Errorf("first wait = %v, want about 10m (X-RateLimit-Reset, beyond Retry-After 120)", got)
	}
	if f.Limited.Load() != 1 {
		t.Errorf("429 answers = %d, want 1 (not retried inside the call: Retry-After exceeds retry_wait_max)", f.Limited.Load())
	}
	checkStoredOnce(t, e, 2)
}

// TestRunnerBacklogBehindRateLimit drains 10,000 incidents from a fake
// that rate-limits every 7th request (Retry-After 0 or 1): every record
// is stored exactly once.
func TestRunnerBacklogBehindRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 tickets through NATS")
	}
	e := newNATS(t)
	f := newFake(t)
	const n = 10000
	f.Add(genRecords(n, 13, start, 14)...)
	f.RateEvery = 7
	f.RetryAfter = func(k int64) string { return []string{"0", "1"}[(k/7)%2] }
	src := source(t, f.URL(), func(c *config.Connector) { c.Poll.PageSize = 500 })
	sl := &sleeps{}
	stop := run(t, e.runner(t, "snow", "a", mustPoller(t, src), e.b, sl))
	waitFor(t, 50*time.Second, "10,000 tickets stored", func() (bool, string) {
		c := e.ingestCount(t)
		return c >= n, fmt.Sprintf("%d stored after %d requests", c, f.Table.Load())
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, e, n)
	if f.Limited.Load() == 0 {
		t.Error("the fake never rate-limited")
	}
	long := 0
	for _, d := range sl.all() {
		if d >= time.Second {
			long++
		}
	}
	if long == 0 {
		t.Error("no Retry-After: 1 reached the runner as a wait of at least 1s")
	}
	t.Logf("%d tickets in %d table requests (%d answered 429)", n, f.Table.Load(), f.Limited.Load())
}
