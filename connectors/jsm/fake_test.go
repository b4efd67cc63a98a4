package jsm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
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

// fakeJira is a Jira Cloud search endpoint that behaves as SOURCES.md
// documents: GET /rest/api/3/search/jql with a JQL "updated >= <minute>"
// read in the API user's time zone, ORDER BY updated ASC, key ASC,
// maxResults, and nextPageToken paging until isLast (no total, no
// startAt). Its tokens are position-based (the least favourable choice,
// since Jira leaves them opaque) and can be made to expire. It answers
// 401 without the right credentials and serves scripted failures first.
type fakeJira struct {
	t   testing.TB
	loc *time.Location // the API user's profile time zone

	mu        sync.Mutex
	issues    map[string]*fakeIssue
	sorted    []*fakeIssue // issues by (updated, id), rebuilt when dirty
	dirty     bool
	tokens    map[string]fakeToken
	nextTok   int
	requests  int
	script    []func(w http.ResponseWriter, r *http.Request) bool // consumed first, in order
	afterPage func(f *fakeJira, page int)                         // called with mu held after each page
	pages     int
	queries   []string // jql of each request
}

type fakeIssue struct {
	id      int
	updated time.Time
	raw     json.RawMessage // set for fixture issues; else generated
}

type fakeToken struct {
	jql    string
	offset int
}

func newFakeJira(t testing.TB) (*fakeJira, *httptest.Server) {
	f := &fakeJira{t: t, loc: time.UTC, issues: map[string]*fakeIssue{}, tokens: map[string]fakeToken{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// add creates n issues with ids from first, the i-th updated at at(i).
func (f *fakeJira) add(first, n int, at func(i int) time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		id := first + i
		f.issues[strconv.Itoa(id)] = &fakeIssue{id: id, updated: at(i)}
	}
	f.dirty = true
}

// expireTokens makes every token issued so far invalid, as 7 days do.
func (f *fakeJira) expireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

// touch sets an issue's update time (an edit).
func (f *fakeJira) touch(id int, at time.Time) {
	f.issues[strconv.Itoa(id)].updated = at
	f.dirty = true
}

var searchJQL = regexp.MustCompile(`^\((.*)\) AND updated >= "(\d{4}-\d\d-\d\d \d\d:\d\d)" ORDER BY updated ASC, key ASC$`)

var berlin = mustLoad("Europe/Berlin")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func (f *fakeJira) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if len(f.script) > 0 {
		step := f.script[0]
		f.script = f.script[1:]
		if step(w, r) {
			return
		}
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "bot@example.com" || p != "api-token" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errorMessages":["You are not authenticated. Authentication required to perform this operation."],"errors":{}}`)
		return
	}
	switch r.URL.Path {
	case MyselfPath:
		w.Header().Set("X-RateLimit-Limit", "350")
		w.Header().Set("X-RateLimit-Remaining", "349")
		fmt.Fprintf(w, `{"accountId":"557058:bot","emailAddress":"bot@example.com","timeZone":%q}`, f.loc.String())
		return
	case SearchPath:
	default:
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	jql := q.Get("jql")
	f.queries = append(f.queries, jql)
	if jql == "(project = ITS) ORDER BY updated DESC" { // deskrelay connectors check
		w.Header().Set("X-RateLimit-Limit", "350")
		w.Header().Set("X-RateLimit-Remaining", "348")
		fmt.Fprint(w, `{"issues":[],"isLast":true}`)
		return
	}
	m := searchJQL.FindStringSubmatch(jql)
	if m == nil || m[1] != "project = ITS" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		w.Write(fixture.Read(f.t, "testdata", "error_400_jql.json"))
		return
	}
	since, err := time.ParseInLocation("2006-01-02 15:04", m[2], f.loc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	limit, _ := strconv.Atoi(q.Get("maxResults"))
	if limit <= 0 {
		limit = 50
	}
	offset := 0
	if tok := q.Get("nextPageToken"); tok != "" {
		st, ok := f.tokens[tok]
		if !ok || st.jql != jql {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"errorMessages":["The provided next page token is invalid or expired."],"errors":{}}`)
			return
		}
		offset = st.offset
	}
	if f.dirty {
		f.sorted = f.sorted[:0]
		for _, is := range f.issues {
			f.sorted = append(f.sorted, is)
		}
		slices.SortFunc(f.sorted, func(a, b *fakeIssue) int {
			return cmp.Or(a.updated.Compare(b.updated), cmp.Compare(a.id, b.id))
		})
		f.dirty = false
	}
	from, _ := slices.BinarySearchFunc(f.sorted, since, func(is *fakeIssue, t time.Time) int {
		if is.updated.Before(t) {
			return -1
		}
		return 1
	})
	match := f.sorted[from:]
	end := min(len(match), offset+limit)
	page := match[min(offset, end):end]
	out := searchPage{Issues: make([]json.RawMessage, 0, len(page))}
	for _, is := range page {
		out.Issues = append(out.Issues, f.render(is))
	}
	last := end >= len(match)
	out.IsLast = &last
	if !last {
		f.nextTok++
		tok := fmt.Sprintf("tok-%d", f.nextTok)
		f.tokens[tok] = fakeToken{jql: jql, offset: end}
		out.NextPageToken = tok
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("X-RateLimit-Limit", "350")
	w.Header().Set("X-RateLimit-Remaining", "348")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		f.t.Errorf("fake jira: %v", err)
	}
	f.pages++
	if f.afterPage != nil {
		f.afterPage(f, f.pages)
	}
}

// render returns an issue in the shape of search_jql_page1.json (API v3,
// ADF description), times in +0200 as Jira renders them for a Berlin user.
func (f *fakeJira) render(is *fakeIssue) json.RawMessage {
	if is.raw != nil {
		return is.raw
	}
	up := is.updated.In(berlin).Format("2006-01-02T15:04:05.000-0700")
	return json.RawMessage(fmt.Sprintf(`{"expand":"renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations","id":"%d","self":"https://example.atlassian.net/rest/api/3/issue/%d","key":"ITS-%d","fields":{`+
		`"summary":"Generated issue %d","issuetype":{"id":"10012","name":"Service request","subtask":false},"created":%q,"updated":%q,`+
		`"description":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Generated issue %d."}]}]},`+
		`"reporter":{"accountId":"qm:gen-%d","emailAddress":"user%d@example.com","displayName":"User %d","active":true,"timeZone":"Europe/Berlin","accountType":"customer"},`+
		`"priority":{"id":"3","name":"Medium"},"status":{"id":"10003","name":"Waiting for support","statusCategory":{"id":2,"key":"new","name":"To Do"}},"labels":[],"assignee":null,`+
		`"customfield_10004":{"value":"Minor / Localized","id":"10023"},"customfield_10045":{"value":"Medium","id":"10032"},`+
		`"customfield_10010":{"requestType":{"id":"28","name":"Get IT help"}}}}`,
		is.id, is.id, is.id, is.id, up, up, is.id, is.id%97, is.id%97, is.id%97))
}

func (f *fakeJira) stats() (requests int, queries []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, slices.Clone(f.queries)
}

// pollSource is a polled source against base, with retry waits in
// milliseconds.
func pollSource(t testing.TB, base string, opts map[string]any) connectors.Source {
	t.Helper()
	o := siteOptions()
	o["jql"] = "project = ITS"
	for k, v := range opts {
		o[k] = v
	}
	src := source(t, o, hmacAuth())
	src.Config.Poll = config.Poll{Enabled: true, Interval: time.Minute, PageSize: 100, Start: "2024-05-13T00:00:00Z", LeaseTTL: 30 * time.Second}
	src.Config.API = config.API{
		BaseURL: base, Timeout: 2 * time.Second, MaxRetries: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		Auth: config.APIAuth{Type: "basic", Username: "bot@example.com", Password: config.NewSecret("api-token")},
	}
	src.Metrics = connectors.NewPollMetrics(nil)
	src.Log = zaptest.NewLogger(t)
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

// base is the reference time of the data set (SOURCES.md).
var base = time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)
