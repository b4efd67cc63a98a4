package jsm

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/busrig"
	"github.com/deskrelay/deskrelay/ticket"
)

// jetStream is a real in-process NATS server with deskrelay's streams and
// buckets, used as the runner's sink, dead-letter store, cursors and
// leases, as in production.
type jetStream struct {
	b       *bus.Bus
	cursors *bus.Cursors
	leases  *bus.Leases
	rig     *busrig.Rig
}

func startJetStream(t *testing.T) jetStream {
	t.Helper()
	r := busrig.Start(t, config.NATS{})
	return jetStream{b: r.Bus, cursors: r.Cursors, leases: r.Leases, rig: r}
}

// count is the number of messages in the stream of kind.
func (js jetStream) count(t *testing.T, kind string) uint64 { return js.rig.Count(t, kind) }

// countingSink counts the tickets the runner hands over, and can make the
// process "die" (cancel the runner) after a number of them were stored.
type countingSink struct {
	next   connectors.Sink
	n      atomic.Int64
	dieAt  int64 // fail and cancel on this call (1-based); 0 never
	cancel context.CancelFunc
}

func (s *countingSink) Ingest(ctx context.Context, t ticket.Ticket) error {
	if n := s.n.Add(1); n == s.dieAt {
		s.cancel()
		return errors.New("process killed")
	}
	return s.next.Ingest(ctx, t)
}

// clock is the runner's Sleep: a wait of one poll interval means the
// backlog is drained (signalled on idle, then it waits for the test to
// stop the runner); other waits (backoff, lease) are recorded and kept
// under 20 ms of real time.
type clock struct {
	interval time.Duration
	idle     chan struct{}
	mu       sync.Mutex
	waits    []time.Duration
}

func newClock() *clock { return &clock{interval: time.Minute, idle: make(chan struct{}, 1)} }

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if d == c.interval {
		select {
		case c.idle <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	tm := time.NewTimer(min(d, 20*time.Millisecond))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func (c *clock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

func (js jetStream) runner(t *testing.T, p connectors.Poller, sink connectors.Sink, holder string, c *clock) *connectors.PollRunner {
	return &connectors.PollRunner{
		Source: "jira", Holder: holder, Poller: p, Sink: sink, DLQ: js.b,
		Cursors: js.cursors, Lease: js.leases, Interval: c.interval, LeaseTTL: 30 * time.Second,
		Log: zaptest.NewLogger(t), Metrics: connectors.NewPollMetrics(nil), Sleep: c.Sleep,
	}
}

// run starts r and returns a function that stops it (cancel, then wait)
// and returns Run's error.
func run(t *testing.T, r *connectors.PollRunner, ctx context.Context, cancel context.CancelFunc) func() error {
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

func waitIdle(t *testing.T, c *clock, within time.Duration) {
	t.Helper()
	select {
	case <-c.idle:
	case <-time.After(within):
		t.Fatalf("backlog not drained within %s", within)
	}
}

// quietSource is pollSource without per-request debug logs (thousands of
// requests would drown the test output).
func quietSource(t *testing.T, base string) connectors.Source {
	src := pollSource(t, base, nil)
	src.Log = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	return src
}

var backlog = flag.Int("backlog", 0, "issues in the backlog drain test (default 10000, 3000 under -race)")

func TestRunnerDrainsBacklogExactlyOnce(t *testing.T) {
	n := *backlog
	if n == 0 {
		n = 10000
		if raceEnabled {
			n = 3000
		}
	}
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	// 250 issues in one millisecond, then 9,750 at 400 a minute: every
	// minute holds more than a page, so the walk uses tokens and keyset
	// restarts both.
	f.add(1, 250, func(int) time.Time { return base.Add(30*time.Second + 7*time.Millisecond) })
	f.add(251, n-250, func(i int) time.Time { return base.Add(time.Minute + time.Duration(i)*150*time.Millisecond) })
	p := newTestPoller(t, quietSource(t, srv.URL))
	sink := &countingSink{next: js.b}
	c := newClock()
	ctx, cancel := context.WithCancel(t.Context())
	stop := run(t, js.runner(t, p, sink, "replica-a", c), ctx, cancel)
	start := time.Now()
	waitIdle(t, c, 50*time.Second)
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := js.count(t, bus.KindIngest); got != uint64(n) {
		t.Errorf("ingest stream holds %d messages, want %d", got, n)
	}
	if got := sink.n.Load(); got != int64(n) {
		t.Errorf("runner handed over %d tickets, want %d (none twice)", got, n)
	}
	reqs, _ := f.stats()
	t.Logf("drained %d issues in %s (%.0f tickets/s) with %d search requests of page_size 100", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), reqs)
	raw, err := js.cursors.Load(t.Context(), "jira")
	if err != nil {
		t.Fatal(err)
	}
	var cur cursor
	json.Unmarshal(raw, &cur)
	if want := base.Add(time.Minute + time.Duration(n-251)*150*time.Millisecond); !cur.HWM.Equal(want) {
		t.Errorf("stored watermark %v, want %v", cur.HWM, want)
	}
}

func TestRunnerRestartsAfterDyingMidPage(t *testing.T) {
	const n = 500
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	f.add(1, 250, func(int) time.Time { return base.Add(20 * time.Second) })
	f.add(251, 250, func(i int) time.Time { return base.Add(time.Minute + time.Duration(i)*time.Second) })
	ctx, cancel := context.WithCancel(t.Context())
	// Dies after storing half of the second page.
	dying := &countingSink{next: js.b, dieAt: 151, cancel: cancel}
	c := newClock()
	died := make(chan error, 1)
	r := js.runner(t, newTestPoller(t, quietSource(t, srv.URL)), dying, "replica-a", c)
	go func() { died <- r.Run(ctx) }()
	select {
	case err := <-died:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the runner did not reach its death within 20s")
	}
	// The runner stores a page's tickets in parallel: some of the page it
	// died in are stored, some not, and its cursor was not stored.
	if got := js.count(t, bus.KindIngest); got <= 100 || got >= 200 {
		t.Fatalf("before the restart the stream holds %d, want the first page and part of the next (100 < n < 200)", got)
	}
	// A new process: a new poller from the stored cursor.
	sink := &countingSink{next: js.b}
	c = newClock()
	ctx, cancel = context.WithCancel(t.Context())
	stop := run(t, js.runner(t, newTestPoller(t, quietSource(t, srv.URL)), sink, "replica-b", c), ctx, cancel)
	waitIdle(t, c, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := js.count(t, bus.KindIngest); got != n {
		t.Errorf("ingest stream holds %d messages, want %d: nothing lost, nothing doubled", got, n)
	}
	// The restart re-hands the page it died in (part of which was stored
	// and is dropped by Nats-Msg-Id), and nothing else twice.
	if got := sink.n.Load(); got != n-100 {
		t.Errorf("restarted runner handed over %d tickets, want %d", got, n-100)
	}
}

func TestRunnerOnlyOneReplicaPolls(t *testing.T) {
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	f.add(1, 300, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	var calls [2]atomic.Int64
	clocks := [2]*clock{newClock(), newClock()}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stops []func() error
	for i, holder := range []string{"replica-a", "replica-b"} {
		p := &countingPoller{next: newTestPoller(t, quietSource(t, srv.URL)), n: &calls[i]}
		stops = append(stops, run(t, js.runner(t, p, js.b, holder, clocks[i]), ctx, cancel))
	}
	select {
	case <-clocks[0].idle:
	case <-clocks[1].idle:
	case <-time.After(20 * time.Second):
		t.Fatal("no replica drained the backlog within 20s")
	}
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	a, b := calls[0].Load(), calls[1].Load()
	if (a == 0) == (b == 0) {
		t.Errorf("polls by replica a, b = %d, %d; want exactly one replica polling", a, b)
	}
	if got := js.count(t, bus.KindIngest); got != 300 {
		t.Errorf("ingest stream holds %d messages, want 300", got)
	}
}

type countingPoller struct {
	next connectors.Poller
	n    *atomic.Int64
}

func (p *countingPoller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	p.n.Add(1)
	return p.next.Poll(ctx, cur)
}

func TestRunnerStopsOn401(t *testing.T) {
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	src := quietSource(t, srv.URL)
	src.Config.API.Auth.Username = "revoked@example.com"
	c := newClock()
	r := js.runner(t, newTestPoller(t, src), js.b, "replica-a", c)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := r.Run(ctx)
	if !errors.Is(err, connectors.ErrPollerStopped) || !connectors.IsVendorStatus(err, http.StatusUnauthorized) {
		t.Fatalf("Run = %v, want ErrPollerStopped with the 401", err)
	}
	if n, _ := f.stats(); n != 1 {
		t.Errorf("Jira was asked %d times, want 1: no retry, no loop", n)
	}
}

func TestRunnerHonoursRateLimit(t *testing.T) {
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	f.add(1, 3, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	reset := time.Now().UTC().Add(3 * time.Minute).Truncate(time.Minute)
	f.script = []func(http.ResponseWriter, *http.Request) bool{func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Retry-After", "5")
		w.Header().Set("X-RateLimit-Reset", reset.Format("2006-01-02T15:04Z"))
		w.Header().Set("RateLimit-Reason", "jira-burst-based")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}}
	c := newClock()
	ctx, cancel := context.WithCancel(t.Context())
	stop := run(t, js.runner(t, newTestPoller(t, quietSource(t, srv.URL)), js.b, "replica-a", c), ctx, cancel)
	waitIdle(t, c, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waits := c.recorded()
	if len(waits) != 1 || waits[0] < 2*time.Minute {
		t.Errorf("runner waited %v, want one wait until the reset at %s (≥ 2m, beyond Retry-After: 5)", waits, reset.Format("15:04Z"))
	}
	if n, _ := f.stats(); n != 2 {
		t.Errorf("Jira was asked %d times, want 2 (the 429, then the page)", n)
	}
	if got := js.count(t, bus.KindIngest); got != 3 {
		t.Errorf("ingest stream holds %d, want 3", got)
	}
}

func TestRunnerDeadLettersOnce(t *testing.T) {
	js := startJetStream(t)
	f, srv := newFakeJira(t)
	f.add(1, 3, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	f.issues["2"].raw = json.RawMessage(`{"id":"2","key":"ITS-2","fields":{"summary":"","updated":"2024-05-13T12:00:01.000+0200"}}`)
	p := newTestPoller(t, quietSource(t, srv.URL))
	for round := range 2 { // the second round re-reads the overlap
		c := newClock()
		ctx, cancel := context.WithCancel(t.Context())
		stop := run(t, js.runner(t, p, js.b, "replica-a", c), ctx, cancel)
		waitIdle(t, c, 20*time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got := js.count(t, bus.KindIngest); got != 2 {
			t.Errorf("round %d: ingest stream holds %d, want 2", round, got)
		}
		if got := js.count(t, bus.KindDLQ); got != 1 {
			t.Errorf("round %d: dlq stream holds %d, want 1", round, got)
		}
	}
}
