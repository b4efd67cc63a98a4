package freshservice

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
)

// testAPIKey is the API key the fake accepts as Basic user name.
const testAPIKey = "fs-test-api-key"

// clock is a fake clock shared by the fake vendor (its Date header), the
// poller (poll.start) and the poll runner (its Sleep advances it).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2024, 5, 13, 10, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeRecord is one ticket the fake API holds.
type fakeRecord struct {
	ID      int64
	Created time.Time
	Updated time.Time
	Subject string // "" makes the record invalid
}

// fakeAPI behaves like GET /api/v2/tickets as Freshservice documents it:
// Basic auth with the API key and "X", updated_since (ISO 8601 UTC),
// page/per_page (max 100), Link rel="next" only when another page exists
// (naming the vendor's own host), X-RateLimit-* headers with a per-minute
// budget, 429 with Retry-After over it, and a Date header from the fake
// clock. The list is sorted newest created first (order_type=desc), or by
// updated_at when byUpdated is set: the order is not documented, the
// poller must cope with either.
type fakeAPI struct {
	t     testing.TB
	clock *clock

	mu        sync.Mutex
	records   []fakeRecord
	exclusive bool // updated_since means "after", not "at or after"
	byUpdated bool
	limit     int // requests per minute; 0: unlimited
	window    time.Time
	used      int
	// script answers requests in order before the normal handler: each
	// func returns true when it answered. nil entries pass.
	script []func(w http.ResponseWriter, r *http.Request) bool
	// onRequest runs before request n (1-based) is answered, with mu held.
	onRequest func(n int, f *fakeAPI)
	requests  int
	queries   []url.Values
	served    map[string]bool // "id@updated_at" of every version in an answer
	status    map[int]int     // answers by status code
}

func newFakeAPI(t testing.TB, c *clock) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, clock: c, status: map[int]int{}, served: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// addBacklog adds n records created one second apart, each updated
// updatedAfter its creation, ids from first.
func (f *fakeAPI) addBacklog(first int64, n int, created time.Time, updatedAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		c := created.Add(time.Duration(i) * time.Second)
		f.records = append(f.records, fakeRecord{ID: first + int64(i), Created: c, Updated: c.Add(updatedAfter), Subject: fmt.Sprintf("ticket %d", first+int64(i))})
	}
}

func (f *fakeAPI) count(code int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status[code]
}

func (f *fakeAPI) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.queries = append(f.queries, r.URL.Query())
	if f.onRequest != nil {
		f.onRequest(n, f)
	}
	var step func(http.ResponseWriter, *http.Request) bool
	if len(f.script) > 0 {
		step, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		f.mu.Lock()
		f.status[rec.code]++
		f.mu.Unlock()
	}()
	w = rec
	w.Header().Set("Date", f.clock.Now().Format(http.TimeFormat))
	if step != nil && step(w, r) {
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != testAPIKey || p != "X" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.URL.Path != ticketsPath {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	cost := 1
	if q.Get("include") == "requester" {
		cost++ // an include costs one more credit
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limit > 0 {
		now := f.clock.Now()
		if now.Sub(f.window) >= time.Minute {
			f.window, f.used = now.Truncate(time.Minute), 0
		}
		w.Header().Set("X-RateLimit-Total", strconv.Itoa(f.limit))
		if f.used+cost > f.limit {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("Retry-After", strconv.Itoa(int(f.window.Add(time.Minute).Sub(now)/time.Second)))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		f.used += cost
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(f.limit-f.used))
		w.Header().Set("X-RateLimit-Used-CurrentRequest", strconv.Itoa(cost))
	}
	// Without updated_since, only recent tickets (30 days, as Freshdesk
	// documents; unconfirmed for Freshservice).
	since, err := time.Parse(time.RFC3339, cmp.Or(q.Get("updated_since"), f.clock.Now().AddDate(0, 0, -30).Format(time.RFC3339)))
	perPage, err2 := strconv.Atoi(cmp.Or(q.Get("per_page"), "30"))
	page, err3 := strconv.Atoi(cmp.Or(q.Get("page"), "1"))
	if err != nil || err2 != nil || err3 != nil || perPage < 1 || perPage > MaxPageSize || page < 1 {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"description":"Validation failed","errors":[{"field":"updated_since","message":"invalid","code":"invalid_value"}]}`)
		return
	}
	var match []fakeRecord
	for _, rec := range f.records {
		if rec.Updated.After(since) || (!f.exclusive && rec.Updated.Equal(since)) {
			match = append(match, rec)
		}
	}
	slices.SortStableFunc(match, func(a, b fakeRecord) int {
		if f.byUpdated {
			if c := b.Updated.Compare(a.Updated); c != 0 {
				return c
			}
		}
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	lo, hi := min((page-1)*perPage, len(match)), min(page*perPage, len(match))
	out := make([]map[string]any, 0, hi-lo)
	for _, rec := range match[lo:hi] {
		m := map[string]any{
			"id": rec.ID, "subject": rec.Subject, "requester_id": 21000000000 + rec.ID%50,
			"priority": 1 + rec.ID%4, "status": 2, "source": 2, "urgency": 1 + rec.ID%3, "impact": 2,
			"created_at": rec.Created.UTC().Format(time.RFC3339), "updated_at": rec.Updated.UTC().Format(time.RFC3339),
			"description_text": "generated", "deleted": false, "spam": false,
		}
		if rec.Subject == "" {
			delete(m, "subject")
		}
		f.served[version(rec)] = true
		if q.Get("include") == "requester" {
			m["requester"] = map[string]any{"id": m["requester_id"], "email": fmt.Sprintf("user%d@example.com", rec.ID%50), "name": "Generated User"}
		}
		out = append(out, m)
	}
	if hi < len(match) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<https://example.freshservice.com%s?%s>; rel="next"`, ticketsPath, next.Encode()))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"tickets": out})
}

// version names one version of a record as the tests count them.
func version(r fakeRecord) string {
	return strconv.FormatInt(r.ID, 10) + "@" + r.Updated.UTC().Format(time.RFC3339)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// serveFixture answers with a response fixture: name.headers (status line
// and headers) and body (a file name, or "" for none). The Date header of
// the fixture, if any, wins over the fake clock's.
func serveFixture(t testing.TB, w http.ResponseWriter, headers, body string) {
	t.Helper()
	var b []byte
	if body != "" {
		b = fixture.Read(t, "testdata", body)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(fixture.Read(t, "testdata", headers)), bytes.NewReader(b))), nil)
	if err != nil {
		t.Errorf("fixture %s: %v", headers, err)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// answer returns a script step that serves a response fixture.
func answer(t testing.TB, headers, body string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		serveFixture(t, w, headers, body)
		return true
	}
}

// status returns a script step answering code with no body.
func status(code int) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(code)
		return true
	}
}

// hang returns a script step that answers nothing until the client gives
// up (its per-attempt timeout): a slow vendor.
func hang() func(http.ResponseWriter, *http.Request) bool {
	return func(_ http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	}
}

// testSource is a polling freshservice source against baseURL with
// millisecond retry waits; mod adjusts it.
func testSource(t testing.TB, baseURL string, mod func(*config.Connector)) connectors.Source {
	t.Helper()
	c := config.Connector{
		Type: "freshservice",
		Auth: config.Auth{Type: "bearer", Token: config.NewSecret("webhook-token")},
		API: config.API{
			BaseURL: baseURL,
			Auth:    config.APIAuth{Type: "basic", Username: testAPIKey, Password: config.NewSecret("X")},
			Timeout: 5 * time.Second, MaxRetries: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		},
		Poll: config.Poll{Enabled: true, Interval: time.Minute, PageSize: 100, Start: "-24h", LeaseTTL: 30 * time.Second},
	}
	if mod != nil {
		mod(&c)
	}
	return connectors.Source{Name: "freshservice", Config: c, Log: zaptest.NewLogger(t)}
}

// testPoller builds the poller of src on the fake clock.
func testPoller(t testing.TB, src connectors.Source, c *clock) *poller {
	t.Helper()
	p, err := buildPoller(src, nil)
	if err != nil {
		t.Fatalf("buildPoller: %v", err)
	}
	p.now = c.Now
	return p
}
