package zendesk

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

	"go.uber.org/zap/zaptest"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/busrig"
	"github.com/deskrelay/deskrelay/ticket"
)

// natsEnv is a real in-process JetStream with deskrelay's streams and
// buckets, as the poll runner uses them in production.
type natsEnv struct {
	b       *bus.Bus
	cursors *bus.Cursors
	leases  *bus.Leases
	rig     *busrig.Rig
}

func startNATS(t *testing.T) natsEnv {
	t.Helper()
	r := busrig.Start(t, config.NATS{})
	return natsEnv{b: r.Bus, cursors: r.Cursors, leases: r.Leases, rig: r}
}

// streamCount is the number of messages in a stream.
func (e natsEnv) streamCount(t *testing.T, kind string) uint64 { return e.rig.Count(t, kind) }

// storedIDs counts the ingest stream's messages per ticket id, read with
// an ordered consumer in batches.
func (e natsEnv) storedIDs(t *testing.T) map[string]int {
	t.Helper()
	n := int(e.streamCount(t, bus.KindIngest))
	c, err := e.b.JetStream().OrderedConsumer(t.Context(), e.b.StreamName(bus.KindIngest), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for read := 0; read < n; {
		batch, err := c.Fetch(min(1000, n-read), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var tk ticket.Ticket
			if err := json.Unmarshal(m.Data(), &tk); err != nil {
				t.Fatal(err)
			}
			ids[tk.ID]++
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch after %d of %d messages: %v", read, n, err)
		}
		if got == 0 {
			t.Fatalf("fetch returned nothing after %d of %d messages", read, n)
		}
		read += got
	}
	return ids
}

// countingSink stores through the bus and counts what JetStream stored
// anew and what it dropped as a duplicate; it closes done once want
// tickets were stored anew. crashAfter > 0 makes the Ingest after that
// many stored tickets fail and call crash, like a process dying mid-page.
type countingSink struct {
	b          *bus.Bus
	want       int
	done       chan struct{}
	crashAfter int
	crash      func()

	mu      sync.Mutex
	stored  int
	dups    int
	ingests int
}

func newCountingSink(b *bus.Bus, want int) *countingSink {
	return &countingSink{b: b, want: want, done: make(chan struct{})}
}

func (s *countingSink) Ingest(ctx context.Context, t ticket.Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ingests++
	if s.crashAfter > 0 && s.ingests > s.crashAfter {
		s.crash()
		return errors.New("process died")
	}
	dup, err := s.b.IngestResult(ctx, t)
	if err != nil {
		return err
	}
	if dup {
		s.dups++
		return nil
	}
	s.stored++
	if s.stored == s.want {
		close(s.done)
	}
	return nil
}

func (s *countingSink) counts() (stored, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored, s.dups
}

// sleeps records the runner's waits; waits of a second or more are
// skipped (the fake clock "passes" them), shorter ones really wait.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	if d >= time.Second {
		s.mu.Lock()
		s.d = append(s.d, d)
		s.mu.Unlock()
		return ctx.Err()
	}
	return connectors.Sleep(ctx, d)
}

func (s *sleeps) long() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newRunner(t *testing.T, env natsEnv, src connectors.Source, p connectors.Poller, holder string, sink connectors.Sink, sl *sleeps) *connectors.PollRunner {
	r := &connectors.PollRunner{
		Source: src.Name, Holder: holder, Poller: p, Sink: sink, DLQ: env.b,
		Cursors: env.cursors, Lease: env.leases,
		Interval: src.Config.Poll.Interval, LeaseTTL: src.Config.Poll.LeaseTTL,
		Log: zaptest.NewLogger(t), Metrics: src.Metrics,
	}
	if sl != nil {
		r.Sleep = sl.sleep
	}
	return r
}

// run starts r and returns a stop function that cancels it and returns
// what Run returned.
func run(t *testing.T, r *connectors.PollRunner) (stop func() error, result <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() { res <- r.Run(ctx) }()
	stop = func() error {
		cancel()
		select {
		case err := <-res:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("poll runner did not stop within 10s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return stop, res
}

func waitDone(t *testing.T, done <-chan struct{}, what string, report func() string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		t.Fatalf("%s: not done after 45s; %s", what, report())
	}
}

// TestRunnerDrainsBacklog drains a backlog through the real poll runner
// into JetStream: every ticket stored exactly once, although groups of
// tickets share an update second across page boundaries and Zendesk
// answers 429 to every fourth request.
func TestRunnerDrainsBacklog(t *testing.T) {
	base := time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		n, same    int
		pageSize   int
		limitEvery int32 // every n-th request is answered 429; 0 never
	}{
		{"250 tickets in one second across page boundaries", 250, 250, 100, 0},
		{"a 10000-ticket backlog with 429s, 300 tickets a second", 10000, 300, 1000, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := startNATS(t)
			f := newFake(t, genRecords(tt.n, tt.same, base))
			var limited atomic.Int32
			if tt.limitEvery > 0 {
				f.setAnswer(func(n int, w http.ResponseWriter, r *http.Request) bool {
					if int32(n)%tt.limitEvery != 0 {
						return false
					}
					limited.Add(1)
					serveFixture(t, w, "rate_limited_429_incremental.headers", "rate_limited_429_incremental.json")
					return true
				})
			}
			src := pollSource(t, f.srv.URL, nil)
			src.Config.Poll.PageSize = tt.pageSize
			sink := newCountingSink(env.b, tt.n)
			sl := &sleeps{}
			start := time.Now()
			stop, _ := run(t, newRunner(t, env, src, newTestPoller(t, src), "a", sink, sl))
			waitDone(t, sink.done, "drain", func() string {
				s, d := sink.counts()
				return fmt.Sprintf("%d stored, %d duplicates, %d requests", s, d, f.requests.Load())
			})
			took := time.Since(start)
			if err := stop(); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if got := env.streamCount(t, bus.KindIngest); got != uint64(tt.n) {
				t.Errorf("ingest stream holds %d messages, want %d", got, tt.n)
			}
			ids := env.storedIDs(t)
			for id, c := range ids {
				if c != 1 {
					t.Errorf("ticket %s stored %d times", id, c)
				}
			}
			if len(ids) != tt.n {
				t.Errorf("%d distinct tickets stored, want %d", len(ids), tt.n)
			}
			for _, d := range sl.long() {
				if d < 47*time.Second {
					t.Errorf("runner waited %s after a 429 with Retry-After: 47", d)
				}
			}
			if got := len(sl.long()); got != int(limited.Load()) {
				t.Errorf("runner waited %d times, want once per 429 (%d)", got, limited.Load())
			}
			pages := (tt.n + tt.pageSize - 1) / tt.pageSize
			t.Logf("drained %d tickets in %d pages with %d requests (%d answered 429) in %s: %.0f tickets/s without the rate-limit waits",
				tt.n, pages, f.requests.Load(), limited.Load(), took.Round(time.Millisecond), float64(tt.n)/took.Seconds())
		})
	}
}

// TestRunnerRestartsAfterCrash kills the runner after it stored half of a
// page; a new runner resumes from the last stored cursor, re-reads that
// page (JetStream drops the stored half as duplicates) and finishes.
func TestRunnerRestartsAfterCrash(t *testing.T) {
	const n, page = 500, 100
	env := startNATS(t)
	f := newFake(t, genRecords(n, 7, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC)))
	src := pollSource(t, f.srv.URL, nil)
	src.Config.Poll.PageSize = page

	first := newCountingSink(env.b, n)
	first.crashAfter = 2*page + page/2 // two pages and half of the third
	var stop func() error
	crashed := make(chan struct{})
	first.crash = sync.OnceFunc(func() { close(crashed) })
	stop, _ = run(t, newRunner(t, env, src, newTestPoller(t, src), "a", first, &sleeps{}))
	waitDone(t, crashed, "crash", func() string { s, _ := first.counts(); return fmt.Sprintf("%d stored", s) })
	if err := stop(); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	stored, _ := first.counts()
	if stored != first.crashAfter {
		t.Fatalf("first runner stored %d tickets before dying, want %d", stored, first.crashAfter)
	}
	cur, err := env.cursors.Load(t.Context(), src.Name)
	if err != nil || cur == nil {
		t.Fatalf("stored cursor = %s, %v; want the cursor after page 2", cur, err)
	}

	second := newCountingSink(env.b, n-stored)
	stop, _ = run(t, newRunner(t, env, src, newTestPoller(t, src), "b", second, &sleeps{}))
	waitDone(t, second.done, "resume", func() string {
		s, d := second.counts()
		return fmt.Sprintf("%d stored, %d duplicates", s, d)
	})
	if err := stop(); err != nil {
		t.Fatalf("second Run = %v", err)
	}
	if _, dups := second.counts(); dups != page/2 {
		t.Errorf("second runner re-sent %d stored tickets, want %d (the half page)", dups, page/2)
	}
	if got := env.streamCount(t, bus.KindIngest); got != n {
		t.Errorf("ingest stream holds %d messages, want %d", got, n)
	}
	for id, c := range env.storedIDs(t) {
		if c != 1 {
			t.Errorf("ticket %s stored %d times", id, c)
		}
	}
}

// countingPoller counts the Poll calls of one replica.
type countingPoller struct {
	connectors.Poller
	calls atomic.Int32
}

func (c *countingPoller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	c.calls.Add(1)
	return c.Poller.Poll(ctx, cur)
}

// TestRunnerOneReplicaPolls runs two replicas for one source: only the
// lease holder polls.
func TestRunnerOneReplicaPolls(t *testing.T) {
	const n = 300
	env := startNATS(t)
	f := newFake(t, genRecords(n, 3, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC)))
	src := pollSource(t, f.srv.URL, nil)
	src.Config.Poll.LeaseTTL = 3 * time.Second
	sink := newCountingSink(env.b, n)
	a := &countingPoller{Poller: newTestPoller(t, src)}
	b := &countingPoller{Poller: newTestPoller(t, src)}
	stopA, _ := run(t, newRunner(t, env, src, a, "replica-a", sink, nil))
	stopB, _ := run(t, newRunner(t, env, src, b, "replica-b", sink, nil))
	waitDone(t, sink.done, "drain", func() string { s, _ := sink.counts(); return fmt.Sprintf("%d stored", s) })
	holder, err := env.leases.Holder(t.Context(), src.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	ca, cb := a.calls.Load(), b.calls.Load()
	if (ca == 0) == (cb == 0) {
		t.Errorf("polls: replica-a %d, replica-b %d; want exactly one replica polling", ca, cb)
	}
	if want := map[bool]string{true: "replica-a", false: "replica-b"}[ca > 0]; holder != want {
		t.Errorf("lease holder = %q, want %q (the replica that polled)", holder, want)
	}
	if got := env.streamCount(t, bus.KindIngest); got != n {
		t.Errorf("ingest stream holds %d messages, want %d", got, n)
	}
}

// TestRunnerStopsOn401 checks that refused credentials stop the poller at
// once: one request, no retry loop.
func TestRunnerStopsOn401(t *testing.T) {
	env := startNATS(t)
	f := newFake(t, genRecords(10, 1, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC)))
	src := pollSource(t, f.srv.URL, nil)
	src.Config.API.Auth.Password = config.NewSecret("revoked-token")
	_, result := run(t, newRunner(t, env, src, newTestPoller(t, src), "a", newCountingSink(env.b, 10), &sleeps{}))
	select {
	case err := <-result:
		var ve *connectors.VendorError
		if !errors.Is(err, connectors.ErrPollerStopped) || !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized {
			t.Errorf("Run = %v, want ErrPollerStopped with the 401", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run still running 10s after a 401; %d requests so far", f.requests.Load())
	}
	if got := f.requests.Load(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
	if got := env.streamCount(t, bus.KindIngest); got != 0 {
		t.Errorf("ingest stream holds %d messages, want 0", got)
	}
}

// TestRunnerDeadLettersBadRecords checks that a record that cannot be
// normalised goes to the DLQ once, and the rest of the page is stored.
func TestRunnerDeadLettersBadRecords(t *testing.T) {
	env := startNATS(t)
	records := genRecords(5, 1, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC))
	records[2].body = []byte(`{"id":100002,"generated_timestamp":` + fmt.Sprint(records[2].ts) + `,"updated_at":"not a time","subject":"x"}`)
	f := newFake(t, records)
	src := pollSource(t, f.srv.URL, nil)
	sink := newCountingSink(env.b, 4)
	dlq := &signalDLQ{next: env.b, done: make(chan struct{})}
	r := newRunner(t, env, src, newTestPoller(t, src), "a", sink, &sleeps{})
	r.DLQ = dlq
	stop, _ := run(t, r)
	waitDone(t, sink.done, "drain", func() string { s, _ := sink.counts(); return fmt.Sprintf("%d stored", s) })
	waitDone(t, dlq.done, "dead letter", func() string { return "no dead letter" })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := env.streamCount(t, bus.KindDLQ); got != 1 {
		t.Errorf("dlq stream holds %d messages, want 1", got)
	}
	if got := env.streamCount(t, bus.KindIngest); got != 4 {
		t.Errorf("ingest stream holds %d messages, want 4", got)
	}
}

// signalDLQ dead-letters through next and closes done after the first.
type signalDLQ struct {
	next connectors.DeadLetters
	done chan struct{}
	once sync.Once
}

func (s *signalDLQ) DeadLetter(ctx context.Context, d *ticket.DeadLetter) error {
	if err := s.next.DeadLetter(ctx, d); err != nil {
		return err
	}
	s.once.Do(func() { close(s.done) })
	return nil
}
