package zendesk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// fixtureExport serves the two fixture export pages: start_time gives
// page 1, page 1's after_cursor gives page 2 (end_of_stream), and page 2's
// after_cursor an empty end page.
func fixtureExport(t *testing.T, queries *[]url.Values) *httptest.Server {
	t.Helper()
	const after1, after2 = "MTcxNTU5NTEzOS4wfHw1MTU3fA==", "MTcxNTU5NTM0Mi4wfHw1MTU4fA=="
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*queries = append(*queries, r.URL.Query())
		if u, p, ok := r.BasicAuth(); !ok || u != fakeUser || p != fakeToken || r.URL.Path != exportPath {
			serveFixture(t, w, "error_401.headers", "error_401.json")
			return
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			serveFixture(t, w, "incremental_tickets_cursor.headers", "incremental_tickets_cursor_page1.json")
		case after1:
			serveFixture(t, w, "incremental_tickets_cursor.headers", "incremental_tickets_cursor_page2.json")
		case after2:
			_, _ = w.Write([]byte(`{"tickets":[],"after_url":null,"after_cursor":"` + after2 + `","before_url":null,"before_cursor":null,"end_of_stream":true}`))
		default:
			http.Error(w, "unknown cursor", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPollFixturePages(t *testing.T) {
	var queries []url.Values
	srv := fixtureExport(t, &queries)
	p := newTestPoller(t, pollSource(t, srv.URL, nil))
	p.now = func() time.Time { return fixtureTime }
	var all []ticket.Ticket
	var cur []byte
	for i, want := range []struct {
		ids       []string
		more      bool
		watermark time.Time
	}{
		{[]string{"5155", "5157"}, true, time.Unix(1715595139, 0).UTC()},
		// end_of_stream: complete up to a minute before the request.
		{[]string{"5158"}, false, fixtureTime.Add(-time.Minute)},
		{nil, false, fixtureTime.Add(-time.Minute)},
	} {
		page, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatalf("Poll %d: %v", i+1, err)
		}
		var ids []string
		for _, tk := range page.Tickets {
			ids = append(ids, tk.ID)
			tk.Source = "zd"
			if err := tk.Validate(); err != nil {
				t.Errorf("Poll %d: ticket %s: %v", i+1, tk.ID, err)
			}
			all = append(all, tk)
		}
		if strings.Join(ids, ",") != strings.Join(want.ids, ",") || page.More != want.more || !page.Watermark.Equal(want.watermark) || len(page.Rejects) != 0 {
			t.Errorf("Poll %d = ids %v, more %v, watermark %s, %d rejects; want %v, %v, %s, 0", i+1, ids, page.More, page.Watermark, len(page.Rejects), want.ids, want.more, want.watermark)
		}
		cur = page.Cursor
	}
	checkGolden(t, "incremental_tickets_cursor", ticketJSON(t, all))

	first := queries[0]
	if got := first.Get("start_time"); got != "1715558400" {
		t.Errorf("first request start_time = %q, want 1715558400 (poll.start 2024-05-13T00:00:00Z)", got)
	}
	for _, k := range []string{"cursor"} {
		if first.Has(k) {
			t.Errorf("first request has %s", k)
		}
	}
	for i, q := range queries {
		if q.Get("per_page") != "100" || q.Get("exclude_deleted") != "true" || q.Get("include") != "users" {
			t.Errorf("request %d query = %v, want per_page=100, exclude_deleted=true, include=users", i+1, q)
		}
		if i > 0 && (q.Has("start_time") || q.Get("cursor") == "") {
			t.Errorf("request %d query = %v, want the cursor only", i+1, q)
		}
	}
	var c Cursor
	if err := json.Unmarshal(cur, &c); err != nil || c.After != "MTcxNTU5NTM0Mi4wfHw1MTU4fA==" {
		t.Errorf("final cursor = %s (%v), want page 2's after_cursor kept", cur, err)
	}
}

func TestPollStartTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, start string
		want        time.Time
	}{
		{"a relative start counts back from now", "-24h", now.Add(-24 * time.Hour)},
		{"now starts just before the excluded minute", "now", now.Add(-61 * time.Second)},
		{"an RFC 3339 start is used as is", "2026-11-01T00:00:00Z", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, nil)
			src := pollSource(t, f.srv.URL, nil)
			src.Config.Poll.Start = tt.start
			p := newTestPoller(t, src)
			p.now = func() time.Time { return now }
			page, err := p.Poll(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := url.ParseQuery(f.queries[0])
			if got := q.Get("start_time"); got != strconv.FormatInt(tt.want.Unix(), 10) {
				t.Errorf("start_time = %s, want %d (%s)", got, tt.want.Unix(), tt.want)
			}
			var c Cursor
			if err := json.Unmarshal(page.Cursor, &c); err != nil || c.After == "" || c.StartTime != tt.want.Unix() {
				t.Errorf("cursor = %s, want the after_cursor and start_time %d", page.Cursor, tt.want.Unix())
			}
		})
	}
}

// TestPollVendorAnswers checks what Poll makes of Zendesk's error answers,
// and that it retries what the API client may retry.
func TestPollVendorAnswers(t *testing.T) {
	records := genRecords(3, 1, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC))
	fixture := func(headers, body string) func(int, http.ResponseWriter, *http.Request) bool {
		return func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > 1 {
				return false
			}
			serveFixture(t, w, headers, body)
			return true
		}
	}
	status := func(times, code int, h map[string]string) func(int, http.ResponseWriter, *http.Request) bool {
		return func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > times {
				return false
			}
			for k, v := range h {
				w.Header().Set(k, v)
			}
			http.Error(w, http.StatusText(code), code)
			return true
		}
	}
	for _, tt := range []struct {
		name       string
		answer     func(int, http.ResponseWriter, *http.Request) bool
		timeout    time.Duration
		wantStatus int // 0: success
		wantRetry  time.Duration
		wantCalls  int32
	}{
		{name: "a 429 of the export (JSON body) waits its Retry-After", answer: fixture("rate_limited_429_incremental.headers", "rate_limited_429_incremental.json"), wantStatus: 429, wantRetry: 47 * time.Second, wantCalls: 1},
		{name: "a 429 with a plain-text body is still a 429", answer: fixture("rate_limited_429.headers", "rate_limited_429.txt"), wantStatus: 429, wantRetry: 13 * time.Second, wantCalls: 1},
		{name: "a ratelimit-reset beyond Retry-After wins", answer: status(1, 429, map[string]string{"Retry-After": "10", "ratelimit-reset": "41"}), wantStatus: 429, wantRetry: 41 * time.Second, wantCalls: 1},
		{name: "an endpoint header's resets= beyond Retry-After wins", answer: status(1, 429, map[string]string{"Retry-After": "10", "zendesk-ratelimit-tickets-index": "total=100; remaining=0; resets=55"}), wantStatus: 429, wantRetry: 55 * time.Second, wantCalls: 1},
		{name: "a short Retry-After is waited out inside the call", answer: status(1, 429, map[string]string{"Retry-After": "0"}), wantCalls: 2},
		{name: "a 401 is not retried", answer: fixture("error_401.headers", "error_401.json"), wantStatus: 401, wantCalls: 1},
		{name: "a 500 is retried and then succeeds", answer: status(1, 500, nil), wantCalls: 2},
		{name: "500s beyond max_retries come back", answer: status(99, 500, nil), wantStatus: 500, wantCalls: 3},
		{name: "a slow answer times out and is retried", timeout: 100 * time.Millisecond, answer: func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > 1 {
				return false
			}
			<-r.Context().Done() // hang until the client gives up
			return true
		}, wantCalls: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, records)
			f.setAnswer(tt.answer)
			src := pollSource(t, f.srv.URL, nil)
			if tt.timeout > 0 {
				src.Config.API.Timeout = tt.timeout
			}
			p := newTestPoller(t, src)
			page, err := p.Poll(t.Context(), nil)
			var ve *connectors.VendorError
			switch {
			case tt.wantStatus == 0 && (err != nil || len(page.Tickets) != 3):
				t.Errorf("Poll = %d tickets, %v; want 3, nil", len(page.Tickets), err)
			case tt.wantStatus != 0 && (!errors.As(err, &ve) || ve.Status != tt.wantStatus || ve.RetryAfter != tt.wantRetry):
				t.Errorf("Poll error = %v, want a %d VendorError with RetryAfter %s", err, tt.wantStatus, tt.wantRetry)
			}
			if got := f.requests.Load(); got != tt.wantCalls {
				t.Errorf("requests = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestPollDeletedAndRejected(t *testing.T) {
	records := genRecords(4, 1, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC))
	records[1].deleted = true
	records[1].body = []byte(strings.Replace(string(records[1].body), `"status":"open"`, `"status":"deleted"`, 1))
	records[2].body = []byte(strings.Replace(string(records[2].body), `"updated_at":"`, `"updated_at":"yesterday `, 1))
	for _, tt := range []struct {
		name     string
		include  bool
		wantIDs  string
		wantRejs string
	}{
		{"deleted tickets are excluded by default", false, "100000,100003", "100002"},
		{"include_deleted passes them with state deleted", true, "100000,100001,100003", "100002"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, records)
			p := newTestPoller(t, pollSource(t, f.srv.URL, map[string]any{"include_deleted": tt.include}))
			page, err := p.Poll(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var ids, rejs []string
			for _, tk := range page.Tickets {
				ids = append(ids, tk.ID)
				if tk.ID == "100001" && tk.State != "deleted" {
					t.Errorf("deleted ticket state = %q, want deleted", tk.State)
				}
				if !strings.HasPrefix(tk.Caller.Email, "requester-") || tk.Caller.ID == "" {
					t.Errorf("ticket %s caller = %+v, want the requester id and sideloaded e-mail", tk.ID, tk.Caller)
				}
			}
			for _, r := range page.Rejects {
				rejs = append(rejs, r.ID)
				if !strings.Contains(r.Err.Error(), "updated_at") || !json.Valid(r.Payload) {
					t.Errorf("reject %s = %v with payload %.40s", r.ID, r.Err, r.Payload)
				}
			}
			if strings.Join(ids, ",") != tt.wantIDs || strings.Join(rejs, ",") != tt.wantRejs {
				t.Errorf("Poll = tickets %v, rejects %v; want %s and %s", ids, rejs, tt.wantIDs, tt.wantRejs)
			}
		})
	}
}

func TestPollImpactUrgencyFields(t *testing.T) {
	var queries []url.Values
	srv := fixtureExport(t, &queries)
	p := newTestPoller(t, pollSource(t, srv.URL, map[string]any{
		"impact": map[string]any{"field": 360012345678, "values": map[string]any{"impact_high": 1, "impact_low": 3}},
	}))
	page, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range page.Tickets {
		if tk.Impact != 3 || tk.Urgency != 0 {
			t.Errorf("ticket %s impact, urgency = %d, %d; want 3 (impact_low), 0", tk.ID, tk.Impact, tk.Urgency)
		}
	}
}

// TestPollPacing checks that export requests are spaced to
// requests_per_minute.
func TestPollPacing(t *testing.T) {
	f := newFake(t, genRecords(3, 1, time.Date(2024, 5, 13, 9, 0, 0, 0, time.UTC)))
	p := newTestPoller(t, pollSource(t, f.srv.URL, map[string]any{"requests_per_minute": 10}))
	clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var waits []time.Duration
	p.now = func() time.Time { return clock }
	p.wait = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		clock = clock.Add(d)
		return nil
	}
	for range 3 {
		if _, err := p.Poll(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{0, 6 * time.Second, 6 * time.Second}
	if len(waits) != 3 || waits[0] != want[0] || waits[1] != want[1] || waits[2] != want[2] {
		t.Errorf("waits = %v, want %v", waits, want)
	}
}

func TestPollConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*connectors.Source)
		want string
	}{
		{"fields cannot be selected", func(s *connectors.Source) { s.Config.Poll.Fields = []string{"subject"} }, "connectors.zd.poll.fields: the Zendesk export always returns whole tickets"},
		{"a page beyond the export's limit", func(s *connectors.Source) { s.Config.Poll.PageSize = 5000 }, "connectors.zd.poll.page_size: must be 1 to 1000"},
		{"an api auth type the client does not know", func(s *connectors.Source) { s.Config.API.Auth.Type = "token" }, "connectors.zd.api.auth.type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := pollSource(t, "https://example.zendesk.com", nil)
			tt.edit(&src)
			_, err := newPoller(src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newPoller error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name     string
		poll     bool
		password string
		want     []string // "ok name" or "FAIL name"
		path     string
	}{
		{"with polling it reads one export page", true, fakeToken, []string{"ok auth", "ok permission", "ok rate limit"}, exportPath},
		{"without polling it reads the current user", false, fakeToken, []string{"ok auth", "ok permission", "ok rate limit"}, "/api/v2/users/me.json"},
		{"a wrong token fails auth", true, "wrong", []string{"FAIL auth", "ok rate limit"}, exportPath},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, nil)
			var paths []string
			f.setAnswer(func(_ int, _ http.ResponseWriter, r *http.Request) bool {
				paths = append(paths, r.URL.Path)
				return false
			})
			src := pollSource(t, f.srv.URL, nil)
			src.Config.Poll.Enabled = tt.poll
			src.Config.API.Auth.Password = config.NewSecret(tt.password)
			fs, err := check(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, fd := range fs {
				if fd.Name == "clock skew" {
					continue
				}
				mark := "ok"
				if !fd.OK {
					mark = "FAIL"
				}
				got = append(got, mark+" "+fd.Name)
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("check = %v, want %v (%s)", got, tt.want, connectors.FormatFindings("zd", fs))
			}
			if tt.password == fakeToken && (len(paths) != 1 || paths[0] != tt.path) {
				t.Errorf("check read %v, want one read of %s", paths, tt.path)
			}
		})
	}
}
