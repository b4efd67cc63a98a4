package servicenow

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
)

// fakeSN is a ServiceNow instance as the Table API docs describe it (see
// testdata/SOURCES.md): basic auth, GET /api/now/table/<table> with
// sysparm_query (conditions joined by ^, ^OR binding to the condition
// before it, ORDERBY), sysparm_limit/offset, sysparm_fields,
// sysparm_exclude_reference_link, a Link header (first, prev, next, last,
// comma-joined, omitted on a single page) and X-Total-Count; GET
// /api/now/table/sys_user/<sys_id>; the documented error bodies; and an
// optional rate-limit rule answering 429 with Retry-After and the
// X-RateLimit-* headers.
type fakeSN struct {
	t    testing.TB
	srv  *httptest.Server
	user string
	pass string

	mu      sync.Mutex
	records []map[string]any
	users   map[string]map[string]any
	hidden  map[string]bool // sys_ids the ACLs hide: counted by the limit, not returned

	all       atomic.Int64 // every request
	table     atomic.Int64 // table list requests, including rate-limited ones
	userReads atomic.Int64
	limited   atomic.Int64 // 429 answers

	// rateEvery answers every rateEvery-th table request with 429 (0:
	// never), with Retry-After retryAfter(n) and X-RateLimit-Reset
	// reset().
	rateEvery  int64
	retryAfter func(n int64) string
	reset      func() time.Time
	// intercept, when set, may answer a request itself (returns true).
	intercept func(w http.ResponseWriter, r *http.Request, n int64) bool
	// queries records every sysparm_query asked for, in order.
	queries []string
}

func newFake(t testing.TB) *fakeSN {
	t.Helper()
	f := &fakeSN{t: t, user: "deskrelay", pass: "s3cret", users: map[string]map[string]any{}, hidden: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSN) add(recs ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, recs...)
}

// update sets fields of the record with sys_id id.
func (f *fakeSN) update(id string, kv map[string]any) {
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

func (f *fakeSN) serve(w http.ResponseWriter, r *http.Request) {
	n := f.all.Add(1)
	if f.intercept != nil && f.intercept(w, r, n) {
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
		serveFixture(f.t, w, "error_401")
		return
	}
	if r.Method != http.MethodGet || r.Header.Get("Accept") != "application/json" {
		serveFixture(f.t, w, "error_400_bad_request_body")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/now/table/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if id, ok := strings.CutPrefix(rest, "sys_user/"); ok {
		f.userReads.Add(1)
		f.mu.Lock()
		u, found := f.users[id]
		f.mu.Unlock()
		if !found {
			serveFixture(f.t, w, "error_404_no_record")
			return
		}
		writeJSON(w, http.StatusOK, nil, map[string]any{"result": project(u, r.URL.Query())})
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
		writeJSON(w, http.StatusOK, nil, map[string]any{"result": append([]any{}, out...)})
		return
	}
	if rest != "incident" {
		serveFixture(f.t, w, "error_400_invalid_table")
		return
	}
	k := f.table.Add(1)
	if f.rateEvery > 0 && k%f.rateEvery == 0 {
		ra := "0"
		if f.retryAfter != nil {
			ra = f.retryAfter(k)
		}
		reset := time.Now()
		if f.reset != nil {
			reset = f.reset()
		}
		f.tooMany(w, ra, reset)
		return
	}
	f.list(w, r)
}

// tooMany answers as a matching rate-limit rule does over its limit.
func (f *fakeSN) tooMany(w http.ResponseWriter, retryAfter string, reset time.Time) {
	f.limited.Add(1)
	h := http.Header{}
	h.Set("Retry-After", retryAfter)
	h.Set("X-RateLimit-Limit", "500")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Rule", "df1280feb38490fe0214f8f66b1d92cd")
	writeJSON(w, http.StatusTooManyRequests, h, map[string]any{
		"error":  map[string]any{"message": "Rate limit exceeded", "detail": "Rate limit of 500 requests per hour for Table API exceeded"},
		"status": "failure",
	})
}

func (f *fakeSN) list(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, http.StatusOK, h, map[string]any{"result": out})
}

// link builds the Table API's Link header: first, prev and next when
// they exist, last; entries joined by "," without spaces.
func (f *fakeSN) link(r *http.Request, offset, limit, total int) string {
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

func writeJSON(w http.ResponseWriter, code int, h http.Header, v any) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serveFixture answers with testdata/<name>.json and the matching
// .headers file (status line and headers, read with http.ReadResponse as
// testdata/SOURCES.md says).
func serveFixture(t testing.TB, w http.ResponseWriter, name string) {
	body := readFile(t, name+".json")
	hname := name + ".headers"
	if _, err := os.Stat(filepath.Join("testdata", hname)); err != nil {
		hname = strings.SplitN(name, "_", 3)[0] + "_" + strings.SplitN(name, "_", 3)[1] + ".headers" // error_404_no_record → error_404
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(readFile(t, hname)), bytes.NewReader(body))), nil)
	if err != nil {
		t.Errorf("fixture %s: %v", hname, err)
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

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureRecords returns the records of a Table API list fixture.
func fixtureRecords(t testing.TB, name string) []map[string]any {
	t.Helper()
	var page struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal(readFile(t, name), &page); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return page.Result
}

// genRecords makes n incidents in the Table API shape, perSecond of them
// sharing each sys_updated_on second from start, with random sys_ids (so
// that sys_id order is not time order).
func genRecords(n, perSecond int, start time.Time, seed uint64) []map[string]any {
	rng := rand.New(rand.NewPCG(seed, 1))
	channels := []string{"email", "phone", "self-service", "walk-in", "chat"}
	out := make([]map[string]any, n)
	for i := range out {
		id := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		caller := fmt.Sprintf("%032x", i%50+1)
		at := start.Add(time.Duration(i/perSecond) * time.Second).Format(TimeLayout)
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
