package jsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

// drain polls p from cur until a page says no more, like the runner does
// when every store succeeds, and returns the tickets and the last cursor.
func drain(t *testing.T, p *poller, cur []byte) ([]ticket.Ticket, []byte) {
	t.Helper()
	var got []ticket.Ticket
	for range 10000 {
		page, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		got = append(got, page.Tickets...)
		cur = page.Cursor
		if !page.More {
			return got, cur
		}
	}
	t.Fatal("the walk did not end after 10000 pages")
	return nil, nil
}

// onceEach checks that every id in want was got exactly once per version.
func onceEach(t *testing.T, got []ticket.Ticket, wantIDs int) {
	t.Helper()
	seen := map[string]int{}
	for _, tk := range got {
		seen[tk.MsgID()]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s returned %d times", id, n)
		}
	}
	ids := map[string]bool{}
	for _, tk := range got {
		ids[tk.ID] = true
	}
	if len(ids) != wantIDs {
		t.Errorf("got %d distinct issues, want %d", len(ids), wantIDs)
	}
}

func TestPollFixturePages(t *testing.T) {
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs = append(reqs, r.URL.RawQuery)
		name := "search_jql_page1.json"
		if r.URL.Query().Get("nextPageToken") == "Ch0jU3RyaW5nJlNVMU0mcHJvamVjdCA9IElUUxACGAY=" {
			name = "search_jql_page2.json"
		}
		resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(fixture.Read(t, "testdata", "search_jql.headers")), bytes.NewReader(fixture.Read(t, "testdata", name)))), r)
		if err != nil {
			t.Error(err)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	p := newTestPoller(t, pollSource(t, srv.URL, map[string]any{"time_zone": "Europe/Berlin"}))
	p1, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Get("jql"), `(project = ITS) AND updated >= "2024-05-13 02:00" ORDER BY updated ASC, key ASC`; got != want {
		t.Errorf("jql = %q, want %q (poll.start 00:00Z in Europe/Berlin)", got, want)
	}
	if got, want := q.Get("fields"), "summary,description,reporter,priority,status,issuetype,labels,created,updated,customfield_10004,customfield_10045,customfield_10010"; got != want {
		t.Errorf("fields = %q, want %q", got, want)
	}
	if q.Get("maxResults") != "100" || q.Has("nextPageToken") {
		t.Errorf("first request query = %s", reqs[0])
	}
	if !p1.More || len(p1.Tickets) != 2 {
		t.Fatalf("page 1: %d tickets, more %v; want 2, true", len(p1.Tickets), p1.More)
	}
	// Page 1 ends in a later minute than the start: the next poll is a new
	// search from that minute (12:21 Berlin), not the token.
	var c cursor
	if err := json.Unmarshal(p1.Cursor, &c); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 5, 13, 10, 21, 0, 0, time.UTC); !c.Since.Equal(want) || c.Token != "" {
		t.Errorf("cursor after page 1: since %v token %q, want %v and none", c.Since, c.Token, want)
	}
	// Following the token, as a cursor inside a dense minute would, gives
	// page 2.
	c.Since = time.Date(2024, 5, 13, 0, 0, 0, 0, time.UTC)
	c.Query, c.Token, c.TokenAt = queryHash(p.jql(c.Since), p.fields), "Ch0jU3RyaW5nJlNVMU0mcHJvamVjdCA9IElUUxACGAY=", time.Now()
	raw, _ := json.Marshal(c)
	p2, err := p.Poll(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if p2.More || len(p2.Tickets) != 1 {
		t.Fatalf("page 2: %d tickets, more %v; want 1, false", len(p2.Tickets), p2.More)
	}
	var all []byte
	for _, tk := range append(p1.Tickets, p2.Tickets...) {
		tk.Source = "jira"
		all = append(all, ticketJSON(t, tk)...)
	}
	checkGolden(t, "search_jql_pages", all)
	if got, want := p2.Watermark, time.Date(2024, 5, 13, 10, 48, 5, 20e6, time.UTC); !got.Equal(want) {
		t.Errorf("Watermark = %v, want %v", got, want)
	}
}

func TestPollDrainsSharedTimestampsExactlyOnce(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pageSize int
		tz       string
	}{
		{"pages of 100", 100, "UTC"},
		{"pages of 7 in Berlin time", 7, "Europe/Berlin"},
		{"pages of 1", 1, "UTC"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeJira(t)
			f.loc = mustLoad(tt.tz)
			// 250 issues updated in the same millisecond, across page
			// boundaries, then 250 more spread over 25 minutes.
			f.add(1, 250, func(int) time.Time { return base.Add(90*time.Second + 123*time.Millisecond) })
			f.add(251, 250, func(i int) time.Time { return base.Add(3*time.Minute + time.Duration(i)*6*time.Second) })
			src := pollSource(t, srv.URL, map[string]any{"time_zone": tt.tz})
			src.Config.Poll.PageSize = tt.pageSize
			p := newTestPoller(t, src)
			got, cur := drain(t, p, nil)
			if len(got) != 500 {
				t.Errorf("drained %d tickets, want 500", len(got))
			}
			onceEach(t, got, 500)
			// An idle poll re-reads the overlap and returns nothing new.
			again, _ := drain(t, p, cur)
			if len(again) != 0 {
				t.Errorf("idle poll returned %d tickets, want 0", len(again))
			}
		})
	}
}

func TestPollRestartsAnywhere(t *testing.T) {
	// A crash after any page re-polls that page from the previous cursor:
	// the same tickets come back (the Sink drops them by Nats-Msg-Id),
	// and the walk then goes on with nothing lost.
	f, srv := newFakeJira(t)
	f.add(1, 120, func(int) time.Time { return base.Add(30 * time.Second) })
	f.add(121, 80, func(i int) time.Time { return base.Add(2*time.Minute + time.Duration(i)*time.Second) })
	src := pollSource(t, srv.URL, nil)
	src.Config.Poll.PageSize = 50
	p := newTestPoller(t, src)
	var cur []byte
	stored := map[string]int{}
	for step := 0; ; step++ {
		page, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.Poll(t.Context(), cur) // the replay after a crash
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Tickets) != len(page.Tickets) || !sameCursor(t, again.Cursor, page.Cursor) {
			t.Fatalf("step %d: replay gave %d tickets and another cursor, first poll %d", step, len(again.Tickets), len(page.Tickets))
		}
		for _, tk := range page.Tickets {
			stored[tk.MsgID()]++
		}
		cur = page.Cursor
		if !page.More {
			break
		}
	}
	if len(stored) != 200 {
		t.Errorf("stored %d versions, want 200", len(stored))
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("%s handed over by %d pages", id, n)
		}
	}
}

func TestPollExpiredTokenRestartsTheSearch(t *testing.T) {
	f, srv := newFakeJira(t)
	f.add(1, 300, func(int) time.Time { return base.Add(10 * time.Second) }) // one dense minute
	src := pollSource(t, srv.URL, nil)
	src.Config.Poll.Start = base.Format(time.RFC3339)
	src.Config.Poll.PageSize = 100
	p := newTestPoller(t, src)
	page, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var c cursor
	json.Unmarshal(page.Cursor, &c)
	if c.Token == "" {
		t.Fatalf("a page inside one minute should continue with the token: %s", page.Cursor)
	}
	f.expireTokens()
	n, _ := f.stats()
	second, err := p.Poll(t.Context(), page.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := f.stats(); m != n+2 || len(second.Tickets) != 0 || second.More {
		t.Errorf("after a refused token: %d requests, %d tickets, more %v; want 2 (refused, restart), 0 (all seen), false (wait an interval)", m-n, len(second.Tickets), second.More)
	}
	rest, _ := drain(t, p, second.Cursor)
	if got := len(page.Tickets) + len(rest); got != 300 {
		t.Errorf("got %d tickets, want 300", got)
	}
	onceEach(t, append(page.Tickets, rest...), 300)

	t.Run("a token older than 6 days is not sent", func(t *testing.T) {
		c.TokenAt = time.Now().Add(-7 * 24 * time.Hour)
		raw, _ := json.Marshal(c)
		n, _ := f.stats()
		if _, err := p.Poll(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
		if m, _ := f.stats(); m != n+1 {
			t.Errorf("Poll made %d requests, want 1 (no refused token first)", m-n)
		}
	})
}

func TestPollFindsIssuesEditedDuringTheWalk(t *testing.T) {
	f, srv := newFakeJira(t)
	f.add(1, 300, func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Second) })
	f.afterPage = func(f *fakeJira, page int) {
		if page == 2 {
			f.touch(5, base.Add(2*time.Hour))   // already read: moves to the end
			f.touch(250, base.Add(3*time.Hour)) // not read yet: moves further
		}
	}
	src := pollSource(t, srv.URL, nil)
	src.Config.Poll.PageSize = 40
	p := newTestPoller(t, src)
	got, _ := drain(t, p, nil)
	onceEach(t, got, 300)
	versions := map[string]int{}
	for _, tk := range got {
		versions[tk.ID]++
	}
	if versions["5"] != 2 || versions["250"] != 1 {
		t.Errorf("versions of 5 and 250 = %d, %d; want 2 (before and after the edit), 1 (read after it)", versions["5"], versions["250"])
	}
}

func TestPollLateVisibleIssueIsFoundInTheOverlap(t *testing.T) {
	// Search results lag writes: an issue updated just before the newest
	// one becomes searchable only after the walk ended.
	f, srv := newFakeJira(t)
	f.add(1, 10, func(i int) time.Time { return base.Add(time.Duration(i) * 5 * time.Second) })
	p := newTestPoller(t, pollSource(t, srv.URL, nil))
	got, cur := drain(t, p, nil)
	f.add(11, 1, func(int) time.Time { return base.Add(44 * time.Second) }) // older than the newest (45s)
	late, _ := drain(t, p, cur)
	if len(got) != 10 || len(late) != 1 || late[0].ID != "11" {
		t.Errorf("got %d then %d tickets (%v), want 10 then issue 11", len(got), len(late), late)
	}
}

func TestPollRejects(t *testing.T) {
	f, srv := newFakeJira(t)
	f.add(1, 3, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	f.issues["2"].raw = json.RawMessage(`{"id":"2","key":"ITS-2","fields":{"summary":"","updated":"2024-05-13T12:00:01.000+0200"}}`)
	f.issues["3"].raw = json.RawMessage(`{"id":"3","key":"ITS-3","fields":{"summary":"no time"}}`)
	p := newTestPoller(t, pollSource(t, srv.URL, nil))
	page, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Tickets) != 1 || len(page.Rejects) != 2 {
		t.Fatalf("%d tickets and %d rejects, want 1 and 2", len(page.Tickets), len(page.Rejects))
	}
	for i, want := range []string{"issues[1].fields.summary: is required", "issues[2].fields.updated: is required to poll"} {
		if r := page.Rejects[i]; !strings.HasPrefix(r.Err.Error(), want) || len(r.Payload) == 0 {
			t.Errorf("reject %d = %v, want %q with its payload", i, r.Err, want)
		}
	}
	// The next poll re-reads the overlap: the reject with a readable
	// update time is not dead-lettered again.
	again, err := p.Poll(t.Context(), page.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Tickets) != 0 || len(again.Rejects) != 1 {
		t.Errorf("second poll: %d tickets, %d rejects; want 0 and 1 (the one without time)", len(again.Tickets), len(again.Rejects))
	}
}

func TestPollVendorAnswers(t *testing.T) {
	status := func(code int, hdr ...string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, _ *http.Request) bool {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(code)
			return true
		}
	}
	slow := func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done(): // the client timed out
		case <-time.After(5 * time.Second):
		}
		return true
	}
	reset := time.Now().UTC().Add(3 * time.Minute).Format("2006-01-02T15:04Z")
	for _, tt := range []struct {
		name     string
		script   []func(http.ResponseWriter, *http.Request) bool
		wantErr  func(t *testing.T, err error)
		requests int
	}{
		{"two 500s are retried within the call", []func(http.ResponseWriter, *http.Request) bool{status(500), status(503)}, nil, 3},
		{"a slow answer times out and is retried", []func(http.ResponseWriter, *http.Request) bool{slow}, nil, 2},
		{"a short 429 is waited out within the call", []func(http.ResponseWriter, *http.Request) bool{status(429, "Retry-After", "0")}, nil, 2},
		{"a long 429 ends the call with the reset time", []func(http.ResponseWriter, *http.Request) bool{status(429, "Retry-After", "5", "X-RateLimit-Reset", reset)},
			func(t *testing.T, err error) {
				var ve *connectors.VendorError
				if !errors.As(err, &ve) || ve.Status != 429 || ve.RetryAfter < 2*time.Minute {
					t.Errorf("err = %v, want a 429 VendorError waiting until %s (≥ 2m)", err, reset)
				}
			}, 1},
		{"401 is returned at once", []func(http.ResponseWriter, *http.Request) bool{status(401)},
			func(t *testing.T, err error) {
				if !connectors.IsVendorStatus(err, 401) {
					t.Errorf("err = %v, want a 401 VendorError", err)
				}
			}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeJira(t)
			f.add(1, 3, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
			f.script = tt.script
			src := pollSource(t, srv.URL, nil)
			src.Config.API.Timeout = 200 * time.Millisecond
			p := newTestPoller(t, src)
			page, err := p.Poll(t.Context(), nil)
			if tt.wantErr != nil {
				tt.wantErr(t, err)
			} else if err != nil || len(page.Tickets) != 3 {
				t.Errorf("Poll = %d tickets, %v; want 3, nil", len(page.Tickets), err)
			}
			if n, _ := f.stats(); n != tt.requests {
				t.Errorf("requests = %d, want %d", n, tt.requests)
			}
		})
	}
	t.Run("a refused JQL is a 400 with the body in the error", func(t *testing.T) {
		_, srv := newFakeJira(t)
		p := newTestPoller(t, pollSource(t, srv.URL, map[string]any{"jql": "project = ITX"}))
		_, err := p.Poll(t.Context(), nil)
		var ve *connectors.VendorError
		if !errors.As(err, &ve) || ve.Status != 400 || !strings.Contains(ve.Body, "does not exist for the field 'project'") {
			t.Errorf("err = %v, want the 400 with Jira's message", err)
		}
	})
}

func TestRateLimitReset(t *testing.T) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(fixture.Read(t, "testdata", "rate_limited_429.headers"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := http.ParseTime(resp.Header.Get("Date")) // 10:30:55
	if got, want := rateLimitReset(resp.Header, now), 5*time.Second; got != want {
		t.Errorf("reset in %s, want %s (10:31Z − 10:30:55)", got, want)
	}
	if got := rateLimitReset(resp.Header, now.Add(time.Minute)); got != 0 {
		t.Errorf("a past reset = %s, want 0", got)
	}
}

func TestJQLTime(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    time.Time
		loc  *time.Location
		want string
	}{
		{"UTC", base, time.UTC, "2024-05-13 10:00"},
		{"Berlin in summer is UTC+2", base, berlin, "2024-05-13 12:00"},
		// 2024-10-27 02:30 happens twice in Berlin: the literal is taken
		// an hour earlier so that neither reading is after the bound.
		{"the first of a repeated hour", time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC), berlin, "2024-10-27 01:30"},
		{"the second of a repeated hour", time.Date(2024, 10, 27, 1, 30, 0, 0, time.UTC), berlin, "2024-10-27 02:30"},
		{"the skipped hour in spring", time.Date(2024, 3, 31, 1, 30, 0, 0, time.UTC), berlin, "2024-03-31 03:30"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := jqlTime(tt.t, tt.loc); got != tt.want {
				t.Errorf("jqlTime(%v) = %q, want %q", tt.t, got, tt.want)
			}
		})
	}
}

func TestPollCorruptCursor(t *testing.T) {
	_, srv := newFakeJira(t)
	p := newTestPoller(t, pollSource(t, srv.URL, nil))
	if _, err := p.Poll(t.Context(), []byte(`{"after_cursor":"x"}`)); err == nil || !strings.Contains(err.Error(), "not a jsm cursor") {
		t.Errorf("Poll(foreign cursor) = %v, want a clear error", err)
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name, tz string
		ok       bool
	}{
		{"matching time zones", "Europe/Berlin", true},
		{"a user in Berlin with time_zone UTC", "UTC", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeJira(t)
			f.loc = berlin
			fs, err := check(t.Context(), pollSource(t, srv.URL, map[string]any{"time_zone": tt.tz}))
			if err != nil {
				t.Fatal(err)
			}
			text := connectors.FormatFindings("jira", fs)
			if !strings.Contains(text, "ok   jira auth:") || !strings.Contains(text, "348 of 350 requests left") {
				t.Errorf("findings:\n%s", text)
			}
			tzOK := strings.Contains(text, "ok   jira time zone:")
			if tzOK != tt.ok {
				t.Errorf("time zone finding ok = %v, want %v:\n%s", tzOK, tt.ok, text)
			}
		})
	}
	t.Run("refused credentials stop after the auth finding", func(t *testing.T) {
		_, srv := newFakeJira(t)
		src := pollSource(t, srv.URL, nil)
		src.Config.API.Auth.Username = "someone@example.com"
		fs, err := check(t.Context(), src)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 || fs[0].OK || fs[0].Name != "auth" {
			t.Errorf("findings = %+v, want a failed auth first", fs)
		}
		for _, f := range fs {
			if f.Name == "time zone" {
				t.Errorf("time zone checked with refused credentials")
			}
		}
	})
}

// sameCursor compares two cursors but for the page token, which a fake
// (like Jira) issues anew on every answer.
func sameCursor(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ca, cb cursor
	if json.Unmarshal(a, &ca) != nil || json.Unmarshal(b, &cb) != nil {
		t.Fatalf("cursors %s, %s", a, b)
	}
	ca.Token, ca.TokenAt, cb.Token, cb.TokenAt = "", time.Time{}, "", time.Time{}
	ja, _ := json.Marshal(ca)
	jb, _ := json.Marshal(cb)
	return bytes.Equal(ja, jb)
}
