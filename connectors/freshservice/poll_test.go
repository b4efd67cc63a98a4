package freshservice

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

func ids(p connectors.Page) []string {
	var out []string
	for _, t := range p.Tickets {
		out = append(out, t.ID)
	}
	return out
}

func decodeCursor(t *testing.T, b []byte) cursor {
	t.Helper()
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("cursor %s: %v", b, err)
	}
	return c
}

// The shared fixtures, served as the vendor serves them: page 1 with a
// Link to page 2 on the vendor's own host, page 2 without.
func TestPollFixturePages(t *testing.T) {
	c := newClock()
	f, srv := newFakeAPI(t, c)
	f.script = append(f.script,
		answer(t, "tickets_list_page1.headers", "tickets_list_page1.json"),
		answer(t, "tickets_list_page2.headers", "tickets_list_page2.json"))
	p := testPoller(t, testSource(t, srv.URL, func(c *config.Connector) { c.Poll.Start = "2024-05-13T10:00:00Z"; c.Poll.PageSize = 2 }), c)

	page1, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatalf("Poll page 1: %v", err)
	}
	if got := ids(page1); !slices.Equal(got, []string{"201", "202"}) || !page1.More {
		t.Errorf("page 1 = %v more=%v; want [201 202] more=true", got, page1.More)
	}
	cur := decodeCursor(t, page1.Cursor)
	if cur.Page != 2 || !cur.Since.Equal(time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("cursor after page 1 = %+v; want page 2 of the walk since 10:00", cur)
	}
	q := f.queries[0]
	for k, want := range map[string]string{"updated_since": "2024-05-13T10:00:00Z", "per_page": "2", "page": "1", "order_type": "desc", "include": "requester"} {
		if got := q.Get(k); got != want {
			t.Errorf("query %s = %q, want %q", k, got, want)
		}
	}

	page2, err := p.Poll(t.Context(), page1.Cursor)
	if err != nil {
		t.Fatalf("Poll page 2: %v", err)
	}
	if got := ids(page2); !slices.Equal(got, []string{"203"}) || page2.More {
		t.Errorf("page 2 = %v more=%v; want [203] more=false", got, page2.More)
	}
	if got := f.queries[1].Get("page"); got != "2" {
		t.Errorf("second request page = %q, want 2 (read from the Link header)", got)
	}
	// The fixtures carry no Date: the horizon is the fake clock, 10:30.
	cur = decodeCursor(t, page2.Cursor)
	if want := c.Now().Add(-DefaultOverlap); cur.Page != 1 || !cur.Since.Equal(want) || !page2.Watermark.Equal(want) {
		t.Errorf("cursor after the walk = %+v, watermark %s; want a new walk since %s", cur, page2.Watermark, want)
	}
	for _, tk := range append(page1.Tickets, page2.Tickets...) {
		if tk.UpdatedAt.IsZero() || tk.Caller.ID == "" || len(tk.Raw) == 0 {
			t.Errorf("ticket %s lacks updated_at, caller or raw: %+v", tk.ID, tk)
		}
	}
}

func TestPollEmptyListMovesTheWindow(t *testing.T) {
	c := newClock()
	f, srv := newFakeAPI(t, c)
	f.script = append(f.script, func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Date", "Mon, 13 May 2024 10:29:00 GMT") // the vendor's clock, a minute behind ours
		serveFixture(t, w, "tickets_list_page2.headers", "tickets_list_empty.json")
		return true
	})
	p := testPoller(t, testSource(t, srv.URL, nil), c)
	page, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 5, 13, 10, 27, 0, 0, time.UTC) // vendor Date − 2m overlap
	if len(page.Tickets) != 0 || page.More || !decodeCursor(t, page.Cursor).Since.Equal(want) {
		t.Errorf("Poll = %d tickets, more=%v, cursor %s; want none, since %s", len(page.Tickets), page.More, page.Cursor, want)
	}
}

// Records sharing one second at the window's edge, across a page
// boundary: each is returned once, whether updated_since is inclusive or
// exclusive (the docs do not say), and a record updated again is returned
// again.
func TestPollSharedSecondAtTheEdge(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		name := "updated_since inclusive"
		if exclusive {
			name = "updated_since exclusive"
		}
		t.Run(name, func(t *testing.T) {
			c := newClock()
			f, srv := newFakeAPI(t, c)
			f.exclusive = exclusive
			edge := c.Now().Add(-DefaultOverlap)
			// 250 records, all updated in the second that becomes the next
			// window's start, 100 per page: three pages.
			f.addBacklog(1, 250, edge.Add(-time.Hour), 0)
			for i := range f.records {
				f.records[i].Updated = edge
			}
			p := testPoller(t, testSource(t, srv.URL, nil), c)
			seen := map[string]int{}
			var cur []byte
			walk := func() {
				for {
					page, err := p.Poll(t.Context(), cur)
					if err != nil {
						t.Fatal(err)
					}
					for _, id := range ids(page) {
						seen[id]++
					}
					cur = page.Cursor
					if !page.More {
						return
					}
				}
			}
			walk()
			c.Advance(time.Minute)
			walk() // re-reads the edge second (inclusive) or not (exclusive)
			if len(seen) != 250 {
				t.Errorf("distinct tickets = %d, want 250", len(seen))
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("ticket %s returned %d times", id, n)
				}
			}
			f.mu.Lock()
			f.records[7].Updated = c.Now()
			f.mu.Unlock()
			c.Advance(time.Minute)
			walk()
			if seen["8"] != 2 || len(seen) != 250 {
				t.Errorf("after ticket 8 changed: returned %d times (want 2), %d distinct", seen["8"], len(seen))
			}
		})
	}
}

func TestPollErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		script   []func(http.ResponseWriter, *http.Request) bool
		apiKey   string
		wantErr  func(*testing.T, error)
		requests int
	}{
		{
			name:   "a 429 with Retry-After beyond retry_wait_max ends the call with RetryAfter",
			script: nil, // set below: the fixture's Retry-After: 27
			wantErr: func(t *testing.T, err error) {
				ve, ok := errors.AsType[*connectors.VendorError](err)
				if !ok || ve.Status != http.StatusTooManyRequests || ve.RetryAfter != 27*time.Second {
					t.Errorf("Poll error = %v; want a 429 VendorError with RetryAfter 27s", err)
				}
			},
			requests: 1,
		},
		{
			name:   "a 401 is fatal and not retried",
			apiKey: "wrong",
			wantErr: func(t *testing.T, err error) {
				ve, ok := errors.AsType[*connectors.VendorError](err)
				if !ok || ve.Status != http.StatusUnauthorized || !ve.Fatal() {
					t.Errorf("Poll error = %v; want a fatal 401 VendorError", err)
				}
			},
			requests: 1,
		},
		{
			name:   "a 403 is fatal",
			script: []func(http.ResponseWriter, *http.Request) bool{status(http.StatusForbidden)},
			wantErr: func(t *testing.T, err error) {
				if !connectors.IsVendorStatus(err, http.StatusForbidden) {
					t.Errorf("Poll error = %v; want 403", err)
				}
			},
			requests: 1,
		},
		{
			name:   "500s are retried within the call",
			script: []func(http.ResponseWriter, *http.Request) bool{status(500), status(503)},
			wantErr: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Poll error = %v, want success on the third attempt", err)
				}
			},
			requests: 3,
		},
		{
			name: "a 429 with Retry-After 0 is retried within the call",
			script: []func(http.ResponseWriter, *http.Request) bool{func(w http.ResponseWriter, _ *http.Request) bool {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(429)
				return true
			}},
			wantErr: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Poll error = %v, want success", err)
				}
			},
			requests: 2,
		},
		{
			name:   "a slow answer times out and is retried",
			script: []func(http.ResponseWriter, *http.Request) bool{hang()},
			wantErr: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Poll error = %v, want success after the timeout", err)
				}
			},
			requests: 2,
		},
		{
			name:   "500 until retries run out is a vendor error",
			script: []func(http.ResponseWriter, *http.Request) bool{status(500), status(500), status(500), status(500)},
			wantErr: func(t *testing.T, err error) {
				ve, ok := errors.AsType[*connectors.VendorError](err)
				if !ok || ve.Status != 500 || ve.Fatal() {
					t.Errorf("Poll error = %v; want a non-fatal 500", err)
				}
			},
			requests: 4,
		},
		{
			name: "an answer that is not a ticket list is an error",
			script: []func(http.ResponseWriter, *http.Request) bool{func(w http.ResponseWriter, _ *http.Request) bool {
				w.Write([]byte(`<html>maintenance</html>`))
				return true
			}},
			wantErr: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), `answer is not {"tickets": [...]}`) {
					t.Errorf("Poll error = %v", err)
				}
			},
			requests: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			f, srv := newFakeAPI(t, c)
			f.addBacklog(1, 3, c.Now().Add(-time.Hour), time.Minute)
			f.script = tt.script
			if strings.HasPrefix(tt.name, "a 429 with Retry-After beyond") {
				f.script = append(f.script, answer(t, "rate_limited_429.headers", ""))
			}
			src := testSource(t, srv.URL, func(c *config.Connector) {
				if tt.apiKey != "" {
					c.API.Auth.Username = tt.apiKey
				}
				if strings.HasPrefix(tt.name, "a slow") {
					c.API.Timeout = 50 * time.Millisecond
				}
			})
			_, err := testPoller(t, src, c).Poll(t.Context(), nil)
			tt.wantErr(t, err)
			if got := f.total(); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

func TestPollRejectsBadRecords(t *testing.T) {
	c := newClock()
	f, srv := newFakeAPI(t, c)
	f.addBacklog(1, 3, c.Now().Add(-time.Hour), time.Minute)
	f.records[1].Subject = ""
	page, err := testPoller(t, testSource(t, srv.URL, nil), c).Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page); !slices.Equal(got, []string{"3", "1"}) {
		t.Errorf("tickets = %v, want [3 1]", got)
	}
	if len(page.Rejects) != 1 || page.Rejects[0].ID != "2" || !strings.Contains(page.Rejects[0].Err.Error(), "subject: is required") || !json.Valid(page.Rejects[0].Payload) {
		t.Errorf("rejects = %+v; want ticket 2 without a subject, with its JSON", page.Rejects)
	}
}

// X-RateLimit-Remaining below the cost of a call: the page is returned
// without More, so the runner waits for the next minute.
func TestPollStopsAtTheRateLimit(t *testing.T) {
	c := newClock()
	f, srv := newFakeAPI(t, c)
	f.limit = 4 // two calls with include=requester
	f.addBacklog(1, 30, c.Now().Add(-time.Hour), time.Minute)
	p := testPoller(t, testSource(t, srv.URL, func(c *config.Connector) { c.Poll.PageSize = 10 }), c)
	var cur []byte
	var mores []bool
	for range 3 {
		page, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		mores = append(mores, page.More)
		cur = page.Cursor
		if !page.More {
			c.Advance(time.Minute) // what the runner's poll.interval does
		}
	}
	if want := []bool{true, false, false}; !slices.Equal(mores, want) {
		t.Errorf("More per page = %v, want %v (the third page is the last)", mores, want)
	}
	if f.count(http.StatusTooManyRequests) != 0 {
		t.Errorf("the poller ran into %d 429s", f.count(http.StatusTooManyRequests))
	}
}

func TestPollCursorErrors(t *testing.T) {
	c := newClock()
	_, srv := newFakeAPI(t, c)
	p := testPoller(t, testSource(t, srv.URL, nil), c)
	for _, raw := range []string{`{`, `{"v":2,"since":"2024-05-13T10:00:00Z","page":1}`, `{"v":1,"page":1}`, `{"v":1,"since":"2024-05-13T10:00:00Z","page":0}`} {
		if _, err := p.Poll(t.Context(), []byte(raw)); err == nil || !strings.Contains(err.Error(), `delete key "freshservice" from the cursors bucket`) {
			t.Errorf("Poll(%s) = %v; want an error saying how to reset", raw, err)
		}
	}
}

func TestPollerConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*config.Connector)
		want string
	}{
		{"a page larger than Freshservice's", func(c *config.Connector) { c.Poll.PageSize = 101 }, "connectors.freshservice.poll.page_size: Freshservice returns at most 100 tickets per page, got 101"},
		{"a field selection", func(c *config.Connector) { c.Poll.Fields = []string{"subject"} }, "connectors.freshservice.poll.fields: Freshservice's ticket list returns whole tickets"},
		{"no base URL", func(c *config.Connector) { c.API.BaseURL = "" }, "connectors.freshservice.api.base_url:"},
		{"a bad start", func(c *config.Connector) { c.Poll.Start = "yesterday" }, "connectors.freshservice.poll.start:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newPoller(testSource(t, "https://example.freshservice.com", tt.mod))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newPoller error = %v; want %q", err, tt.want)
			}
		})
	}
}

// api.auth type bearer carries the API key as a secret; Freshservice gets
// it as Basic key:X.
func TestBearerAPIKeyIsSentAsBasic(t *testing.T) {
	c := newClock()
	f, srv := newFakeAPI(t, c)
	src := testSource(t, srv.URL, func(c *config.Connector) {
		c.API.Auth = config.APIAuth{Type: "bearer", Token: config.NewSecret(testAPIKey)}
	})
	if _, err := testPoller(t, src, c).Poll(t.Context(), nil); err != nil {
		t.Fatalf("Poll with the API key as bearer token: %v", err)
	}
	if f.count(http.StatusOK) != 1 {
		t.Errorf("answers = %v, want one 200", f.status)
	}
}

func TestNextPage(t *testing.T) {
	for _, tt := range []struct {
		name, link string
		page       int
		ok         bool
	}{
		{"the fixture's link", `<https://example.freshservice.com/api/v2/tickets?updated_since=2024-05-13T10%3A00%3A00Z&per_page=2&page=2>; rel="next"`, 2, true},
		{"no link: last page", ``, 0, false},
		{"only a prev link", `<https://x/api/v2/tickets?page=1>; rel="prev"`, 0, false},
		{"next among others, unquoted", `<https://x/t?page=1>; rel=prev, <https://x/t?page=3>; rel=next`, 3, true},
		{"rel with several values", `<https://x/t?page=4>; title="n"; rel="last next"`, 4, true},
		{"a next link without page", `<https://x/t?cursor=abc>; rel="next"`, 0, true},
		{"a broken header", `<https://x/t?page=5; rel="next"`, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.link != "" {
				h.Set("Link", tt.link)
			}
			if page, ok := nextPage(h); page != tt.page || ok != tt.ok {
				t.Errorf("nextPage(%q) = %d, %v; want %d, %v", tt.link, page, ok, tt.page, tt.ok)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name   string
		apiKey string
		want   []string // Name=OK of each finding
	}{
		{"good credentials", testAPIKey, []string{"auth=true", "permission=true", "rate limit=true", "clock skew=true"}},
		{"a wrong API key", "wrong", []string{"auth=false", "rate limit=true", "clock skew=true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: time.Now().UTC()}
			f, srv := newFakeAPI(t, c)
			f.limit = 500
			src := testSource(t, srv.URL, func(c *config.Connector) { c.API.Auth.Username = tt.apiKey })
			fs, err := checkWith(t.Context(), src, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.Name+"="+map[bool]string{true: "true", false: "false"}[f.OK])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings = %v (%+v), want %v", got, fs, tt.want)
			}
			if q := f.queries[0]; q.Get("per_page") != "1" {
				t.Errorf("check asked for per_page=%q, want 1", q.Get("per_page"))
			}
		})
	}
}
