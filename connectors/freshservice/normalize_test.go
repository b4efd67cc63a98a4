package freshservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/internal/golden"
	"github.com/deskrelay/deskrelay/ticket"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// ticketJSON is the golden form of a normalised ticket: indented, with
// the source set as the ingress would, and raw as compact JSON.
func ticketJSON(t *testing.T, tk ticket.Ticket) []byte {
	t.Helper()
	tk.Source = "freshservice"
	if err := tk.Validate(); err != nil {
		t.Errorf("ticket %s does not validate: %v", tk.ID, err)
	}
	var raw bytes.Buffer
	if err := json.Compact(&raw, tk.Raw); err != nil {
		t.Fatalf("raw of %s is not JSON: %v", tk.ID, err)
	}
	tk.Raw = raw.Bytes()
	b, err := json.MarshalIndent(tk, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func testWebhook(t testing.TB, opts map[string]any) *webhook {
	t.Helper()
	w, err := newWebhook(connectors.Source{Name: "freshservice", Config: config.Connector{Type: "freshservice", Options: opts}})
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	return w.(*webhook)
}

func TestNormalizeWebhookFixtures(t *testing.T) {
	for _, name := range []string{"webhook_workflow_automator", "webhook_numeric_codes"} {
		t.Run(name, func(t *testing.T) {
			body := fixture.Read(t, "testdata", name+".json")
			tk, err := testWebhook(t, nil).Normalize(t.Context(), nil, body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if !bytes.Equal(tk.Raw, body) {
				t.Errorf("Raw is not the body as received")
			}
			checkGolden(t, name, ticketJSON(t, tk))
		})
	}
}

func TestNormalizeListFixtures(t *testing.T) {
	tb := defaultTables()
	for _, page := range []string{"tickets_list_page1", "tickets_list_page2"} {
		body := fixture.Read(t, "testdata", page+".json")
		for _, rec := range gjson.GetBytes(body, "tickets").Array() {
			name := page + "_" + rec.Get("id").Raw
			t.Run(name, func(t *testing.T) {
				tk, err := tb.decodeRecord(rec, []byte(rec.Raw))
				if err != nil {
					t.Fatalf("decodeRecord: %v", err)
				}
				checkGolden(t, name, ticketJSON(t, tk))
			})
		}
	}
}

// The same ticket reaches deskrelay by webhook and by polling: both must
// carry one id, so that the profile, the routing and the dedup agree.
func TestWebhookAndPollAgreeOnTicket203(t *testing.T) {
	wh, err := testWebhook(t, nil).Normalize(t.Context(), nil, fixture.Read(t, "testdata", "webhook_workflow_automator.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec := gjson.GetBytes(fixture.Read(t, "testdata", "tickets_list_page2.json"), "tickets.0")
	polled, err := defaultTables().decodeRecord(rec, []byte(rec.Raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ field, webhook, poll string }{
		{"id", wh.ID, polled.ID},
		{"title", wh.Title, polled.Title},
		{"channel", string(wh.Channel), string(polled.Channel)},
		{"state", wh.State, polled.State},
		{"category", wh.Category, polled.Category},
	} {
		if c.webhook != c.poll {
			t.Errorf("%s: webhook %q, poll %q", c.field, c.webhook, c.poll)
		}
	}
	if wh.Priority != polled.Priority || wh.Urgency != polled.Urgency || wh.Impact != polled.Impact {
		t.Errorf("codes: webhook p%d u%d i%d, poll p%d u%d i%d", wh.Priority, wh.Urgency, wh.Impact, polled.Priority, polled.Urgency, polled.Impact)
	}
}

func TestCodeTables(t *testing.T) {
	tb := defaultTables()
	for _, tt := range []struct {
		name  string
		rec   string
		check func(ticket.Ticket) bool
	}{
		{"4 Urgent is our 1 critical", `{"priority":4}`, func(t ticket.Ticket) bool { return t.Priority == 1 }},
		{"3 High is our 2", `{"priority":"High"}`, func(t ticket.Ticket) bool { return t.Priority == 2 }},
		{"2 Medium is our 3", `{"priority":"2"}`, func(t ticket.Ticket) bool { return t.Priority == 3 }},
		{"1 Low is our 4", `{"priority":"low"}`, func(t ticket.Ticket) bool { return t.Priority == 4 }},
		{"urgency 3 High inverts to 1", `{"urgency":3}`, func(t ticket.Ticket) bool { return t.Urgency == 1 }},
		{"impact 1 Low inverts to 3", `{"impact":"Low"}`, func(t ticket.Ticket) bool { return t.Impact == 3 }},
		{"an empty placeholder leaves the code unset", `{"priority":"","urgency":null}`, func(t ticket.Ticket) bool { return t.Priority == 0 && t.Urgency == 0 }},
		{"source 9 Walkup is walk-in", `{"source":9}`, func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelWalkIn }},
		{"source 11 Chatbot is the virtual agent", `{"source":"Chatbot"}`, func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelVirtualAgent }},
		{"source 15 MS Teams is chat", `{"source":15}`, func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelChat }},
		{"a custom source is other", `{"source":1001}`, func(t ticket.Ticket) bool { return t.Channel == ticket.ChannelOther }},
		{"status 4 is resolved", `{"status":4}`, func(t ticket.Ticket) bool { return t.State == "resolved" }},
		{"a custom status keeps its number", `{"status":7}`, func(t ticket.Ticket) bool { return t.State == "7" }},
		{"a display id gives the numeric id and the number", `{"id":"#SR-17"}`, func(t ticket.Ticket) bool { return t.ID == "17" && t.Number == "SR-17" }},
		{"requester_id beats requester.id", `{"requester_id":5,"requester":{"id":6,"email":"a@example.com"}}`, func(t ticket.Ticket) bool {
			return t.Caller.ID == "5" && t.Caller.Email == "a@example.com"
		}},
		{"tags as a placeholder string", `{"tags":"vpn, vip"}`, func(t ticket.Ticket) bool { return len(t.Tags) == 2 && t.Tags[1] == "vip" }},
		{"an offset time is converted to UTC", `{"updated_at":"2024-05-13T12:15:42+02:00"}`, func(t ticket.Ticket) bool {
			return t.UpdatedAt.Location().String() == "UTC" && t.UpdatedAt.Hour() == 10
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := withBase(tt.rec)
			tk, err := tb.decodeRecord(gjson.Parse(rec), []byte(rec))
			if err != nil {
				t.Fatalf("decodeRecord(%s): %v", rec, err)
			}
			if !tt.check(tk) {
				t.Errorf("decodeRecord(%s) = %+v", rec, tk)
			}
		})
	}
}

// withBase adds an id and a subject to a record unless it has them.
func withBase(rec string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(rec), &m); err != nil {
		panic(err)
	}
	if _, ok := m["id"]; !ok {
		m["id"] = 1
	}
	if _, ok := m["subject"]; !ok {
		m["subject"] = "s"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestNormalizeRefusesWhatTheSenderCanFix(t *testing.T) {
	w := testWebhook(t, nil)
	for _, tt := range []struct {
		name, body, field, msg string
	}{
		{"broken JSON", `{"ticket":{"id":"1"`, "", "body is not valid JSON"},
		{"an array", `[1]`, "", "body must be a JSON object"},
		{"ticket not an object", `{"ticket":"203"}`, "ticket", "must be a JSON object"},
		{"no id", `{"ticket":{"subject":"x"}}`, "id", "is required"},
		{"a fractional id", `{"ticket":{"id":1.5,"subject":"x"}}`, "id", "is not a ticket id"},
		{"a word for an id", `{"ticket":{"id":"{{ticket.id_numeric}}","subject":"x"}}`, "id", "is not a Freshservice ticket id"},
		{"no subject", `{"ticket":{"id":"1"}}`, "subject", "is required"},
		{"an unknown priority label", `{"ticket":{"id":"1","subject":"x","priority":"Critical"}}`, "priority", `"Critical" is not a Freshservice priority`},
		{"a priority out of range", `{"ticket":{"id":"1","subject":"x","priority":5}}`, "priority", `"5" is not a Freshservice priority`},
		{"a time in another format", `{"ticket":{"id":"1","subject":"x","updated_at":"13 May 2024 10:15"}}`, "updated_at", "is not an ISO 8601 time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Normalize(t.Context(), nil, []byte(tt.body))
			ie, ok := errors.AsType[*connectors.InputError](err)
			if !ok || ie.Field != tt.field || !strings.Contains(ie.Msg, tt.msg) {
				t.Errorf("Normalize(%s) = %v; want input error on %q containing %q", tt.body, err, tt.field, tt.msg)
			}
		})
	}
}

func TestTableOverrides(t *testing.T) {
	w := testWebhook(t, map[string]any{
		"priority": map[string]any{"Urgent": 2, "4": "2"},
		"source":   map[string]any{"1001": "virtual_agent", "Walkup": "portal"},
		"status":   map[string]any{"6": "awaiting_vendor"},
		"urgency":  map[string]any{"3": 2},
	})
	body := `{"ticket":{"id":"1","subject":"x","priority":"Urgent","source":1001,"status":6,"urgency":"3"}}`
	tk, err := w.Normalize(t.Context(), nil, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Priority != 2 || tk.Channel != ticket.ChannelVirtualAgent || tk.State != "awaiting_vendor" || tk.Urgency != 2 {
		t.Errorf("Normalize with overrides = %+v", tk)
	}
	// Defaults not overridden stay.
	tk, _ = w.Normalize(t.Context(), nil, []byte(`{"ticket":{"id":"1","subject":"x","priority":1,"source":"email"}}`))
	if tk.Priority != 4 || tk.Channel != ticket.ChannelEmail {
		t.Errorf("Normalize of default codes = %+v", tk)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"a priority beyond 5", map[string]any{"priority": map[string]any{"4": 0}}, []string{`connectors.fs.priority.4: "0" is not a priority; use 1 (critical) to 5 (planning)`}},
		{"an impact of 4", map[string]any{"impact": map[string]any{"high": "4"}}, []string{`connectors.fs.impact.high: "4" is not an impact; use 1 (high) to 3 (low)`}},
		{"an unknown channel", map[string]any{"source": map[string]any{"9": "desk"}}, []string{`connectors.fs.source.9: "desk" is not a channel`}},
		{"a table that is not a map", map[string]any{"status": "open"}, []string{"connectors.fs.status: "}},
		{"an overlap under a second", map[string]any{"overlap": "500ms"}, []string{"connectors.fs.overlap: must be at least 1s"}},
		{"an overlap that is no duration", map[string]any{"overlap": "soon"}, []string{"connectors.fs.overlap: "}},
		{"a negative workspace", map[string]any{"workspace_id": -1}, []string{"connectors.fs.workspace_id: must be a Freshservice workspace id"}},
		{"every problem at once", map[string]any{"overlap": "0s", "urgency": map[string]any{"1": "9"}}, []string{"connectors.fs.urgency.1:", "connectors.fs.overlap:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newWebhook(connectors.Source{Name: "fs", Config: config.Connector{Type: "freshservice", Options: tt.opts}})
			errs := config.AsErrors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("newWebhook errors = %v; want %d: %q", err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if got := errs[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d = %q; want prefix %q", i, got, w)
				}
			}
		})
	}
}

// Freshservice does not sign webhooks: the configured auth block checks
// the request over the raw bytes, before Normalize parses them.
func TestWebhookAuth(t *testing.T) {
	body := fixture.Read(t, "testdata", "webhook_workflow_automator.json")
	fixture := fixture.Header(t, "testdata", "webhook_workflow_automator.headers")
	token := fixture.Get("X-Deskrelay-Token")
	bearer, err := connectors.NewAuth("connectors.fs.auth", config.Auth{Type: "bearer", Token: config.NewSecret(token)})
	if err != nil {
		t.Fatal(err)
	}
	basic, err := connectors.NewAuth("connectors.fs.auth", config.Auth{Type: "basic", Username: "freshservice", Password: config.NewSecret(token)})
	if err != nil {
		t.Fatal(err)
	}
	hmacAuth, err := connectors.NewAuth("connectors.fs.auth", config.Auth{Type: "hmac", Secret: config.NewSecret(token), Encoding: "hex"})
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	basicHeader := func(user, pass string) http.Header {
		r, _ := http.NewRequest("POST", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header
	}
	tampered := bytes.Replace(body, []byte(`"priority":"Low"`), []byte(`"priority":"Urgent"`), 1)
	for _, tt := range []struct {
		name string
		auth *connectors.Auth
		h    http.Header
		body []byte
		ok   bool
	}{
		{"the token as a bearer header is accepted", bearer, hdr("Authorization", "Bearer "+token), body, true},
		{"a wrong bearer token is refused", bearer, hdr("Authorization", "Bearer "+token+"x"), body, false},
		// The fixture's own header is our example of a custom header; the
		// auth block has no plain header-token type (see the doc page).
		{"the fixture's X-Deskrelay-Token alone is refused by bearer auth", bearer, fixture, body, false},
		{"basic auth from the action's credentials is accepted", basic, basicHeader("freshservice", token), body, true},
		{"a wrong basic password is refused", basic, basicHeader("freshservice", "nope"), body, false},
		{"an hmac of the raw body is accepted", hmacAuth, hmacAuth.Sign(body, time.Time{}), body, true},
		{"a tampered body fails the hmac", hmacAuth, hmacAuth.Sign(body, time.Time{}), tampered, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.auth.Verify(tt.h, tt.body)
			if tt.ok && err != nil {
				t.Errorf("Verify = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, connectors.ErrUnauthorized) {
				t.Errorf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}
