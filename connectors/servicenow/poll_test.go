package servicenow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/connectors/servicenow/servicenowtest"
)

var start = time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)

// drain polls p until a page says no more, returning every page.
func drain(t *testing.T, p connectors.Poller, cur []byte) ([]connectors.Page, []byte) {
	t.Helper()
	var pages []connectors.Page
	for range 1000 {
		pg, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatalf("Poll after %d pages: %v", len(pages), err)
		}
		pages = append(pages, pg)
		cur = pg.Cursor
		if !pg.More {
			return pages, cur
		}
	}
	t.Fatal("Poll said More 1000 times")
	return nil, nil
}

func ids(pages []connectors.Page) map[string]int {
	out := map[string]int{}
	for _, pg := range pages {
		for _, tk := range pg.Tickets {
			out[tk.ID+"@"+tk.UpdatedAt.Format(TimeLayout)]++
		}
	}
	return out
}

func TestPollFixturePages(t *testing.T) {
	f := newFake(t)
	f.Add(fixtureRecords(t, "incident_list_page1.json")...)
	f.Add(fixtureRecords(t, "incident_list_page2.json")...)
	now := time.Date(2024, 5, 13, 10, 30, 0, 0, time.UTC)
	p, err := buildPoller(source(t, f.URL(), nil), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	var cur []byte
	for i, want := range []struct {
		ids    []string
		more   bool
		cursor string
	}{
		{[]string{"e47141c8f5c126925511abe48f1a8943", "d22622188d30981b516b05c673fb797a"}, true, `{"v":1,"sys_updated_on":"2024-05-13 10:07:55","sys_id":"d22622188d30981b516b05c673fb797a"}`},
		{[]string{"59a60bfcb9e24a4ba04482e650fb4efd"}, false, `{"v":1,"sys_updated_on":"2024-05-13 10:15:42","sys_id":"59a60bfcb9e24a4ba04482e650fb4efd"}`},
		{nil, false, `{"v":1,"sys_updated_on":"2024-05-13 10:15:42","sys_id":"59a60bfcb9e24a4ba04482e650fb4efd"}`},
	} {
		pg, err := p.Poll(t.Context(), cur)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		var got []string
		for _, tk := range pg.Tickets {
			got = append(got, tk.ID)
			if tk.Source != "snow" || tk.Raw == nil || tk.UpdatedAt.IsZero() {
				t.Errorf("page %d: ticket %s lacks source, raw or updated_at", i, tk.ID)
			}
		}
		if !slices.Equal(got, want.ids) || pg.More != want.more || string(pg.Cursor) != want.cursor {
			t.Errorf("page %d = %v more=%v cursor %s\nwant %v more=%v cursor %s", i, got, pg.More, pg.Cursor, want.ids, want.more, want.cursor)
		}
		cur = pg.Cursor
	}
	wantQ := []string{
		"sys_updated_on>=2024-05-13 10:00:00^sys_updated_on<2024-05-13 10:29:55^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on>=2024-05-13 10:07:55^sys_updated_on>2024-05-13 10:07:55^ORsys_id>d22622188d30981b516b05c673fb797a^sys_updated_on<2024-05-13 10:29:55^ORDERBYsys_updated_on^ORDERBYsys_id",
	}
	if q := f.Queries(); !slices.Equal(q[:2], wantQ) {
		t.Errorf("queries =\n%s\nwant\n%s", strings.Join(q[:2], "\n"), strings.Join(wantQ, "\n"))
	}
}

// TestPollRequest checks the parameters of a poll request.
func TestPollRequest(t *testing.T) {
	f := newFake(t)
	var got atomic.Pointer[http.Request]
	f.Intercept = func(w http.ResponseWriter, r *http.Request, _ int64) bool { got.Store(r); return false }
	for _, tt := range []struct {
		name   string
		opts   map[string]any
		fields []string
		want   map[string]string
	}{
		{"defaults read the mapped fields", nil, nil, map[string]string{
			"sysparm_fields":                 "assigned_to,assigned_to.name,assignment_group,assignment_group.name,caller_id,caller_id.email,caller_id.name,category,cmdb_ci,cmdb_ci.name,contact_type,description,impact,number,opened_at,priority,short_description,state,subcategory,sys_id,sys_mod_count,sys_updated_on,urgency",
			"sysparm_limit":                  "2",
			"sysparm_offset":                 "0",
			"sysparm_exclude_reference_link": "true",
			"sysparm_display_value":          "",
		}},
		{"poll.fields keep sys_id and sys_updated_on", map[string]any{"display_value": "all"}, []string{"number", "short_description"}, map[string]string{
			"sysparm_fields":        "number,short_description,sys_id,sys_updated_on",
			"sysparm_display_value": "all",
		}},
		{"the query option is ANDed first", map[string]any{"query": "active=true^ORpriority=1"}, nil, map[string]string{
			"sysparm_query": "active=true^ORpriority=1^sys_updated_on>=2024-05-13 10:00:00^sys_updated_on<",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPoller(t, source(t, f.URL(), tt.opts, func(c *config.Connector) { c.Poll.Fields = tt.fields }))
			if _, err := p.Poll(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			r := got.Load()
			for k, v := range tt.want {
				if g := r.URL.Query().Get(k); g != v && !(k == "sysparm_query" && strings.HasPrefix(g, v)) {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
			if r.URL.Path != "/api/now/table/incident" || r.Header.Get("Accept") != "application/json" {
				t.Errorf("request %s Accept %q", r.URL.Path, r.Header.Get("Accept"))
			}
		})
	}
}

// TestPollSameSecondAcrossPages: 250 records share one sys_updated_on
// second across page boundaries; one sweep reads each exactly once.
func TestPollSameSecondAcrossPages(t *testing.T) {
	f := newFake(t)
	f.Add(genRecords(5, 5, start, 1)...)
	f.Add(genRecords(250, 250, start.Add(time.Minute), 2)...)
	f.Add(genRecords(5, 5, start.Add(2*time.Minute), 3)...)
	p := mustPoller(t, source(t, f.URL(), nil, func(c *config.Connector) { c.Poll.PageSize = 100 }))
	pages, cur := drain(t, p, nil)
	var sizes []int
	for _, pg := range pages {
		sizes = append(sizes, len(pg.Tickets))
	}
	if want := []int{100, 100, 60}; !slices.Equal(sizes, want) {
		t.Errorf("page sizes = %v, want %v", sizes, want)
	}
	seen := ids(pages)
	if len(seen) != 260 {
		t.Errorf("read %d distinct records, want 260", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times in one sweep", id, n)
		}
	}
	// Polling on from the last cursor reads nothing again.
	again, _ := drain(t, p, cur)
	if n := len(ids(again)); n != 0 {
		t.Errorf("a later poll read %d records again", n)
	}
}

// TestPollRowsUpdatedWhilePaging: records updated between pages move to a
// later time and are read there; none is skipped (offset paging would
// skip the row that moves up into a page already read).
func TestPollRowsUpdatedWhilePaging(t *testing.T) {
	f := newFake(t)
	recs := genRecords(30, 2, start, 4) // two per second
	f.Add(recs...)
	p := mustPoller(t, source(t, f.URL(), nil, func(c *config.Connector) { c.Poll.PageSize = 10 }))
	pg, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// One record of the first page and one of the second are updated now.
	moved := []string{recs[3]["sys_id"].(string), recs[12]["sys_id"].(string)}
	later := start.Add(time.Hour).Format(TimeLayout)
	for _, id := range moved {
		f.Update(id, map[string]any{"sys_updated_on": later})
	}
	pages, _ := drain(t, p, pg.Cursor)
	seen := ids(append([]connectors.Page{pg}, pages...))
	for _, r := range recs {
		id := r["sys_id"].(string)
		at := r["sys_updated_on"].(string)
		if slices.Contains(moved, id) {
			at = later
		}
		if seen[id+"@"+at] != 1 {
			t.Errorf("record %s@%s read %d times, want once", id, at, seen[id+"@"+at])
		}
	}
}

// TestPollSettle: records updated within the settle time are left for a
// later poll, so the cursor never enters a second that may still grow.
func TestPollSettle(t *testing.T) {
	f := newFake(t)
	now := start.Add(10 * time.Minute)
	f.Add(genRecords(3, 1, now.Add(-3*time.Second), 5)...) // 3s, 2s and 1s ago
	p, err := buildPoller(source(t, f.URL(), nil, func(c *config.Connector) { c.Poll.PageSize = 10 }), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	pg, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Tickets) != 0 {
		t.Errorf("read %d records updated within the 5s settle time", len(pg.Tickets))
	}
	now = now.Add(4 * time.Second) // the first two settle
	pg, err = p.Poll(t.Context(), pg.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Tickets) != 2 {
		t.Errorf("read %d records after they settled, want 2", len(pg.Tickets))
	}
}

// TestPollACLHiddenPage: the limit is applied before ACLs, so a page can
// come back empty while more rows exist; the poller steps over it.
func TestPollACLHiddenPage(t *testing.T) {
	f := newFake(t)
	recs := genRecords(6, 1, start, 6)
	f.Add(recs...)
	f.Hide(recs[0]["sys_id"].(string))
	f.Hide(recs[1]["sys_id"].(string))
	p := mustPoller(t, source(t, f.URL(), nil))
	pages, _ := drain(t, p, nil)
	if len(pages[0].Tickets) != 0 || !pages[0].More {
		t.Errorf("first page = %d tickets more=%v, want an empty page with more", len(pages[0].Tickets), pages[0].More)
	}
	if got := ids(pages); len(got) != 4 {
		t.Errorf("read %d records, want the 4 visible ones: %v", len(got), got)
	}
}

func TestPollRejects(t *testing.T) {
	f := newFake(t)
	recs := genRecords(3, 1, start, 7)
	recs[1]["impact"] = map[string]any{"display_value": "High"} // no value
	recs[2]["short_description"], recs[2]["number"] = "", ""
	f.Add(recs...)
	p := mustPoller(t, source(t, f.URL(), nil, func(c *config.Connector) { c.Poll.PageSize = 10 }))
	pg, err := p.Poll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Tickets) != 1 || len(pg.Rejects) != 2 {
		t.Fatalf("page = %d tickets, %d rejects; want 1 and 2", len(pg.Tickets), len(pg.Rejects))
	}
	for i, r := range pg.Rejects {
		var ie *connectors.InputError
		if r.ID != recs[i+1]["sys_id"] || !errors.As(r.Err, &ie) || !json.Valid(r.Payload) {
			t.Errorf("reject %d = %s %v %q", i, r.ID, r.Err, r.Payload)
		}
	}
	var c cursor
	_ = json.Unmarshal(pg.Cursor, &c)
	if c.SysID != recs[2]["sys_id"] {
		t.Errorf("cursor %s does not move past the rejected records", pg.Cursor)
	}
}

func TestPollErrors(t *testing.T) {
	resetIn := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	for _, tt := range []struct {
		name       string
		setup      func(f *servicenowtest.Server, c *config.Connector)
		cursor     string
		wantStatus int // 0: success
		wantWait   time.Duration
		wantErr    string
		wantCalls  int64
	}{
		{"wrong credentials are a 401, not retried", func(f *servicenowtest.Server, c *config.Connector) { c.API.Auth.Password = config.NewSecret("nope") }, "", http.StatusUnauthorized, 0, "", 1},
		{"a 429 waits for the rate-limit reset beyond Retry-After", func(f *servicenowtest.Server, c *config.Connector) {
			f.RateEvery, f.RetryAfter, f.Reset = 1, func(int64) string { return "120" }, resetIn(10*time.Minute)
		}, "", http.StatusTooManyRequests, 10 * time.Minute, "", 1},
		{"a 429 waits for Retry-After when the reset is sooner", func(f *servicenowtest.Server, c *config.Connector) {
			f.RateEvery, f.RetryAfter, f.Reset = 1, func(int64) string { return "1800" }, resetIn(time.Minute)
		}, "", http.StatusTooManyRequests, 30 * time.Minute, "", 1},
		{"a 429 with Retry-After 0 is retried inside the call", func(f *servicenowtest.Server, c *config.Connector) {
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if n == 1 {
					f.TooMany(w, "0", time.Now())
					return true
				}
				return false
			}
		}, "", 0, 0, "", 2},
		{"a 500 is retried with backoff", func(f *servicenowtest.Server, c *config.Connector) {
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if n <= 2 {
					w.WriteHeader(http.StatusInternalServerError)
					return true
				}
				return false
			}
		}, "", 0, 0, "", 3},
		{"a slow answer times out and is retried", func(f *servicenowtest.Server, c *config.Connector) {
			c.API.Timeout = 100 * time.Millisecond
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if n == 1 {
					<-r.Context().Done() // answers only when the client gave up
					return true
				}
				return false
			}
		}, "", 0, 0, "", 2},
		{"lasting 500s end the call for the runner to back off", func(f *servicenowtest.Server, c *config.Connector) {
			c.API.MaxRetries = 2
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				w.WriteHeader(http.StatusBadGateway)
				return true
			}
		}, "", http.StatusBadGateway, 0, "", 3},
		{"an unknown table is a 400", func(f *servicenowtest.Server, c *config.Connector) { c.Options = map[string]any{"table": "incidnt"} }, "", http.StatusBadRequest, 0, "", 1},
		{"an unreadable cursor says how to recover", nil, `{"v":1,"sys_updated_on":"yesterday"}`, 0, 0, `delete source "snow" from the cursors bucket`, 0},
		{"a cursor sys_id that could change the query is refused", nil, `{"v":1,"sys_updated_on":"2024-05-13 10:00:00","sys_id":"x^ORactive=true"}`, 0, 0, `is not a sys_id`, 0},
		{"an instance that ignores the tie-break is caught", func(f *servicenowtest.Server, c *config.Connector) {
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				servicenowtest.WriteJSON(w, http.StatusOK, nil, map[string]any{"result": []any{map[string]any{"sys_id": "00000000000000000000000000000001", "sys_updated_on": "2024-05-13 10:00:00", "short_description": "x"}}})
				return true
			}
		}, `{"v":1,"sys_updated_on":"2024-05-13 10:00:00","sys_id":"00000000000000000000000000000001"}`, 0, 0, "the instance ignored part of the query", 1},
		{"a row without sys_updated_on is an error, not a skip", func(f *servicenowtest.Server, c *config.Connector) {
			f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
				servicenowtest.WriteJSON(w, http.StatusOK, nil, map[string]any{"result": []any{map[string]any{"sys_id": "00000000000000000000000000000001"}}})
				return true
			}
		}, "", 0, 0, "needs read access to both", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.Add(fixtureRecords(t, "incident_list_page1.json")...)
			src := source(t, f.URL(), nil)
			if tt.setup != nil {
				tt.setup(f, &src.Config)
			}
			p := mustPoller(t, src)
			var cur []byte
			if tt.cursor != "" {
				cur = []byte(tt.cursor)
			}
			pg, err := p.Poll(t.Context(), cur)
			var ve *connectors.VendorError
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Poll = %v, want error containing %q", err, tt.wantErr)
				}
			case tt.wantStatus == 0:
				if err != nil || len(pg.Tickets) != 2 {
					t.Errorf("Poll = %d tickets, %v; want 2 tickets", len(pg.Tickets), err)
				}
			case !errors.As(err, &ve) || ve.Status != tt.wantStatus:
				t.Errorf("Poll error = %v, want a VendorError %d", err, tt.wantStatus)
			case tt.wantWait > 0 && (ve.RetryAfter < tt.wantWait-5*time.Second || ve.RetryAfter > tt.wantWait):
				t.Errorf("RetryAfter = %s, want about %s", ve.RetryAfter, tt.wantWait)
			}
			if n := f.All.Load(); n != tt.wantCalls {
				t.Errorf("requests = %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestPollCallerLookup(t *testing.T) {
	f := newFake(t)
	recs := genRecords(6, 1, start, 8)
	for i, r := range recs { // two callers
		id := fmt.Sprintf("%032x", i%2+1)
		r["caller_id"] = map[string]any{"link": "x", "value": id}
		f.SetUser(id, map[string]any{"sys_id": id, "email": fmt.Sprintf("c%d@example.com", i%2+1), "name": "C"})
	}
	f.Add(recs...)
	p := mustPoller(t, source(t, f.URL(), map[string]any{"lookup_caller_email": true}, func(c *config.Connector) { c.Poll.PageSize = 3 }))
	pages, _ := drain(t, p, nil)
	for _, pg := range pages {
		for _, tk := range pg.Tickets {
			if want := fmt.Sprintf("c%d@example.com", map[string]int{fmt.Sprintf("%032x", 1): 1, fmt.Sprintf("%032x", 2): 2}[tk.Caller.ID]); tk.Caller.Email != want {
				t.Errorf("ticket %s caller = %+v, want %s", tk.ID, tk.Caller, want)
			}
		}
	}
	if n := f.UserReads.Load(); n != 2 {
		t.Errorf("sys_user read %d times for 6 tickets of 2 callers, want 2", n)
	}
	// A transient lookup failure fails the page, to be fetched again.
	late := genRecords(1, 1, start.Add(time.Hour), 9)
	late[0]["caller_id"] = fmt.Sprintf("%032x", 3) // not cached
	f.Add(late...)
	f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if strings.Contains(r.URL.Path, "sys_user") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	_, err := p.Poll(t.Context(), pages[len(pages)-1].Cursor)
	if !connectors.IsVendorStatus(err, http.StatusServiceUnavailable) {
		t.Errorf("Poll with a failing lookup = %v, want the 503", err)
	}
}

func TestCheck(t *testing.T) {
	f := newFake(t)
	f.Add(fixtureRecords(t, "incident_list_page1.json")...)
	f.Intercept = func(w http.ResponseWriter, r *http.Request, n int64) bool {
		w.Header().Set("X-RateLimit-Limit", "500")
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		return false
	}
	for _, tt := range []struct {
		name string
		mod  func(*config.Connector)
		want []string
	}{
		{"good credentials", nil, []string{"ok   snow auth:", "ok   snow permission:", "ok   snow rate limit: limit 500", "ok   snow clock skew:"}},
		{"bad credentials", func(c *config.Connector) { c.API.Auth.Password = config.NewSecret("nope") }, []string{"FAIL snow auth:"}},
		{"with caller lookup", func(c *config.Connector) { c.Options = map[string]any{"lookup_caller_email": true} }, []string{"ok   snow caller lookup:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, f.URL(), nil)
			if tt.mod != nil {
				tt.mod(&src.Config)
			}
			spec, _ := connectors.Lookup("servicenow")
			fs, err := spec.Check(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			out := connectors.FormatFindings("snow", fs)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("findings:\n%s\nwant a line starting %q", out, w)
				}
			}
		})
	}
}
