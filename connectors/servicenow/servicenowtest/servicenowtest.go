// Package servicenowtest runs a fake ServiceNow instance for tests: the
// Table API and sys_user reads as ServiceNow documents them, serving
// records the test adds, with switches for rate limiting, ACL-hidden rows
// and any other answer. It is for tests only.
package servicenowtest

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/internal/fixture"
)

// Server is a ServiceNow instance as the Table API docs describe it (see
// testdata/SOURCES.md): basic auth, GET /api/now/table/<table> with
// sysparm_query (conditions joined by ^, ^OR binding to the condition
// before it, ORDERBY), sysparm_limit/offset, sysparm_fields,
// sysparm_exclude_reference_link, a Link header (first, prev, next, last,
// comma-joined, omitted on a single page) and X-Total-Count; GET
// /api/now/table/sys_user/<sys_id>; the documented error bodies; and an
// optional rate-limit rule answering 429 with Retry-After and the
// X-RateLimit-* headers.
type Server struct {
	t   testing.TB
	srv *httptest.Server
	dir string
	// User and Pass are the basic-auth credentials it accepts.
	User, Pass string

	mu      sync.Mutex
	records []map[string]any
	users   map[string]map[string]any
	hidden  map[string]bool // sys_ids the ACLs hide: counted by the limit, not returned
	queries []string        // every sysparm_query asked for, in order

	// Counters: every request, table list requests (rate-limited ones
	// included), sys_user reads, and 429 answers.
	All, Table, UserReads, Limited atomic.Int64

	// Set these before the first request. RateEvery answers every
	// RateEvery-th table request with 429 (0: never), with Retry-After
	// RetryAfter(n) ("0" when nil) and X-RateLimit-Reset Reset() (now when
	// nil).
	RateEvery  int64
	RetryAfter func(n int64) string
	Reset      func() time.Time
	// Intercept, when set, may answer request n itself (returns true).
	Intercept func(w http.ResponseWriter, r *http.Request, n int64) bool
}

// New starts a fake instance accepting basic auth deskrelay/s3cret. Its
// error answers are the fixtures in dir (the connector's testdata). It is
// closed when the test ends.
func New(t testing.TB, dir string) *Server {
	t.Helper()
	f := &Server{t: t, dir: dir, User: "deskrelay", Pass: "s3cret", users: map[string]map[string]any{}, hidden: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the instance's base URL, for api.base_url.
func (f *Server) URL() string { return f.srv.URL }

// SetUser makes a sys_user record readable.
func (f *Server) SetUser(id string, rec map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = rec
}

// Hide makes the ACLs hide the record with sys_id id.
func (f *Server) Hide(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden[id] = true
}

// Queries returns every sysparm_query asked for so far, in order.
func (f *Server) Queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queries...)
}

// Add adds records to the incident table.
func (f *Server) Add(recs ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, recs...)
}

// Update sets fields of the record with sys_id id.
func (f *Server) Update(id string, kv map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.records {
		if r["sys_id"] == id {
			for k, v := range kv {
				r[k] = v
			}
			return
		}
	}
	f.t.Errorf("fake: no record %s to update", id)
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	n := f.All.Add(1)
	if f.Intercept != nil && f.Intercept(w, r, n) {
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != f.User || p != f.Pass {
		f.serveFixture(w, "error_401")
		return
	}
	if r.Method != http.MethodGet || r.Header.Get("Accept") != "application/json" {
		f.serveFixture(w, "error_400_bad_request_body")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/now/table/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if id, ok := strings.CutPrefix(rest, "sys_user/"); ok {
		f.UserReads.Add(1)
		f.mu.Lock()
		u, found := f.users[id]
		f.mu.Unlock()
		if !found {
			f.serveFixture(w, "error_404_no_record")
			return
		}
		WriteJSON(w, http.StatusOK, nil, map[string]any{"result": project(u, r.URL.Query())})
		return
	}
	if rest == "sys_user" { // a list read, as connectors check makes
		f.mu.Lock()
		var out []any
		for _, u := range f.users {
			out = append(out, project(u, r.URL.Query()))
			break
		}
		f.mu.Unlock()
		WriteJSON(w, http.StatusOK, nil, map[string]any{"result": append([]any{}, out...)})
		return
	}
	if rest != "incident" {
		f.serveFixture(w, "error_400_invalid_table")
		return
	}
	k := f.Table.Add(1)
	if f.RateEvery > 0 && k%f.RateEvery == 0 {
		ra := "0"
		if f.RetryAfter != nil {
			ra = f.RetryAfter(k)
		}
		reset := time.Now()
		if f.Reset != nil {
			reset = f.Reset()
		}
		f.TooMany(w, ra, reset)
		return
	}
	f.list(w, r)
}

// TooMany answers as a matching rate-limit rule does over its limit.
func (f *Server) TooMany(w http.ResponseWriter, retryAfter string, reset time.Time) {
	f.Limited.Add(1)
	h := http.Header{}
	h.Set("Retry-After", retryAfter)
	h.Set("X-RateLimit-Limit", "500")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Rule", "df1280feb38490fe0214f8f66b1d92cd")
	WriteJSON(w, http.StatusTooManyRequests, h, map[string]any{
		"error":  map[string]any{"message": "Rate limit exceeded", "detail": "Rate limit of 500 requests per hour for Table API exceeded"},
		"status": "failure",
	})
}

func (f *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := q.Get("sysparm_query")
	f.mu.Lock()
	f.queries = append(f.queries, query)
	groups, order := parseQuery(f.t, query)
	var match []map[string]any
	for _, rec := range f.records {
		if matches(rec, groups) {
			match = append(match, rec)
		}
	}
	slices.SortStableFunc(match, func(a, b map[string]any) int {
		for _, o := range order {
			if c := cmp.Compare(value(a, o), value(b, o)); c != 0 {
				return c
			}
		}
		return 0
	})
	limit, offset := atoiOr(q.Get("sysparm_limit"), 10000), atoiOr(q.Get("sysparm_offset"), 0)
	total := len(match)
	var out []any
	// The limit is applied before ACL evaluation: hidden rows take a
	// place in the page but are not returned.
	for _, rec := range match[min(offset, total):min(offset+limit, total)] {
		if f.hidden[value(rec, "sys_id")] {
			continue
		}
		out = append(out, project(rec, q))
	}
	f.mu.Unlock()
	h := http.Header{}
	if q.Get("sysparm_no_count") != "true" {
		h.Set("X-Total-Count", strconv.Itoa(total))
	}
	if total > limit && q.Get("sysparm_suppress_pagination_header") != "true" {
		h.Set("Link", f.link(r, offset, limit, total))
	}
	if out == nil {
		out = []any{} // an empty list, never null
	}
	WriteJSON(w, http.StatusOK, h, map[string]any{"result": out})
}

// link builds the Table API's Link header: first, prev and next when
// they exist, last; entries joined by "," without spaces.
func (f *Server) link(r *http.Request, offset, limit, total int) string {
	at := func(off int, rel string) string {
		q := r.URL.Query()
		q.Set("sysparm_offset", strconv.Itoa(off))
		return "<" + f.srv.URL + r.URL.Path + "?" + q.Encode() + `>;rel="` + rel + `"`
	}
	parts := []string{at(0, "first")}
	if offset > 0 {
		parts = append(parts, at(max(0, offset-limit), "prev"))
	}
	if offset+limit < total {
		parts = append(parts, at(offset+limit, "next"))
	}
	parts = append(parts, at((total-1)/limit*limit, "last"))
	return strings.Join(parts, ",")
}

type cond struct{ field, op, val string }

// parseQuery reads an encoded query: conditions joined by ^, a ^OR
// condition joining the group of the one before it, ORDERBY clauses.
func parseQuery(t testing.TB, q string) (groups [][]cond, order []string) {
	if q == "" {
		return nil, nil
	}
	for tok := range strings.SplitSeq(q, "^") {
		switch {
		case strings.HasPrefix(tok, "ORDERBYDESC"):
			t.Errorf("fake: ORDERBYDESC is not used by the connector: %q", q)
		case strings.HasPrefix(tok, "ORDERBY"):
			order = append(order, strings.TrimPrefix(tok, "ORDERBY"))
		case strings.HasPrefix(tok, "OR") && len(groups) > 0:
			groups[len(groups)-1] = append(groups[len(groups)-1], parseCond(t, strings.TrimPrefix(tok, "OR")))
		default:
			groups = append(groups, []cond{parseCond(t, tok)})
		}
	}
	return groups, order
}

func parseCond(t testing.TB, s string) cond {
	i := strings.IndexAny(s, "<>=!")
	if i <= 0 {
		t.Errorf("fake: cannot parse condition %q", s)
		return cond{}
	}
	op := s[i : i+1]
	if i+1 < len(s) && s[i+1] == '=' {
		op += "="
	}
	return cond{field: s[:i], op: op, val: s[i+len(op):]}
}

func matches(rec map[string]any, groups [][]cond) bool {
	for _, g := range groups {
		ok := false
		for _, c := range g {
			v := value(rec, c.field)
			switch c.op {
			case "=":
				ok = v == c.val
			case "!=":
				ok = v != c.val
			case ">":
				ok = v > c.val
			case ">=":
				ok = v >= c.val
			case "<":
				ok = v < c.val
			case "<=":
				ok = v <= c.val
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// value is a field's database value: the string, or a reference's value.
func value(rec map[string]any, field string) string {
	switch v := rec[field].(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v["value"].(string)
		return s
	}
	return ""
}

// project keeps sysparm_fields and drops reference links when asked.
func project(rec map[string]any, q url.Values) map[string]any {
	out := map[string]any{}
	keep := func(string) bool { return true }
	if fs := q.Get("sysparm_fields"); fs != "" {
		set := strings.Split(fs, ",")
		keep = func(k string) bool { return slices.Contains(set, k) }
	}
	for k, v := range rec {
		if !keep(k) {
			continue
		}
		if ref, ok := v.(map[string]any); ok && ref["link"] != nil && q.Get("sysparm_exclude_reference_link") == "true" {
			v = ref["value"]
		}
		out[k] = v
	}
	return out
}

func atoiOr(s string, d int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return d
}

// WriteJSON answers with v as JSON and ServiceNow's content type.
func WriteJSON(w http.ResponseWriter, code int, h http.Header, v any) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serveFixture answers with <dir>/<name>.json and the matching .headers
// file (status line and headers, read with http.ReadResponse as the
// fixtures' SOURCES.md says); error_404_no_record uses error_404.headers.
func (f *Server) serveFixture(w http.ResponseWriter, name string) {
	body := ReadFile(f.t, f.dir, name+".json")
	hname := name + ".headers"
	if _, err := os.Stat(filepath.Join(f.dir, hname)); err != nil {
		p := strings.SplitN(name, "_", 3) // error_404_no_record → error_404
		hname = p[0] + "_" + p[1] + ".headers"
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(ReadFile(f.t, f.dir, hname)), bytes.NewReader(body))), nil)
	if err != nil {
		f.t.Errorf("fixture %s: %v", hname, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
}

// ReadFile reads dir/name or fails the test.
func ReadFile(t testing.TB, dir, name string) []byte {
	t.Helper()
	return fixture.Read(t, dir, name)
}

// Records returns the records of a Table API list fixture dir/name.
func Records(t testing.TB, dir, name string) []map[string]any {
	t.Helper()
	var page struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal(ReadFile(t, dir, name), &page); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return page.Result
}

// Generate makes n incidents in the Table API shape, perSecond of them
// sharing each sys_updated_on second from start, with random sys_ids (so
// that sys_id order is not time order).
func Generate(n, perSecond int, start time.Time, seed uint64) []map[string]any {
	rng := rand.New(rand.NewPCG(seed, 1))
	channels := []string{"email", "phone", "self-service", "walk-in", "chat"}
	out := make([]map[string]any, n)
	for i := range out {
		id := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		caller := fmt.Sprintf("%032x", i%50+1)
		at := start.Add(time.Duration(i/perSecond) * time.Second).Format("2006-01-02 15:04:05")
		out[i] = map[string]any{
			"sys_id":            id,
			"number":            fmt.Sprintf("INC%07d", 20000+i),
			"short_description": fmt.Sprintf("generated incident %d", i),
			"description":       "",
			"caller_id":         map[string]any{"link": "https://example.service-now.com/api/now/table/sys_user/" + caller, "value": caller},
			"contact_type":      channels[i%len(channels)],
			"impact":            strconv.Itoa(i%3 + 1),
			"urgency":           strconv.Itoa((i/3)%3 + 1),
			"priority":          strconv.Itoa(i%5 + 1),
			"state":             "1",
			"category":          "software",
			"assignment_group":  "",
			"cmdb_ci":           "",
			"opened_at":         at,
			"sys_updated_on":    at,
			"sys_mod_count":     "0",
		}
	}
	return out
}
