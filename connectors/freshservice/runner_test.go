package freshservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/busrig"
	"github.com/deskrelay/deskrelay/ticket"
)

// newTestBus starts an in-process JetStream server and provisions the
// streams and buckets.
func newTestBus(t testing.TB) *bus.Bus { return busrig.Start(t, config.NATS{}).Bus }

// streamCount returns the messages stored in the stream of kind.
func streamCount(t testing.TB, b *bus.Bus, kind string) uint64 {
	t.Helper()
	return busrig.Count(t, b, kind)
}

// distinctVersions reads the ingest stream and counts messages per
// ticket id and update time: every version must be stored exactly once.
func distinctVersions(t testing.TB, b *bus.Bus) (versions map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := b.JetStream().OrderedConsumer(ctx, b.StreamName(bus.KindIngest), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := streamCount(t, b, bus.KindIngest)
	versions = map[string]int{}
	for n := uint64(0); n < want; {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			tk, err := ticket.Decode(m.Data())
			if err != nil {
				t.Fatalf("stored message is not a ticket: %v", err)
			}
			versions[tk.ID+"@"+tk.UpdatedAt.Format(time.RFC3339)]++
			got++
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("read %d of %d messages", n, want)
			case <-time.After(10 * time.Millisecond): // bounded poll of the server
			}
		}
		n += uint64(got)
	}
	return versions
}

// runnerRig is a poll runner for one source on the fake clock: its Sleep
// advances the clock (nothing waits in real time) and hands control to
// the test's onSleep.
type runnerRig struct {
	t       *testing.T
	b       *bus.Bus
	clock   *clock
	sleeps  []time.Duration
	mu      sync.Mutex
	onSleep func(ctx context.Context, d time.Duration) error
}

func (r *runnerRig) runner(p connectors.Poller, sink connectors.Sink, holder string) *connectors.PollRunner {
	r.t.Helper()
	ctx := r.t.Context()
	cursors, err := r.b.Cursors(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	leases, err := r.b.Leases(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if sink == nil {
		sink = r.b
	}
	return &connectors.PollRunner{
		Source: "freshservice", Holder: holder, Poller: p, Sink: sink, DLQ: r.b,
		Cursors: cursors, Lease: leases, Interval: time.Minute, LeaseTTL: 30 * time.Second,
		Log: zaptest.NewLogger(r.t), Metrics: connectors.NewPollMetrics(nil),
		Now: r.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			r.mu.Lock()
			r.sleeps = append(r.sleeps, d)
			r.mu.Unlock()
			r.clock.Advance(d)
			if err := ctx.Err(); err != nil {
				return err
			}
			if r.onSleep != nil {
				return r.onSleep(ctx, d)
			}
			return nil
		},
	}
}

// run runs pr until it returns; the result arrives on the channel.
func run(ctx context.Context, pr *connectors.PollRunner) <-chan error {
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	return done
}

func wait(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return within 60s", what)
		return nil
	}
}

// idleAfter returns an onSleep that, once the ingest stream holds want
// messages and the runner has gone idle (slept poll.interval) twice more
// (a full walk that found nothing new), cancels the run.
func idleAfter(t *testing.T, b *bus.Bus, want uint64, cancel context.CancelFunc) func(context.Context, time.Duration) error {
	idle := 0
	return func(ctx context.Context, d time.Duration) error {
		if d != time.Minute {
			return nil // a backoff or a Retry-After
		}
		if streamCount(t, b, bus.KindIngest) < want {
			return nil
		}
		if idle++; idle >= 2 {
			cancel()
			return context.Canceled
		}
		return nil
	}
}

// A backlog is drained page by page under the vendor's rate limit while
// tickets are updated and created during the walk: every version is
// stored exactly once, whatever field the vendor sorts by.
func TestRunnerDrainsBacklog(t *testing.T) {
	for _, tt := range []struct {
		name      string
		records   int
		byUpdated bool
	}{
		{"10,000 records sorted by created_at", 10000, false},
		{"2,000 records sorted by updated_at", 2000, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			b := newTestBus(t)
			f, srv := newFakeAPI(t, c)
			f.byUpdated = tt.byUpdated
			f.limit = 140 // Enterprise plan's list-tickets sub-limit per minute
			start := c.Now().Add(-20 * time.Hour)
			f.addBacklog(1, tt.records, start, 30*time.Minute)
			// 250 records updated in one second, spread over three pages.
			shared := c.Now().Add(-3 * time.Hour)
			for i := 1000; i < 1250; i++ {
				f.records[i].Updated = shared
			}
			// 250 more in the second that becomes the next window's start.
			edge := c.Now().Add(-DefaultOverlap)
			for i := 1500; i < 1750; i++ {
				f.records[i].Updated = edge
			}
			// During the walk: 5 tickets change (some already stored, some
			// not yet read), 3 are created, one 500 and one 429 with
			// Retry-After happen.
			f.onRequest = func(n int, f *fakeAPI) {
				switch n {
				case 6:
					now := c.Now()
					for _, i := range []int{len(f.records) - 1, len(f.records) - 2, len(f.records) - 150, 10, 20} {
						f.records[i].Updated = now
					}
					for i := range 3 {
						id := int64(100000 + i)
						f.records = append(f.records, fakeRecord{ID: id, Created: now, Updated: now, Subject: fmt.Sprint("new ", id)})
					}
				case 9:
					f.script = append(f.script, status(http.StatusInternalServerError))
				case 12:
					f.script = append(f.script, answer(t, "rate_limited_429.headers", ""))
				}
			}
			// Every current version must be stored, and every version the
			// vendor served (an old one read before its change): each once.
			// The runner stops after it went idle twice with all current
			// versions stored.
			current := uint64(tt.records + 3)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			rig := &runnerRig{t: t, b: b, clock: c}
			rig.onSleep = idleAfter(t, b, current, cancel)
			p := testPoller(t, testSource(t, srv.URL, nil), c)
			began := time.Now()
			if err := wait(t, "runner", run(ctx, rig.runner(p, nil, "replica-a"))); err != nil {
				t.Fatalf("Run = %v", err)
			}
			took := time.Since(began)
			f.mu.Lock()
			defer f.mu.Unlock()
			want := uint64(len(f.served))
			if got := streamCount(t, b, bus.KindIngest); got != want {
				t.Errorf("ingest stream holds %d tickets, want %d (the versions served)", got, want)
			}
			versions := distinctVersions(t, b)
			for v, n := range versions {
				if n != 1 {
					t.Errorf("version %s stored %d times", v, n)
				}
				if !f.served[v] {
					t.Errorf("version %s stored but never served", v)
				}
			}
			for v := range f.served {
				if versions[v] != 1 {
					t.Errorf("served version %s stored %d times", v, versions[v])
				}
			}
			for _, r := range f.records {
				if versions[version(r)] != 1 {
					t.Errorf("current version %s stored %d times", version(r), versions[version(r)])
				}
			}
			if got := streamCount(t, b, bus.KindDLQ); got != 0 {
				t.Errorf("dead letters = %d, want 0", got)
			}
			honoured := false
			for _, d := range rig.sleeps {
				honoured = honoured || d >= 27*time.Second && d < time.Minute
			}
			if !honoured {
				t.Errorf("runner sleeps %v: none honours the 429's Retry-After: 27", rig.sleeps)
			}
			t.Logf("drained %d ticket versions (%d current) in %s (%.0f tickets/s on this machine) with %d requests (%d×200, %d×429, %d×500) and %.0f minutes of vendor time",
				want, current, took.Round(time.Millisecond), float64(want)/took.Seconds(), f.requests, f.status[200], f.status[429], f.status[500], c.Now().Sub(newClock().Now()).Minutes())
		})
	}
}

// crashingSink stores through the bus until after tickets have been
// stored, then cancels the runner (a process that dies mid-page).
type crashingSink struct {
	mu     sync.Mutex
	b      *bus.Bus
	after  int
	n      int
	cancel context.CancelFunc
}

func (s *crashingSink) Ingest(ctx context.Context, t ticket.Ticket) error {
	s.mu.Lock()
	if s.n >= s.after {
		s.mu.Unlock()
		s.cancel()
		return errors.New("process killed")
	}
	s.n++
	s.mu.Unlock()
	return s.b.Ingest(ctx, t)
}

func TestRunnerResumesAfterCrashMidPage(t *testing.T) {
	c := newClock()
	b := newTestBus(t)
	f, srv := newFakeAPI(t, c)
	const records = 450
	f.addBacklog(1, records, c.Now().Add(-10*time.Hour), time.Minute)
	src := testSource(t, srv.URL, nil)
	rig := &runnerRig{t: t, b: b, clock: c}

	// First life: dies after storing half of the third page.
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	sink := &crashingSink{b: b, after: 250, cancel: cancel1}
	if err := wait(t, "first runner", run(ctx1, rig.runner(testPoller(t, src, c), sink, "replica-a"))); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	// The runner stores a page's tickets concurrently: the crash hits the
	// third page part way, after pages 1 and 2 were stored whole.
	if got := streamCount(t, b, bus.KindIngest); got < 200 || got > 250 {
		t.Fatalf("before the crash %d tickets were stored, want 200 to 250", got)
	}
	cursors, _ := b.Cursors(t.Context())
	raw, err := cursors.Load(t.Context(), "freshservice")
	if err != nil {
		t.Fatal(err)
	}
	if cur := decodeCursor(t, raw); cur.Page != 3 {
		t.Errorf("stored cursor = %s; want page 3 (pages 1 and 2 fully stored)", raw)
	}

	// Second life: a new process with a new poller resumes from the cursor.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	rig.onSleep = idleAfter(t, b, records, cancel2)
	if err := wait(t, "second runner", run(ctx2, rig.runner(testPoller(t, src, c), nil, "replica-b"))); err != nil {
		t.Fatalf("second Run = %v", err)
	}
	if got := streamCount(t, b, bus.KindIngest); got != records {
		t.Errorf("after the restart the stream holds %d tickets, want %d", got, records)
	}
	if got := f.queries[3].Get("page"); got != "3" {
		t.Errorf("the restart asked for page %s first, want 3", got)
	}
}

// countingPoller counts the polls of one replica.
type countingPoller struct {
	connectors.Poller
	n atomic.Int32
}

func (c *countingPoller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	c.n.Add(1)
	return c.Poller.Poll(ctx, cur)
}

func TestOnlyTheLeaseHolderPolls(t *testing.T) {
	c := newClock()
	b := newTestBus(t)
	f, srv := newFakeAPI(t, c)
	f.addBacklog(1, 120, c.Now().Add(-time.Hour), time.Minute)
	src := testSource(t, srv.URL, nil)

	// Replica A takes the lease and drains; then it idles, holding it.
	aIdle := make(chan struct{})
	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	rigA := &runnerRig{t: t, b: b, clock: c}
	var once sync.Once
	rigA.onSleep = func(ctx context.Context, d time.Duration) error {
		if d == time.Minute && streamCount(t, b, bus.KindIngest) == 120 {
			once.Do(func() { close(aIdle) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	a := &countingPoller{Poller: testPoller(t, src, c)}
	doneA := run(ctxA, rigA.runner(a, nil, "replica-a"))
	select {
	case <-aIdle:
	case <-time.After(60 * time.Second):
		t.Fatal("replica A did not drain within 60s")
	}

	// Replica B finds the lease held and waits; it must not poll.
	bWaiting := make(chan struct{})
	aGone := make(chan struct{})
	ctxB, cancelB := context.WithCancel(t.Context())
	defer cancelB()
	rigB := &runnerRig{t: t, b: b, clock: &clock{now: c.Now()}}
	var bOnce sync.Once
	bPoller := &countingPoller{Poller: testPoller(t, src, c)}
	rigB.onSleep = func(ctx context.Context, d time.Duration) error {
		if d == 10*time.Second { // LeaseTTL/3: the lease is held elsewhere
			bOnce.Do(func() { close(bWaiting) })
			select {
			case <-aGone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if d == time.Minute { // B polled after A left: done
			cancelB()
			return context.Canceled
		}
		return nil
	}
	doneB := run(ctxB, rigB.runner(bPoller, nil, "replica-b"))
	select {
	case <-bWaiting:
	case <-time.After(60 * time.Second):
		t.Fatal("replica B never waited for the lease")
	}
	if n := bPoller.n.Load(); n != 0 {
		t.Errorf("replica B polled %d times while A held the lease", n)
	}

	// A stops and releases the lease: B takes over and finds nothing new.
	cancelA()
	if err := wait(t, "replica A", doneA); err != nil {
		t.Fatalf("replica A Run = %v", err)
	}
	close(aGone)
	if err := wait(t, "replica B", doneB); err != nil {
		t.Fatalf("replica B Run = %v", err)
	}
	if bPoller.n.Load() == 0 {
		t.Error("replica B did not take over after A released the lease")
	}
	if got := streamCount(t, b, bus.KindIngest); got != 120 {
		t.Errorf("ingest stream holds %d tickets, want 120", got)
	}
	if a.n.Load() == 0 {
		t.Error("replica A never polled")
	}
}

func TestRunnerStopsOn401(t *testing.T) {
	c := newClock()
	b := newTestBus(t)
	f, srv := newFakeAPI(t, c)
	f.addBacklog(1, 10, c.Now().Add(-time.Hour), time.Minute)
	src := testSource(t, srv.URL, func(c *config.Connector) { c.API.Auth.Username = "revoked-key" })
	rig := &runnerRig{t: t, b: b, clock: c}
	err := wait(t, "runner", run(t.Context(), rig.runner(testPoller(t, src, c), nil, "replica-a")))
	if !errors.Is(err, connectors.ErrPollerStopped) || !connectors.IsVendorStatus(err, http.StatusUnauthorized) {
		t.Errorf("Run = %v; want ErrPollerStopped wrapping the 401", err)
	}
	if got := f.total(); got != 1 {
		t.Errorf("requests = %d, want exactly 1 (no retry, no loop)", got)
	}
	if len(rig.sleeps) != 0 {
		t.Errorf("runner slept %v before stopping", rig.sleeps)
	}
	if got := streamCount(t, b, bus.KindIngest); got != 0 {
		t.Errorf("ingest stream holds %d tickets", got)
	}
}

// A 429 whose Retry-After exceeds api.retry_wait_max: the call ends and
// the runner waits the Retry-After out before the next request.
func TestRunnerHonoursRetryAfter(t *testing.T) {
	c := newClock()
	b := newTestBus(t)
	f, srv := newFakeAPI(t, c)
	f.addBacklog(1, 10, c.Now().Add(-time.Hour), time.Minute)
	var limitedAt, retriedAt time.Time
	f.script = append(f.script, func(w http.ResponseWriter, r *http.Request) bool {
		limitedAt = c.Now()
		serveFixture(t, w, "rate_limited_429.headers", "")
		return true
	}, func(http.ResponseWriter, *http.Request) bool {
		retriedAt = c.Now()
		return false
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rig := &runnerRig{t: t, b: b, clock: c}
	rig.onSleep = idleAfter(t, b, 10, cancel)
	if err := wait(t, "runner", run(ctx, rig.runner(testPoller(t, testSource(t, srv.URL, nil), c), nil, "replica-a"))); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := retriedAt.Sub(limitedAt); got < 27*time.Second {
		t.Errorf("retried %s after the 429, want at least its Retry-After: 27s (sleeps %v)", got, rig.sleeps)
	}
	if f.count(429) != 1 || streamCount(t, b, bus.KindIngest) != 10 {
		t.Errorf("429s = %d, stored = %d; want 1 and 10", f.count(429), streamCount(t, b, bus.KindIngest))
	}
}
