package connectors

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/ticket"
)

// script is a Poller that answers from a list of steps, one per call.
type script struct {
	mu      sync.Mutex
	steps   []func(cursor []byte) (Page, error)
	calls   int
	cursors [][]byte
	done    chan struct{} // closed when the steps run out
}

func (s *script) Poll(_ context.Context, cursor []byte) (Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursors = append(s.cursors, cursor)
	if s.calls >= len(s.steps) {
		if s.done != nil {
			close(s.done)
			s.done = nil
		}
		return Page{}, nil
	}
	st := s.steps[s.calls]
	s.calls++
	return st(cursor)
}

type memStore struct {
	mu      sync.Mutex
	cursors map[string][]byte
	tickets []ticket.Ticket
	dead    []*ticket.DeadLetter
	failAt  int // Ingest fails on this call number (1-based); 0 never
	ingests int
}

func (m *memStore) Load(_ context.Context, s string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[s], nil
}

func (m *memStore) Store(_ context.Context, s string, c []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursors[s] = c
	return nil
}

func (m *memStore) Ingest(_ context.Context, t ticket.Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ingests++
	if m.ingests == m.failAt {
		return errors.New("nats: timeout")
	}
	m.tickets = append(m.tickets, t)
	return nil
}

func (m *memStore) DeadLetter(_ context.Context, d *ticket.DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead = append(m.dead, d)
	return nil
}

type soloLease struct{ free bool }

func (l soloLease) Acquire(context.Context, string, string, time.Duration) (bool, error) {
	return l.free, nil
}
func (soloLease) Release(context.Context, string, string) error { return nil }

func page(cursor string, more bool, ids ...string) func([]byte) (Page, error) {
	return func([]byte) (Page, error) {
		p := Page{Cursor: []byte(cursor), More: more}
		for _, id := range ids {
			p.Tickets = append(p.Tickets, ticket.Ticket{ID: id, Title: "t"})
		}
		return p, nil
	}
}

func fail(err error) func([]byte) (Page, error) {
	return func([]byte) (Page, error) { return Page{}, err }
}

// runScript runs a PollRunner over steps until they are used up (or the
// runner returns), recording every wait it asks for.
func runScript(t *testing.T, steps []func([]byte) (Page, error), store *memStore, lease Lease) (waits []time.Duration, runErr error, p *script) {
	t.Helper()
	finished := make(chan struct{})
	p = &script{steps: steps, done: finished}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	r := &PollRunner{
		Source: "src", Holder: "me", Poller: p, Sink: store, DLQ: store, Cursors: store, Lease: lease,
		Interval: time.Minute, LeaseTTL: 30 * time.Second, Log: zaptest.NewLogger(t), Metrics: NewPollMetrics(prometheus.NewRegistry()),
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			n := len(waits)
			mu.Unlock()
			if n > 50 {
				cancel() // a hot loop: stop and let the test report it
			}
			return ctx.Err()
		},
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-finished:
		cancel()
		runErr = <-done
	case runErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("runner did not finish its script within 10s")
	}
	return waits, runErr, p
}

func TestPollRunner(t *testing.T) {
	rateLimited := &VendorError{Status: http.StatusTooManyRequests, RetryAfter: 42 * time.Second, URL: "https://x/api"}
	for _, tt := range []struct {
		name        string
		steps       []func([]byte) (Page, error)
		failIngest  int
		wantErr     error
		wantTickets int
		wantCursor  string
		check       func(t *testing.T, waits []time.Duration, p *script)
	}{
		{
			name:        "a backlog drains page by page without waiting",
			steps:       []func([]byte) (Page, error){page("c1", true, "1", "2"), page("c2", true, "3"), page("c3", false, "4")},
			wantTickets: 4, wantCursor: "c3",
			check: func(t *testing.T, waits []time.Duration, p *script) {
				if len(waits) == 0 || waits[0] != time.Minute {
					t.Errorf("waits = %v, want the first wait to be the poll interval, after the last page", waits)
				}
				if string(p.cursors[1]) != "c1" || string(p.cursors[2]) != "c2" {
					t.Errorf("cursors passed = %q, want each page to start at the previous page's cursor", p.cursors)
				}
			},
		},
		{
			name:        "a failed store keeps the cursor, and the page is polled again",
			steps:       []func([]byte) (Page, error){page("c1", false, "1", "2")},
			failIngest:  2,
			wantTickets: 1, wantCursor: "",
			check: func(t *testing.T, _ []time.Duration, p *script) {
				if len(p.cursors) < 2 || p.cursors[1] != nil {
					t.Errorf("cursors passed = %q, want the retry to start again from nil", p.cursors)
				}
			},
		},
		{
			name:    "401 stops the poller",
			steps:   []func([]byte) (Page, error){fail(&VendorError{Status: 401, URL: "https://x/api"})},
			wantErr: ErrPollerStopped,
			check: func(t *testing.T, waits []time.Duration, p *script) {
				if p.calls != 1 || len(waits) != 0 {
					t.Errorf("calls = %d, waits = %v; want one call and no retry", p.calls, waits)
				}
			},
		},
		{
			name:        "429 waits at least Retry-After",
			steps:       []func([]byte) (Page, error){fail(rateLimited), page("c1", false, "1")},
			wantTickets: 1, wantCursor: "c1",
			check: func(t *testing.T, waits []time.Duration, _ *script) {
				if len(waits) == 0 || waits[0] < 42*time.Second {
					t.Errorf("waits = %v, want the first to be at least the 42s Retry-After", waits)
				}
			},
		},
		{
			name: "network errors back off with growing waits",
			steps: []func([]byte) (Page, error){
				fail(errors.New("dial tcp: refused")), fail(errors.New("dial tcp: refused")), fail(errors.New("dial tcp: refused")), page("c1", false),
			},
			wantCursor: "c1",
			check: func(t *testing.T, waits []time.Duration, _ *script) {
				if len(waits) < 3 || !(waits[0] < waits[1] && waits[1] < waits[2]) || waits[0] < 800*time.Millisecond {
					t.Errorf("waits = %v, want three growing backoffs from about 1s", waits)
				}
			},
		},
		{
			name: "a record that cannot be normalised is dead-lettered and the cursor advances",
			steps: []func([]byte) (Page, error){func([]byte) (Page, error) {
				return Page{Cursor: []byte("c1"), Tickets: []ticket.Ticket{{ID: "1", Title: "t"}},
					Rejects: []Reject{{ID: "2", Err: errors.New("priority: \"P0\" is not a priority"), Payload: []byte(`{"id":2}`)}}}, nil
			}},
			wantTickets: 1, wantCursor: "c1",
		},
		{
			name: "a ticket the store would refuse is dead-lettered, not retried forever",
			steps: []func([]byte) (Page, error){func([]byte) (Page, error) {
				return Page{Cursor: []byte("c1"), Tickets: []ticket.Ticket{{ID: "1", Title: "t"}, {ID: "\x7f", Title: "t"}, {ID: "3"}}}, nil
			}},
			wantTickets: 1, wantCursor: "c1",
			check: func(t *testing.T, _ []time.Duration, p *script) {
				if p.calls != 1 {
					t.Errorf("polled %d times, want once", p.calls)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{cursors: map[string][]byte{}, failAt: tt.failIngest}
			waits, err, p := runScript(t, tt.steps, store, soloLease{free: true})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
			if len(store.tickets) != tt.wantTickets {
				t.Errorf("stored %d tickets, want %d", len(store.tickets), tt.wantTickets)
			}
			for _, tk := range store.tickets {
				if tk.Source != "src" {
					t.Errorf("stored ticket source = %q, want the configured name", tk.Source)
				}
			}
			if strings.Contains(tt.name, "refuse") && len(store.dead) != 2 {
				t.Errorf("dead letters = %d, want the two invalid tickets", len(store.dead))
			}
			if got := string(store.cursors["src"]); got != tt.wantCursor {
				t.Errorf("stored cursor = %q, want %q", got, tt.wantCursor)
			}
			if tt.check != nil {
				tt.check(t, waits, p)
			}
		})
	}
}

func TestPollRunnerWithoutTheLeaseDoesNotPoll(t *testing.T) {
	store := &memStore{cursors: map[string][]byte{}}
	waits, err, p := runScript(t, []func([]byte) (Page, error){page("c1", false, "1")}, store, soloLease{free: false})
	if err != nil {
		t.Fatal(err)
	}
	if p.calls != 0 || len(store.tickets) != 0 {
		t.Errorf("a replica without the lease polled %d times and stored %d tickets", p.calls, len(store.tickets))
	}
	if len(waits) == 0 || waits[0] != 10*time.Second {
		t.Errorf("waits = %v, want lease retries every ttl/3 = 10s", waits[:min(3, len(waits))])
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"30", 30 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	} {
		h := http.Header{}
		h.Set("Retry-After", tt.v)
		if got := RetryAfter(h, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestPollMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewPollMetrics(reg)
	m.pages.WithLabelValues("src").Inc()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	if got := testutil.ToFloat64(m.pages.WithLabelValues("src")); got != 1 {
		t.Errorf("pages = %v", got)
	}
}
