package servicenow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// businessRuleFields maps the nested caller and group objects of the
// example Business Rule payload (outbound_business_rule.json).
var businessRuleFields = map[string]any{
	"fields": map[string]any{
		"caller.id":    "caller.sys_id",
		"caller.email": "caller.email",
		"caller.name":  "caller.name",
	},
}

func buildWebhook(t testing.TB, opts map[string]any) *webhook {
	t.Helper()
	wh, err := newWebhook(source(t, "", opts))
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	return wh.(*webhook)
}

func goldenJSON(t *testing.T, tk ticket.Ticket) []byte {
	t.Helper()
	tk.Source = "snow"
	b, err := json.MarshalIndent(tk, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestNormalizeGolden normalises every record fixture as a webhook body and
// compares the ticket with its golden file.
func TestNormalizeGolden(t *testing.T) {
	type tc struct {
		name string
		opts map[string]any
		body []byte
	}
	cases := []tc{{"outbound_business_rule", businessRuleFields, readFile(t, "outbound_business_rule.json")}}
	for _, f := range []string{"incident_list_page1", "incident_list_page2", "incident_list_display_all"} {
		for i, rec := range gjson.ParseBytes(readFile(t, f+".json")).Get("result").Array() {
			cases = append(cases, tc{fmt.Sprintf("%s.%d", f, i), nil, []byte(rec.Raw)})
		}
	}
	// A Table API single-record answer, as a Flow Designer step may
	// forward it.
	cases = append(cases, tc{"incident_list_page1.0.wrapped", nil,
		[]byte(`{"result":` + gjson.GetBytes(readFile(t, "incident_list_page1.json"), "result.0").Raw + `}`)})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk, err := buildWebhook(t, c.opts).Normalize(t.Context(), nil, c.body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			tk.Source = "snow"
			if err := tk.Validate(); err != nil {
				t.Errorf("normalised ticket is invalid: %v", err)
			}
			if !bytes.Equal(tk.Raw, c.body) {
				t.Errorf("Raw is not the body as received")
			}
			checkGolden(t, c.name, goldenJSON(t, tk))
		})
	}
}

// TestDisplayAllMatchesDatabaseValues: sysparm_display_value=all gives
// the same ticket as database values, names aside (display times are in
// the user's zone and must not be read).
func TestDisplayAllMatchesDatabaseValues(t *testing.T) {
	wh := buildWebhook(t, nil)
	plain := gjson.GetBytes(readFile(t, "incident_list_page1.json"), "result.0").Raw
	all := gjson.GetBytes(readFile(t, "incident_list_display_all.json"), "result.0").Raw
	a, err := wh.Normalize(t.Context(), nil, []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	b, err := wh.Normalize(t.Context(), nil, []byte(all))
	if err != nil {
		t.Fatal(err)
	}
	if !a.UpdatedAt.Equal(b.UpdatedAt) || !a.OpenedAt.Equal(b.OpenedAt) || a.ID != b.ID || a.Caller.ID != b.Caller.ID ||
		a.Impact != b.Impact || a.Urgency != b.Urgency || a.Priority != b.Priority || a.Channel != b.Channel || a.State != b.State {
		t.Errorf("display_value=all record normalises to\n%+v\nwant as the database-value record\n%+v", b, a)
	}
	if want := time.Date(2024, 5, 13, 10, 2, 31, 0, time.UTC); !b.UpdatedAt.Equal(want) {
		t.Errorf("UpdatedAt = %s, want %s (the UTC value, not the Europe/Berlin display value)", b.UpdatedAt, want)
	}
}

func TestNormalizeCodes(t *testing.T) {
	rec := func(kv string) []byte {
		return []byte(`{"sys_id":"1","short_description":"x",` + kv + `}`)
	}
	overrides := map[string]any{"codes": map[string]any{
		"channel":  map[string]any{"web": "portal", "email": "chat"},
		"impact":   map[string]any{"4": 3},
		"priority": map[string]any{"6": "5"},
		"state":    map[string]any{"-5": "pending", "1": "open"},
	}}
	for _, tt := range []struct {
		name  string
		opts  map[string]any
		body  []byte
		check func(ticket.Ticket) bool
	}{
		{"self-service is the portal", nil, rec(`"contact_type":"self-service"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelPortal }},
		{"walk-in is walk_in", nil, rec(`"contact_type":"walk-in"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelWalkIn }},
		{"an unknown channel is other", nil, rec(`"contact_type":"carrier pigeon"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelOther }},
		{"an empty channel stays unset", nil, rec(`"contact_type":""`), func(t ticket.Ticket) bool { return t.Channel == "" }},
		{"a display value's leading code is read", nil, rec(`"impact":"2 - Medium","urgency":"1 - High"`), func(t ticket.Ticket) bool { return t.Impact == 2 && t.Urgency == 1 }},
		{"an unknown impact is not given", nil, rec(`"impact":"9"`), func(t ticket.Ticket) bool { return t.Impact == 0 }},
		{"states become words", nil, rec(`"state":"6"`), func(t ticket.Ticket) bool { return t.State == "resolved" }},
		{"an unknown state is kept as sent", nil, rec(`"state":"-5"`), func(t ticket.Ticket) bool { return t.State == "-5" }},
		{"an override adds a channel", overrides, rec(`"contact_type":"Web"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelPortal }},
		{"an override replaces a default", overrides, rec(`"contact_type":"email"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelChat }},
		{"an override keeps the other defaults", overrides, rec(`"contact_type":"phone"`), func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelPhone }},
		{"an override adds an impact", overrides, rec(`"impact":"4"`), func(t ticket.Ticket) bool { return t.Impact == 3 }},
		{"an override adds a priority", overrides, rec(`"priority":"6"`), func(t ticket.Ticket) bool { return t.Priority == 5 }},
		{"an override adds a state", overrides, rec(`"state":"-5"`), func(t ticket.Ticket) bool { return t.State == "pending" }},
		{"an override renames a state", overrides, rec(`"state":"1"`), func(t ticket.Ticket) bool { return t.State == "open" }},
		{"a missing short description takes the number", nil, []byte(`{"sys_id":"1","number":"INC1","short_description":null}`), func(t ticket.Ticket) bool { return t.Title == "INC1" }},
		{"JSON nulls are absent fields", nil, rec(`"assignment_group":null,"cmdb_ci":null,"caller_id":null`), func(t ticket.Ticket) bool { return t.AssignmentGroup == "" && t.Caller.ID == "" }},
		{"an RFC 3339 time is read as such", nil, rec(`"sys_updated_on":"2024-05-13T12:15:42+02:00"`), func(t ticket.Ticket) bool {
			return t.UpdatedAt.Equal(time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC))
		}},
		{"a dot-walked key is read", nil, rec(`"caller_id":"abc","caller_id.email":"a@example.com"`), func(t ticket.Ticket) bool { return t.Caller.Email == "a@example.com" && t.Caller.ID == "abc" }},
		{"a reference's display value names the group", nil, rec(`"assignment_group":{"display_value":"Network","value":"f57c"}`), func(t ticket.Ticket) bool { return t.AssignmentGroup == "Network" }},
		{"a field switched off is not read", map[string]any{"fields": map[string]any{"caller.name": ""}}, rec(`"caller_id.name":"Aisha Doer"`), func(t ticket.Ticket) bool { return t.Caller.Name == "" }},
		{"a list of fields takes the first present", map[string]any{"fields": map[string]any{"caller.id": []any{"requested_for", "caller_id"}}}, rec(`"caller_id":"c1"`), func(t ticket.Ticket) bool { return t.Caller.ID == "c1" }},
		{"tags are split on commas", map[string]any{"fields": map[string]any{"tags": "sys_tags"}}, rec(`"sys_tags":"vip, printer"`), func(t ticket.Ticket) bool { return len(t.Tags) == 2 && t.Tags[1] == "printer" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := buildWebhook(t, tt.opts).Normalize(t.Context(), nil, tt.body)
			if err != nil {
				t.Fatalf("Normalize(%s): %v", tt.body, err)
			}
			if !tt.check(tk) {
				t.Errorf("Normalize(%s) = %+v", tt.body, tk)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want string
	}{
		{"a broken body", `{"sys_id":`, "body is not valid JSON"},
		{"an array", `[{"sys_id":"1"}]`, "body must be a JSON object: one ServiceNow record"},
		{"no sys_id", `{"short_description":"x"}`, `id: record field "sys_id" is missing or empty`},
		{"neither title nor number", `{"sys_id":"1"}`, `title: record fields "short_description" and number are missing or empty`},
		{"a display time", `{"sys_id":"1","short_description":"x","sys_updated_on":"13.05.2024 12:15"}`, `updated_at: record field "sys_updated_on": "13.05.2024 12:15" is not a ServiceNow date-time; send the database value`},
		{"an object without value", `{"sys_id":"1","short_description":"x","impact":{"display_value":"High"}}`, `impact: record field "impact" is an object without value or sys_id`},
		{"a list where a value belongs", `{"sys_id":["1"],"short_description":"x"}`, `id: record field "sys_id" is a list, not a value`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildWebhook(t, nil).Normalize(t.Context(), nil, []byte(tt.body))
			var ie *connectors.InputError
			if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Normalize(%s) = %v, want an input error starting %q", tt.body, err, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"a bad table name", map[string]any{"table": "Incident; DROP"}, []string{`connectors.snow.table: "Incident; DROP" is not a table name such as incident or sc_req_item`}},
		{"an unknown ticket field", map[string]any{"fields": map[string]any{"titel": "short_description"}}, []string{`connectors.snow.fields.titel: unknown ticket field "titel"`}},
		{"a bad record field", map[string]any{"fields": map[string]any{"title": "short description"}}, []string{`connectors.snow.fields.title: "short description" is not a record field name`}},
		{"id switched off", map[string]any{"fields": map[string]any{"id": ""}}, []string{`connectors.snow.fields.id: cannot be switched off`}},
		{"an unknown code table", map[string]any{"codes": map[string]any{"severity": map[string]any{"1": "1"}}}, []string{`connectors.snow.codes.severity: unknown code table "severity"; tables are channel, impact, urgency, priority, state`}},
		{"a bad channel target", map[string]any{"codes": map[string]any{"channel": map[string]any{"web": "website"}}}, []string{`connectors.snow.codes.channel.web: "website" is not a channel`}},
		{"a bad impact target", map[string]any{"codes": map[string]any{"impact": map[string]any{"4": 0}}}, []string{`connectors.snow.codes.impact.4: "0" is not an impact; use 1 (high) to 3 (low)`}},
		{"display values only", map[string]any{"display_value": "true"}, []string{`connectors.snow.display_value: true returns display values only`}},
		{"a query that reorders", map[string]any{"query": "active=true^ORDERBYDESCnumber"}, []string{`connectors.snow.query: must be a plain encoded query`}},
		{"a zero cache ttl", map[string]any{"caller_cache_ttl": "0s"}, []string{`connectors.snow.caller_cache_ttl: must be greater than 0, got 0s`}},
		{"a non-duration settle", map[string]any{"settle": "soon"}, []string{`connectors.snow.settle: `}},
		{"a settle below a second", map[string]any{"settle": "10ms"}, []string{`connectors.snow.settle: must be between 1s and 1h, got 10ms`}},
		{"a lookup without api", map[string]any{"lookup_caller_email": true}, []string{`connectors.snow.api.base_url: is required when lookup_caller_email is true`}},
		{"every problem at once", map[string]any{"table": "X", "display_value": "maybe"}, []string{`connectors.snow.display_value: "maybe" is not allowed`, `connectors.snow.table: "X" is not a table name`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newWebhook(source(t, "", tt.opts))
			errs := config.AsErrors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("newWebhook error =\n%v\nwant %d errors:\n%s", err, len(tt.want), strings.Join(tt.want, "\n"))
			}
			errs.Sort()
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
				}
			}
		})
	}
}

// recordingSink stores tickets in memory.
type recordingSink struct {
	mu sync.Mutex
	ts []ticket.Ticket
}

func (s *recordingSink) Ingest(_ context.Context, t ticket.Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ts = append(s.ts, t)
	return nil
}

// signatureVector is outbound_business_rule.signature.json.
type signatureVector struct {
	Secret    string            `json:"secret"`
	Timestamp string            `json:"timestamp"`
	Headers   map[string]string `json:"expected_headers"`
}

func readVector(t testing.TB) signatureVector {
	var v signatureVector
	if err := json.Unmarshal(readFile(t, "outbound_business_rule.signature.json"), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// fixtureAuth is the example scheme of outbound_business_rule.*: base64
// HMAC-SHA256 of timestamp + "." + body. The fixture was signed on
// 2024-05-13, so its test widens the replay window to reach that day:
// connectors.NewAuth takes no clock.
func fixtureAuth(secret string, window time.Duration) config.Auth {
	return config.Auth{
		Type: "hmac", Secret: config.NewSecret(secret), Encoding: "base64", Prefix: "v1=",
		Header: "X-Deskrelay-Signature", TimestampHeader: "X-Deskrelay-Timestamp", ReplayWindow: window,
	}
}

// TestWebhookThroughIngress posts the Business Rule fixture, with its
// recorded headers, through the real ingress: the signature is checked
// over the raw bytes before the body is decoded.
func TestWebhookThroughIngress(t *testing.T) {
	vec := readVector(t)
	body := readFile(t, "outbound_business_rule.json")
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(readFile(t, "outbound_business_rule.headers")))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Date(2024, 5, 13, 10, 15, 43, 0, time.UTC)
	wide := time.Since(signedAt) + time.Hour
	tampered := bytes.Replace(body, []byte(`"impact":"3"`), []byte(`"impact":"1"`), 1)
	now := time.Now()
	for _, tt := range []struct {
		name   string
		auth   config.Auth
		body   []byte
		header func() http.Header
		code   int
		errSub string
	}{
		{"the fixture's known-good signature is accepted", fixtureAuth(vec.Secret, wide), body, func() http.Header { return http.Header(hdr).Clone() }, http.StatusAccepted, ""},
		{"a tampered body is refused", fixtureAuth(vec.Secret, wide), tampered, func() http.Header { return http.Header(hdr).Clone() }, http.StatusUnauthorized, "signature does not match the body"},
		{"a tampered timestamp is refused", fixtureAuth(vec.Secret, wide), body, func() http.Header {
			h := http.Header(hdr).Clone()
			h.Set("X-Deskrelay-Timestamp", "1715595344")
			return h
		}, http.StatusUnauthorized, "signature does not match the body"},
		{"the fixture is a replay under the default window", fixtureAuth(vec.Secret, 0), body, func() http.Header { return http.Header(hdr).Clone() }, http.StatusUnauthorized, "outside the 5m0s replay window"},
		{"a wrong secret is refused", fixtureAuth("another-secret", wide), body, func() http.Header { return http.Header(hdr).Clone() }, http.StatusUnauthorized, "signature does not match"},
		{"a missing signature is refused", fixtureAuth(vec.Secret, wide), body, func() http.Header {
			h := http.Header(hdr).Clone()
			h.Del("X-Deskrelay-Signature")
			return h
		}, http.StatusUnauthorized, "missing X-Deskrelay-Signature header"},
		{"a fresh signature of ours is accepted", fixtureAuth(vec.Secret, 0), body, func() http.Header {
			a, err := connectors.NewAuth("a", fixtureAuth(vec.Secret, 0))
			if err != nil {
				t.Fatal(err)
			}
			h := a.Sign(body, now)
			h.Set("Content-Type", "application/json")
			return h
		}, http.StatusAccepted, ""},
		{"a bearer token is accepted", config.Auth{Type: "bearer", Token: config.NewSecret("t0k")}, body, func() http.Header {
			return http.Header{"Authorization": {"Bearer t0k"}, "Content-Type": {"application/json"}}
		}, http.StatusAccepted, ""},
		{"a signed body that is no record is a 400", fixtureAuth(vec.Secret, 0), []byte(`{"short_description":"x"}`), func() http.Header {
			a, _ := connectors.NewAuth("a", fixtureAuth(vec.Secret, 0))
			h := a.Sign([]byte(`{"short_description":"x"}`), now)
			h.Set("Content-Type", "application/json")
			return h
		}, http.StatusBadRequest, `record field \"sys_id\" is missing or empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, "", businessRuleFields, func(c *config.Connector) { c.Auth, c.Poll.Enabled = tt.auth, false })
			built, err := connectors.Build(map[string]config.Connector{"snow": src.Config}, 1<<20, zaptest.NewLogger(t), nil)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			sink := &recordingSink{}
			in := connectors.NewIngress(built.Endpoints, sink, time.Second, 5*time.Second, zaptest.NewLogger(t), connectors.NewMetrics(nil))
			mux := http.NewServeMux()
			mux.Handle("POST /webhooks/{source}", in)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/snow", bytes.NewReader(tt.body))
			req.Header = tt.header()
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.errSub) {
				t.Fatalf("POST = %d %s, want %d containing %q", rec.Code, rec.Body, tt.code, tt.errSub)
			}
			if tt.code != http.StatusAccepted {
				if len(sink.ts) != 0 {
					t.Errorf("a refused request stored %d tickets", len(sink.ts))
				}
				return
			}
			if len(sink.ts) != 1 {
				t.Fatalf("stored %d tickets, want 1", len(sink.ts))
			}
			got := sink.ts[0]
			if got.ID != "59a60bfcb9e24a4ba04482e650fb4efd" || got.Caller.Email != "trina.trier@example.com" || got.Priority != 5 || got.Channel != ticket.ChannelEmail {
				t.Errorf("stored ticket = %+v", got)
			}
			if want := "snow:59a60bfcb9e24a4ba04482e650fb4efd:2024-05-13T10:15:42Z:0"; got.MsgID() != want { // sys_mod_count 0
				t.Errorf("MsgID = %q, want %q", got.MsgID(), want)
			}
		})
	}
}

// TestWebhookCallerLookup fills the email from sys_user, once per caller.
func TestWebhookCallerLookup(t *testing.T) {
	f := newFake(t)
	var u struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(readFile(t, "sys_user_record.json"), &u); err != nil {
		t.Fatal(err)
	}
	f.SetUser("ce0d678358519218dd705c9372750d40", u.Result)
	wh, err := newWebhook(source(t, f.URL(), map[string]any{"lookup_caller_email": true}))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(gjson.GetBytes(readFile(t, "incident_list_page1.json"), "result.0").Raw)
	for i := range 3 {
		tk, err := wh.Normalize(t.Context(), nil, body)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Caller.Email != "aisha.doer@example.com" || tk.Caller.Name != "Aisha Doer" {
			t.Errorf("call %d: caller = %+v, want aisha.doer@example.com", i, tk.Caller)
		}
	}
	if n := f.UserReads.Load(); n != 1 {
		t.Errorf("sys_user read %d times for 3 tickets of one caller, want 1 (cached)", n)
	}
	// An unknown caller (404) is stored without email, and not asked again.
	other := bytes.Replace(body, []byte("ce0d678358519218dd705c9372750d40"), []byte("00000000000000000000000000000001"), -1)
	for range 2 {
		tk, err := wh.Normalize(t.Context(), nil, other)
		if err != nil || tk.Caller.Email != "" || tk.Caller.ID != "00000000000000000000000000000001" {
			t.Errorf("unknown caller: %+v, %v", tk.Caller, err)
		}
	}
	if n := f.UserReads.Load(); n != 2 {
		t.Errorf("sys_user read %d times, want 2 (a 404 is cached too)", n)
	}
}

func TestCallerCacheBoundsAndExpiry(t *testing.T) {
	f := newFake(t)
	for i := range 5 {
		f.SetUser(fmt.Sprintf("%032x", i), map[string]any{"sys_id": fmt.Sprintf("%032x", i), "email": fmt.Sprintf("u%d@example.com", i)})
	}
	client, err := newClient(source(t, f.URL(), nil))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 5, 13, 10, 0, 0, 0, time.UTC)
	c := newCallers(client, time.Minute, 3, func() time.Time { return now })
	get := func(i int) {
		t.Helper()
		u, err := c.get(t.Context(), fmt.Sprintf("%032x", i))
		if err != nil || u.email != fmt.Sprintf("u%d@example.com", i) {
			t.Fatalf("get(%d) = %+v, %v", i, u, err)
		}
	}
	for i := range 5 {
		get(i)
	}
	if c.len() != 3 {
		t.Errorf("cache holds %d entries, want its bound 3", c.len())
	}
	get(4) // still cached
	if n := f.UserReads.Load(); n != 5 {
		t.Errorf("reads = %d, want 5", n)
	}
	get(0) // evicted: read again
	if n := f.UserReads.Load(); n != 6 {
		t.Errorf("reads after an evicted entry = %d, want 6", n)
	}
	now = now.Add(2 * time.Minute)
	get(0) // expired: read again
	if n := f.UserReads.Load(); n != 7 {
		t.Errorf("reads after expiry = %d, want 7", n)
	}
	if u, err := c.get(t.Context(), "../../sys_properties"); err != nil || u != (user{}) || f.UserReads.Load() != 7 {
		t.Errorf("a caller id that is no sys_id was looked up: %+v, %v", u, err)
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add(readFile(f, "outbound_business_rule.json"), true)
	for _, name := range []string{"incident_list_page1.json", "incident_list_display_all.json"} {
		for _, rec := range gjson.GetBytes(readFile(f, name), "result").Array() {
			f.Add([]byte(rec.Raw), false)
		}
	}
	f.Add([]byte(`{"result":{"sys_id":"1","number":"INC1"}}`), false)
	f.Add([]byte(`{"sys_id":{"value":null},"short_description":[]}`), false)
	plain := buildWebhook(f, nil)
	nested := buildWebhook(f, businessRuleFields)
	f.Fuzz(func(t *testing.T, body []byte, useNested bool) {
		wh := plain
		if useNested {
			wh = nested
		}
		tk, err := wh.Normalize(context.Background(), nil, body)
		if err != nil {
			var ie *connectors.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Normalize returned a non-input error %v", err)
			}
			return
		}
		if tk.ID == "" || tk.Title == "" {
			t.Fatalf("accepted a record without id or title: %+v", tk)
		}
		tk.Source = "snow"
		if err := tk.Validate(); err != nil && !strings.Contains(err.Error(), "id: is longer") && !strings.Contains(err.Error(), "id: is required") && !strings.Contains(err.Error(), "title: is required") {
			t.Fatalf("accepted a record that normalises to an invalid ticket: %v", err)
		}
		if !bytes.Equal(tk.Raw, body) {
			t.Fatalf("Raw differs from the body")
		}
	})
}

// FuzzVerify checks the example signature scheme as the ingress uses it:
// a request is accepted only with the signature of exactly its timestamp
// and body.
func FuzzVerify(f *testing.F) {
	vec := readVector(f)
	body := readFile(f, "outbound_business_rule.json")
	f.Add(body, vec.Timestamp, vec.Headers["X-Deskrelay-Signature"])
	f.Add(body, vec.Timestamp, "v1=")
	f.Add([]byte("{}"), "1715595343", "v1=AAAA")
	f.Add(body, "2024-05-13T10:15:43Z", vec.Headers["X-Deskrelay-Signature"])
	a, err := connectors.NewAuth("connectors.snow.auth", fixtureAuth(vec.Secret, 100*365*24*time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ts, sig string) {
		h := http.Header{}
		h.Set("X-Deskrelay-Timestamp", ts)
		h.Set("X-Deskrelay-Signature", sig)
		err := a.Verify(h, body)
		if err != nil {
			if !errors.Is(err, connectors.ErrUnauthorized) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthorized", err)
			}
			return
		}
		want := connectors.SignHMAC([]byte(vec.Secret), append([]byte(h.Get("X-Deskrelay-Timestamp")+"."), body...), "base64")
		// Compare what the signatures decode to: base64 decoding skips
		// line breaks and ignores padding bits.
		got, _ := strings.CutPrefix(strings.TrimSpace(h.Get("X-Deskrelay-Signature")), "v1=")
		gb, err := base64.StdEncoding.DecodeString(strings.TrimSpace(got))
		wb, _ := base64.StdEncoding.DecodeString(want)
		if err != nil || !bytes.Equal(gb, wb) {
			t.Fatalf("accepted signature %q for a body whose signature is %q", sig, want)
		}
	})
}

// TestWebhookAuthBlock: without an auth block a polling source refuses
// every webhook and a webhook source is a config error; Spec.Sign signs
// as the auth block expects, for `deskrelay send`.
func TestWebhookAuthBlock(t *testing.T) {
	body := readFile(t, "outbound_business_rule.json")
	spec, _ := connectors.Lookup("servicenow")
	for _, tt := range []struct {
		name    string
		auth    config.Auth
		polling bool
		wantErr string // from newWebhook
		sign    bool
		want    string // "" = accepted, else a Verify error part
	}{
		{"a polling source without auth refuses webhooks", config.Auth{}, true, "", false, `source "snow" only polls`},
		{"a webhook source needs an auth block", config.Auth{}, false, "connectors.snow.auth.type: is required", false, ""},
		{"a bad auth block is reported with its path", config.Auth{Type: "hmac", Encoding: "base32"}, false, `connectors.snow.auth.encoding: "base32" is not allowed`, false, ""},
		{"Sign makes what Verify accepts", fixtureAuth("k", 0), false, "", true, ""},
		{"an unsigned request is refused", fixtureAuth("k", 0), false, "", false, "missing X-Deskrelay-Signature header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, "https://example.service-now.com", nil, func(c *config.Connector) { c.Auth, c.Poll.Enabled = tt.auth, tt.polling })
			wh, err := newWebhook(src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newWebhook = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if tt.sign {
				if h, err = spec.Sign(src, body, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			err = wh.(connectors.Verifier).Verify(h, body)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Verify = %v, want accepted", err)
			case tt.want != "" && (!errors.Is(err, connectors.ErrUnauthorized) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Verify = %v, want ErrUnauthorized containing %q", err, tt.want)
			}
		})
	}
}
