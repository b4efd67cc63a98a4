package zendesk

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
)

// Credentials the fake accepts: Zendesk's API token form of basic auth,
// "{email}/token:{api_token}".
const (
	fakeUser  = "agent@example.com/token"
	fakeToken = "zendesk-api-token"
)

// fakeRecord is one ticket in the fake's export.
type fakeRecord struct {
	id, ts    int64 // ticket id, generated_timestamp
	requester int64
	deleted   bool
	body      []byte // the REST ticket JSON
}

// fakeZendesk serves the cursor-based Incremental Ticket Export as Zendesk
// documents it: ordered by generated_timestamp then id, per_page up to
// 1000, an opaque after_cursor that resumes right after the last ticket
// of the page, end_of_stream when nothing newer is left, nothing from the
// minute before the request, exclude_deleted and include=users. Answer
// lets a test answer a request itself (429, 401, 500, a hang).
type fakeZendesk struct {
	t       testing.TB
	srv     *httptest.Server
	now     func() time.Time
	records []fakeRecord // sorted by (ts, id)

	mu       sync.Mutex
	answer   func(n int, w http.ResponseWriter, r *http.Request) bool
	queries  []string
	requests atomic.Int32
	eos      atomic.Int32 // end_of_stream pages served
}

func newFake(t testing.TB, records []fakeRecord) *fakeZendesk {
	t.Helper()
	slices.SortFunc(records, func(a, b fakeRecord) int {
		if a.ts != b.ts {
			return int(a.ts - b.ts)
		}
		return int(a.id - b.id)
	})
	f := &fakeZendesk{t: t, records: records, now: time.Now}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// setAnswer installs a hook that may answer request n (1-based) itself.
func (f *fakeZendesk) setAnswer(fn func(n int, w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = fn
}

func (f *fakeZendesk) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.requests.Add(1))
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	answer := f.answer
	f.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != fakeUser || p != fakeToken {
		serveFixture(f.t, w, "error_401.headers", "error_401.json")
		return
	}
	if answer != nil && answer(n, w, r) {
		return
	}
	switch r.URL.Path {
	case "/api/v2/users/me.json":
		w.Header().Set("X-Rate-Limit", "700")
		w.Header().Set("X-Rate-Limit-Remaining", "699")
		_, _ = io.WriteString(w, `{"user":{"id":29001000000103,"name":"Agent","role":"admin"}}`)
	case exportPath:
		f.export(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeZendesk) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	perPage := 1000
	if s := q.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, `{"error":"InvalidValue"}`, http.StatusBadRequest)
			return
		}
		perPage = min(n, 1000)
	}
	// Position: strictly after (ts, id).
	var posTS, posID int64
	switch {
	case q.Get("cursor") != "":
		var err error
		if posTS, posID, err = decodeFakeCursor(q.Get("cursor")); err != nil {
			http.Error(w, `{"error":"InvalidCursor"}`, http.StatusBadRequest)
			return
		}
	case q.Get("start_time") != "":
		st, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
		if err != nil {
			http.Error(w, `{"error":"InvalidValue"}`, http.StatusBadRequest)
			return
		}
		posTS, posID = st, 0 // ts >= start_time
	default:
		http.Error(w, `{"error":"InvalidValue","description":"start_time or cursor is required"}`, http.StatusBadRequest)
		return
	}
	visibleTo := f.now().Add(-time.Minute).Unix() // the last minute is excluded
	excludeDeleted := q.Get("exclude_deleted") == "true"
	var page []fakeRecord
	more := false
	for _, rec := range f.records {
		if rec.ts < posTS || rec.ts == posTS && rec.id <= posID || rec.ts > visibleTo {
			continue
		}
		if excludeDeleted && rec.deleted {
			continue
		}
		if len(page) == perPage {
			more = true
			break
		}
		page = append(page, rec)
	}
	after := encodeFakeCursor(posTS, posID)
	if len(page) > 0 {
		last := page[len(page)-1]
		after = encodeFakeCursor(last.ts, last.id)
	}
	tickets := make([]json.RawMessage, len(page))
	var users []map[string]any
	for i, rec := range page {
		tickets[i] = rec.body
		if q.Get("include") == "users" && rec.requester != 0 {
			users = append(users, map[string]any{"id": rec.requester, "email": fmt.Sprintf("requester-%d@example.com", rec.requester), "name": "Requester"})
		}
	}
	body := map[string]any{
		"tickets":       tickets,
		"after_url":     f.srv.URL + exportPath + "?cursor=" + after + "&per_page=" + strconv.Itoa(perPage),
		"after_cursor":  after,
		"before_url":    nil,
		"before_cursor": nil,
		"end_of_stream": !more,
	}
	if users != nil {
		body["users"] = users
	}
	if !more {
		f.eos.Add(1)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Rate-Limit", "700")
	w.Header().Set("X-Rate-Limit-Remaining", "697")
	_ = json.NewEncoder(w).Encode(body)
}

// The fake's cursors look like Zendesk's: base64 of "<ts>.0||<id>|".
func encodeFakeCursor(ts, id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%d.0||%d|", ts, id))
}

func decodeFakeCursor(c string) (ts, id int64, err error) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, err
	}
	tsPart, rest, ok := strings.Cut(string(b), ".0||")
	if !ok {
		return 0, 0, fmt.Errorf("cursor %q", b)
	}
	if ts, err = strconv.ParseInt(tsPart, 10, 64); err != nil {
		return 0, 0, err
	}
	id, err = strconv.ParseInt(strings.TrimSuffix(rest, "|"), 10, 64)
	return ts, id, err
}

// genRecords makes n tickets with ids from 100000; every group of
// sameSecond consecutive tickets shares one generated_timestamp, starting
// at base.
func genRecords(n, sameSecond int, base time.Time) []fakeRecord {
	out := make([]fakeRecord, n)
	for i := range out {
		id := int64(100000 + i)
		ts := base.Unix() + int64(i/sameSecond)
		at := time.Unix(ts, 0).UTC().Format(time.RFC3339)
		requester := int64(29001000100000 + i%50)
		body, _ := json.Marshal(map[string]any{
			"url": fmt.Sprintf("https://example.zendesk.com/api/v2/tickets/%d.json", id), "id": id,
			"external_id": nil, "via": map[string]any{"channel": "email", "source": map[string]any{"from": map[string]any{}, "to": map[string]any{}, "rel": nil}},
			"created_at": at, "updated_at": at, "generated_timestamp": ts,
			"type": "incident", "subject": fmt.Sprintf("Generated ticket %d", id), "raw_subject": fmt.Sprintf("Generated ticket %d", id),
			"description": "Generated by the fake Zendesk.", "priority": "normal", "status": "open",
			"requester_id": requester, "submitter_id": requester, "assignee_id": nil,
			"organization_id": 29001000000601, "group_id": 29001000000501,
			"tags": []string{"generated"}, "custom_fields": []any{}, "is_public": true,
		})
		out[i] = fakeRecord{id: id, ts: ts, requester: requester, body: body}
	}
	return out
}

// serveFixture writes a fixture response: the .headers file (status line
// and headers) and the body file.
func serveFixture(t testing.TB, w http.ResponseWriter, headers, body string) {
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(fixture.Read(t, "testdata", headers)), bytes.NewReader(fixture.Read(t, "testdata", body)))), nil)
	if err != nil {
		t.Errorf("fixture %s: %v", headers, err)
		http.Error(w, "bad fixture", http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// pollSource is a polling zendesk source against base with millisecond
// retry waits and no request pacing.
func pollSource(t testing.TB, base string, opts map[string]any) connectors.Source {
	t.Helper()
	src := source(t, opts)
	if src.Config.Options == nil {
		src.Config.Options = map[string]any{}
	}
	if _, ok := src.Config.Options["requests_per_minute"]; !ok {
		src.Config.Options["requests_per_minute"] = 0
	}
	src.Config.API = config.API{
		BaseURL:      base,
		Auth:         config.APIAuth{Type: "basic", Username: fakeUser, Password: config.NewSecret(fakeToken)},
		Timeout:      2 * time.Second,
		MaxRetries:   2,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	}
	src.Config.Poll = config.Poll{Enabled: true, Interval: 10 * time.Millisecond, PageSize: 100, Start: "2024-05-13T00:00:00Z", LeaseTTL: 30 * time.Second}
	src.Metrics = connectors.NewPollMetrics(nil)
	return src
}

func newTestPoller(t testing.TB, src connectors.Source) *poller {
	t.Helper()
	p, err := newPoller(src)
	if err != nil {
		t.Fatalf("newPoller: %v", err)
	}
	return p.(*poller)
}
