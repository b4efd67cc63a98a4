package jsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/internal/golden"
	"github.com/deskrelay/deskrelay/ticket"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

// fixtureSecret is the secret of the fixtures' .signature.json files.
const fixtureSecret = "deskrelay-jira-example-secret"

// siteOptions are the custom field ids of the fixtures' example site.
func siteOptions() map[string]any {
	return map[string]any{
		"impact_field":       "customfield_10004",
		"urgency_field":      "customfield_10045",
		"request_type_field": "customfield_10010",
	}
}

func source(t testing.TB, opts map[string]any, auth config.Auth) connectors.Source {
	t.Helper()
	return connectors.Source{
		Name:   "jira",
		Config: config.Connector{Type: "jsm", Auth: auth, Options: opts},
		Log:    zaptest.NewLogger(t),
	}
}

func hmacAuth() config.Auth {
	return config.Auth{Type: "hmac", Secret: config.NewSecret(fixtureSecret)}
}

func buildWebhook(t testing.TB, opts map[string]any) *webhook {
	t.Helper()
	wh, err := newWebhook(source(t, opts, hmacAuth()))
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	return wh.(*webhook)
}

// signatureVector is the part of a .signature.json the tests use.
type signatureVector struct {
	Secret   string            `json:"secret"`
	BodyFile string            `json:"body_file"`
	Expected map[string]string `json:"expected_headers"`
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// ticketJSON renders a ticket for a golden file, without raw (checked
// apart: it is the input).
func ticketJSON(t *testing.T, tk ticket.Ticket) []byte {
	t.Helper()
	tk.Raw = nil
	b, err := json.MarshalIndent(tk, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestVerifyFixtureSignatures(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	for _, name := range []string{"webhook_issue_created", "webhook_issue_updated"} {
		var vec signatureVector
		if err := json.Unmarshal(fixture.Read(t, "testdata", name+".signature.json"), &vec); err != nil {
			t.Fatal(err)
		}
		if vec.Secret != fixtureSecret {
			t.Fatalf("%s: secret %q, want %q", name, vec.Secret, fixtureSecret)
		}
		body := fixture.Read(t, "testdata", vec.BodyFile)
		hdr := fixture.Header(t, "testdata", name+".headers")
		if got, want := hdr.Get(HeaderSignature), vec.Expected[HeaderSignature]; got != want {
			t.Fatalf("%s: .headers has %s %q, .signature.json %q", name, HeaderSignature, got, want)
		}
		tampered := bytes.Clone(body)
		tampered[bytes.Index(tampered, []byte(`"summary":"`))+len(`"summary":"`)] ^= 0x20
		flipped := []byte(hdr.Get(HeaderSignature))
		if flipped[len(flipped)-1] == '0' {
			flipped[len(flipped)-1] = '1'
		} else {
			flipped[len(flipped)-1] = '0'
		}
		with := func(v string) http.Header { h := hdr.Clone(); h.Set(HeaderSignature, v); return h }
		without := hdr.Clone()
		without.Del(HeaderSignature)
		for _, tt := range []struct {
			name string
			h    http.Header
			body []byte
			want string // "" = accepted; else a part of the error
		}{
			{"the fixture's own signature is accepted", hdr, body, ""},
			{"an upper-case hex digest is the same signature", with("sha256=" + strings.ToUpper(strings.TrimPrefix(hdr.Get(HeaderSignature), "sha256="))), body, ""},
			{"a body changed in one byte is refused", hdr, tampered, "does not match the body"},
			{"a signature changed in one digit is refused", with(string(flipped)), body, "does not match the body"},
			{"a request without the header is refused", without, body, "missing X-Hub-Signature"},
			{"a sha1 signature is refused", with("sha1=" + strings.TrimPrefix(hdr.Get(HeaderSignature), "sha256=")), body, `uses "sha1"`},
			{"a bare digest without method is refused", with(strings.TrimPrefix(hdr.Get(HeaderSignature), "sha256=")), body, "not of the form"},
			{"a digest that is not hex is refused", with("sha256=zz"), body, "does not match"},
		} {
			t.Run(name+": "+tt.name, func(t *testing.T) {
				err := wh.Verify(tt.h, tt.body)
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("Verify = %v, want nil", err)
				case tt.want != "" && (!errors.Is(err, connectors.ErrUnauthorized) || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("Verify = %v, want ErrUnauthorized containing %q", err, tt.want)
				}
			})
		}
	}
	t.Run("another secret refuses the fixture", func(t *testing.T) {
		src := source(t, nil, config.Auth{Type: "hmac", Secret: config.NewSecret("not-the-secret")})
		w, err := newWebhook(src)
		if err != nil {
			t.Fatal(err)
		}
		err = w.(*webhook).Verify(fixture.Header(t, "testdata", "webhook_issue_created.headers"), fixture.Read(t, "testdata", "webhook_issue_created.json"))
		if !errors.Is(err, connectors.ErrUnauthorized) {
			t.Errorf("Verify = %v, want ErrUnauthorized", err)
		}
	})
}

func TestSignMatchesVerify(t *testing.T) {
	body := fixture.Read(t, "testdata", "webhook_issue_updated.json")
	h, err := sign(source(t, nil, hmacAuth()), body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Get(HeaderSignature), fixture.Header(t, "testdata", "webhook_issue_updated.headers").Get(HeaderSignature); got != want {
		t.Errorf("sign = %q, want the fixture's %q", got, want)
	}
	bearer := config.Auth{Type: "bearer", Token: config.NewSecret("t0ken")}
	h, err = sign(source(t, nil, bearer), body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wh, err := newWebhook(source(t, nil, bearer))
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.(*webhook).Verify(h, body); err != nil {
		t.Errorf("bearer auth: Verify(sign(body)) = %v", err)
	}
}

func TestNormalizeFixtures(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	for _, name := range []string{"webhook_issue_created", "webhook_issue_updated"} {
		t.Run(name, func(t *testing.T) {
			body := fixture.Read(t, "testdata", name+".json")
			tk, err := wh.Normalize(t.Context(), fixture.Header(t, "testdata", name+".headers"), body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if !bytes.Equal(tk.Raw, body) {
				t.Errorf("Raw is not the body received")
			}
			tk.Source = "jira"
			if err := tk.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			checkGolden(t, name, ticketJSON(t, tk))
		})
	}
}

// The fixtures' facts, spelled out, so that a golden accepted by mistake
// cannot hide a wrong mapping.
func TestNormalizeFixtureFacts(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	tk, err := wh.Normalize(t.Context(), nil, fixture.Read(t, "testdata", "webhook_issue_updated.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"id (the numeric issue id)", tk.ID, "10042"},
		{"number (the key)", tk.Number, "ITS-42"},
		{"caller id (reporter accountId)", tk.Caller.ID, "qm:4f5b2c1e-8a7d-4e3b-9c21-6d0e5a7b3f11:9b8e7d6c-5a4b-4c3d-8e2f-1a0b9c8d7e6f"},
		{"caller email (reporter, not the acting agent)", tk.Caller.Email, "aisha.doer@example.com"},
		{"priority High", tk.Priority, 2},
		{"impact Significant / Large", tk.Impact, 2},
		{"urgency High", tk.Urgency, 2},
		{"state In progress", tk.State, "in_progress"},
		{"channel: a portal request type", tk.Channel, ticket.ChannelPortal},
		{"updated 12:21:07.455+0200 in UTC", tk.UpdatedAt, time.Date(2024, 5, 13, 10, 21, 7, 455e6, time.UTC)},
		{"opened 12:15:42.123+0200 in UTC", tk.OpenedAt, time.Date(2024, 5, 13, 10, 15, 42, 123e6, time.UTC)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestNormalizeVariants(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	base := fixture.Read(t, "testdata", "webhook_issue_created.json")
	// edit returns the created fixture with fn applied to its decoded form.
	edit := func(fn func(env, fields map[string]any)) []byte {
		var env map[string]any
		if err := json.Unmarshal(base, &env); err != nil {
			t.Fatal(err)
		}
		fn(env, env["issue"].(map[string]any)["fields"].(map[string]any))
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var adf map[string]any
	if err := json.Unmarshal(fixture.Read(t, "testdata", "description_adf.json"), &adf); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		body  []byte
		check func(t *testing.T, tk ticket.Ticket)
	}{
		{"a hidden email leaves the caller with the account id only",
			edit(func(_, f map[string]any) { delete(f["reporter"].(map[string]any), "emailAddress") }),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.Caller.Email != "" || tk.Caller.ID == "" {
					t.Errorf("Caller = %+v, want id only", tk.Caller)
				}
			}},
		{"a null email is the same as none",
			edit(func(_, f map[string]any) { f["reporter"].(map[string]any)["emailAddress"] = nil }),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.Caller.Email != "" || tk.Caller.ID == "" {
					t.Errorf("Caller = %+v, want id only", tk.Caller)
				}
			}},
		{"an ADF description (API v3) becomes plain text",
			edit(func(_, f map[string]any) { f["description"] = adf }),
			func(t *testing.T, tk ticket.Ticket) {
				if !strings.HasPrefix(tk.Description, "Since this morning the GlobalProtect VPN drops roughly every 5 minutes.\n\n") {
					t.Errorf("Description = %q", tk.Description)
				}
			}},
		{"an unknown priority and impact leave the fields empty",
			edit(func(_, f map[string]any) {
				f["priority"] = map[string]any{"id": "10000", "name": "Blocker"}
				f["customfield_10004"] = map[string]any{"id": "1", "value": "Galactic"}
			}),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.Priority != 0 || tk.Impact != 0 {
					t.Errorf("Priority, Impact = %d, %d, want 0, 0", tk.Priority, tk.Impact)
				}
			}},
		{"a deleted issue is keyed by the delivery time",
			edit(func(e, _ map[string]any) { e["webhookEvent"] = "jira:issue_deleted" }),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.State != "deleted" || !tk.UpdatedAt.Equal(time.UnixMilli(1715595342489)) {
					t.Errorf("State, UpdatedAt = %q, %v", tk.State, tk.UpdatedAt)
				}
			}},
		{"a comment event appends the comment and falls back on the delivery time",
			edit(func(e, f map[string]any) {
				e["webhookEvent"] = "comment_created"
				delete(f, "updated")
				e["comment"] = map[string]any{
					"author":  map[string]any{"accountId": "557058:x", "displayName": "Sam Agent"},
					"body":    map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "Please try the new client."}}}}},
					"created": "2024-05-13T12:30:00.000+0200",
				}
			}),
			func(t *testing.T, tk ticket.Ticket) {
				if !strings.HasSuffix(tk.Description, "Comment by Sam Agent at 2024-05-13 10:30 UTC:\nPlease try the new client.") {
					t.Errorf("Description ends %q", tk.Description[max(0, len(tk.Description)-80):])
				}
				if !tk.UpdatedAt.Equal(time.UnixMilli(1715595342489)) {
					t.Errorf("UpdatedAt = %v, want the envelope timestamp", tk.UpdatedAt)
				}
			}},
		{"a request type named in the channel table sets the channel",
			edit(func(_, f map[string]any) {
				f["customfield_10010"].(map[string]any)["requestType"].(map[string]any)["name"] = "Emailed request"
			}),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.Channel != ticket.ChannelEmail {
					t.Errorf("Channel = %q, want email", tk.Channel)
				}
			}},
		{"an issue without request type has no channel",
			edit(func(_, f map[string]any) { f["customfield_10010"] = nil }),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.Channel != "" || tk.Subcategory != "" {
					t.Errorf("Channel, Subcategory = %q, %q, want empty", tk.Channel, tk.Subcategory)
				}
			}},
		{"an unknown status falls back on its category",
			edit(func(_, f map[string]any) {
				f["status"] = map[string]any{"id": "10099", "name": "Awaiting vendor", "statusCategory": map[string]any{"key": "indeterminate"}}
			}),
			func(t *testing.T, tk ticket.Ticket) {
				if tk.State != "in_progress" {
					t.Errorf("State = %q, want in_progress", tk.State)
				}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := wh.Normalize(t.Context(), nil, tt.body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			tt.check(t, tk)
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	for _, tt := range []struct {
		name, body, want string
	}{
		{"a broken body", `{"issue":`, "body is not a Jira webhook JSON object"},
		{"an array body", `[1]`, "body is not a Jira webhook JSON object"},
		{"a timestamp that is not a number", `{"timestamp":true,"issue":{"id":"1","fields":{"summary":"x"}}}`, "timestamp: must be a JSON number, not bool"},
		{"a second value after the body", `{"issue":{"id":"1","fields":{"summary":"x"}}} {}`, "body is not a Jira webhook JSON object"},
		{"an event without issue", `{"webhookEvent":"user_created","user":{}}`, `issue: webhook event "user_created" carries no issue`},
		{"an issue without id", `{"issue":{"key":"ITS-1","fields":{"summary":"x"}}}`, "issue.id: is required"},
		{"an issue without summary", `{"issue":{"id":"1","fields":{}}}`, "issue.fields.summary: is required"},
		{"a summary that is not a string", `{"issue":{"id":"1","fields":{"summary":7}}}`, "issue.fields.summary: has an unexpected shape"},
		{"an updated time without offset", `{"issue":{"id":"1","fields":{"summary":"x","updated":"2024-05-13 12:00"}}}`, `issue.fields.updated: "2024-05-13 12:00" is not a Jira time`},
		{"a description that is a number", `{"issue":{"id":"1","fields":{"summary":"x","description":5}}}`, "issue.fields.description: must be a string (wiki markup) or an Atlassian Document Format object"},
		{"an impact that is a number", `{"issue":{"id":"1","fields":{"summary":"x","customfield_10004":3}}}`, "issue.fields.customfield_10004: impact field: must be a select option"},
		{"fields that are a list", `{"issue":{"id":"1","fields":[]}}`, "issue.fields: must be a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wh.Normalize(t.Context(), nil, []byte(tt.body))
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
		auth config.Auth
		want []string
	}{
		{"no auth type", nil, config.Auth{}, []string{"connectors.jira.auth.type: is required: hmac"}},
		{"hmac without secret", nil, config.Auth{Type: "hmac"}, []string{"connectors.jira.auth.secret: is required"}},
		{"hmac with another header and a replay window", nil,
			config.Auth{Type: "hmac", Secret: config.NewSecret("s"), Header: "X-Sig", TimestampHeader: "X-Ts"},
			[]string{"connectors.jira.auth.header: Jira signs in X-Hub-Signature", "connectors.jira.auth.timestamp_header: Jira signs no timestamp"}},
		{"bad tables", map[string]any{
			"priority": map[string]any{"Blocker": 0}, "impact": map[string]any{"Galactic": 4},
			"channel": map[string]any{"Fax": "pigeon"}, "default_channel": "smoke", "state": map[string]any{"Open": " "},
		}, hmacAuth(), []string{
			`connectors.jira.channel.Fax: "pigeon" is not a channel`,
			`connectors.jira.default_channel: "smoke" is not a channel`,
			`connectors.jira.impact.Galactic: 4 is not a impact; use 1 (high) to 3 (low)`,
			`connectors.jira.priority.Blocker: 0 is not a priority; use 1 (critical) to 5 (planning)`,
			`connectors.jira.state.Open: must name a state`,
		}},
		{"a table of the wrong type", map[string]any{"priority": "high=1"}, hmacAuth(), []string{"connectors.jira.priority: "}},
		{"a field id with a space", map[string]any{"impact_field": "custom field 10004"}, hmacAuth(), []string{`connectors.jira.impact_field: "custom field 10004" is not a Jira field id`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newWebhook(source(t, tt.opts, tt.auth))
			es := config.AsErrors(err)
			if len(es) != len(tt.want) {
				t.Fatalf("newWebhook errors =\n%v\nwant %d:\n%s", err, len(tt.want), strings.Join(tt.want, "\n"))
			}
			es.Sort()
			for i, w := range tt.want {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

func TestPollConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"no jql", nil, []string{"connectors.jira.jql: is required for polling"}},
		{"a jql with its own order", map[string]any{"jql": "project = ITS order by created"}, []string{"connectors.jira.jql: must not contain ORDER BY"}},
		{"an unknown time zone and a short overlap", map[string]any{"jql": "project = ITS", "time_zone": "Mars/Olympus", "overlap": "30s"},
			[]string{"connectors.jira.overlap: must be at least 1m", `connectors.jira.time_zone: "Mars/Olympus" is not an IANA time zone`}},
		{"shared option errors are the webhook's to report", map[string]any{"jql": "project = ITS", "priority": map[string]any{"x": 9}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, tt.opts, hmacAuth())
			src.Config.Poll = config.DefaultPoll
			src.Config.Poll.Enabled = true
			src.Config.API = config.DefaultAPI
			src.Config.API.BaseURL = "https://example.atlassian.net"
			src.Config.API.Auth = config.APIAuth{Type: "basic", Username: "bot@example.com", Password: config.NewSecret("token")}
			_, err := newPoller(src)
			es := config.AsErrors(err)
			if len(es) != len(tt.want) {
				t.Fatalf("newPoller errors =\n%v\nwant %d:\n%s", err, len(tt.want), strings.Join(tt.want, "\n"))
			}
			es.Sort()
			for i, w := range tt.want {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

// memSink collects what the ingress stores.
type memSink struct{ got []ticket.Ticket }

func (m *memSink) Ingest(_ context.Context, t ticket.Ticket) error {
	m.got = append(m.got, t)
	return nil
}

// The fixtures posted through the real ingress: the Verifier is wired in,
// a good delivery is stored, a tampered one never reaches the sink.
func TestIngressWithFixtures(t *testing.T) {
	opts := siteOptions()
	built, err := connectors.Build(map[string]config.Connector{
		"jira": {Type: "jsm", Auth: hmacAuth(), Options: opts},
	}, 1<<20, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sink := &memSink{}
	in := connectors.NewIngress(built.Endpoints, sink, time.Second, 5*time.Second, zaptest.NewLogger(t), connectors.NewMetrics(nil))
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{source}", in)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(body []byte, h http.Header) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/webhooks/jira", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h.Clone()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, name := range []string{"webhook_issue_created", "webhook_issue_updated"} {
		body, h := fixture.Read(t, "testdata", name+".json"), fixture.Header(t, "testdata", name+".headers")
		if code := post(body, h); code != http.StatusAccepted {
			t.Errorf("POST %s = %d, want 202", name, code)
		}
		bad := bytes.Clone(body)
		bad[len(bad)-2] = ' '
		if code := post(bad, h); code != http.StatusUnauthorized {
			t.Errorf("POST tampered %s = %d, want 401", name, code)
		}
	}
	if len(sink.got) != 2 || sink.got[0].Source != "jira" || sink.got[1].Number != "ITS-42" {
		t.Errorf("stored %d tickets (%+v), want the two fixtures", len(sink.got), sink.got)
	}
}

// TestNormalizeReadsAFieldItDidNotPlan checks that a field normalize
// reads is found even when planFields left it out of the plan.
func TestNormalizeReadsAFieldItDidNotPlan(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	body := fixture.Read(t, "testdata", "webhook_issue_updated.json")
	want, err := wh.Normalize(t.Context(), nil, body)
	if err != nil {
		t.Fatal(err)
	}
	delete(wh.set.slot, "summary")
	delete(wh.set.slot, "status")
	got, err := wh.Normalize(t.Context(), nil, body)
	if err != nil || got.Title != want.Title || got.State != want.State || got.Title == "" || got.State == "" {
		t.Errorf("without summary and status planned: title %q state %q (%v); want %q, %q", got.Title, got.State, err, want.Title, want.State)
	}
}

// TestNormalizeEventComment checks the comment of a comment webhook: it
// is added to the description when the issue carries no comment field,
// left out when it does (the issue's own comments are then the record),
// and a comment that is not a comment object is refused.
func TestNormalizeEventComment(t *testing.T) {
	wh := buildWebhook(t, siteOptions())
	for _, tt := range []struct {
		name, body string
		want       bool // the event's comment is in the description
		err        string
	}{
		{"an issue without comment field", `{"issue":{"id":"1","fields":{"summary":"x","description":"d"}},"comment":{"body":"EVENT-COMMENT"}}`, true, ""},
		{"an issue with its comments", `{"issue":{"id":"1","fields":{"summary":"x","comment":{"comments":[]}}},"comment":{"body":"EVENT-COMMENT"}}`, false, ""},
		{"an issue whose comment field is null", `{"issue":{"id":"1","fields":{"summary":"x","comment":null}},"comment":{"body":"EVENT-COMMENT"}}`, false, ""},
		{"a comment that is not an object", `{"issue":{"id":"1","fields":{"summary":"x"}},"comment":[1]}`, false, "comment: is not a Jira comment object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := wh.Normalize(t.Context(), nil, []byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("Normalize = %v, want an error starting %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(tk.Description, "EVENT-COMMENT"); got != tt.want {
				t.Errorf("event comment in description = %v, want %v (description %q)", got, tt.want, tk.Description)
			}
		})
	}
}
