package zendesk

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

// TestVerifyPublishedVector checks the scheme against the third-party
// vector that zendesk-go's and a Rust crate's tests share (SOURCES.md).
func TestVerifyPublishedVector(t *testing.T) {
	const ts = "2021-03-25T05:09:27Z"
	at, _ := time.Parse(time.RFC3339, ts)
	w := newTestWebhook(t, source(t, nil), at)
	body := []byte(`{"event":"ticket.updated","id":123}`)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, "S/RDdU2ERmj7LHDDoWJ2onPYH+t7/f2+LTM4dL7UiLM=")
	if err := w.Verify(h, body); err != nil {
		t.Errorf("Verify(published vector) = %v, want nil", err)
	}
	if got := w.Sign(body, at).Get(HeaderSignature); got != h.Get(HeaderSignature) {
		t.Errorf("Sign(published vector) = %q, want %q", got, h.Get(HeaderSignature))
	}
}

func TestVerifyFixtures(t *testing.T) {
	for _, fx := range []string{"webhook_ticket_created_event", "webhook_trigger_ticket"} {
		sig := readSignature(t, fx+".signature.json")
		body := fixture.Read(t, "testdata", sig.BodyFile)
		headers := fixture.Header(t, "testdata", fx+".headers")
		at, err := time.Parse(time.RFC3339, sig.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range sig.ExpectedHeaders {
			if got := headers.Get(name); got != want {
				t.Fatalf("%s.headers %s = %q, but .signature.json expects %q", fx, name, got, want)
			}
		}
		flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x01; return c }
		with := func(name, value string) http.Header {
			h := headers.Clone()
			if value == "" {
				h.Del(name)
			} else {
				h.Set(name, value)
			}
			return h
		}
		for _, tt := range []struct {
			name    string
			h       http.Header
			body    []byte
			now     time.Time
			opts    map[string]any
			secret  string
			wantErr string // "" = accepted
		}{
			{name: "the delivery as signed is accepted", h: headers, body: body, now: at.Add(time.Minute)},
			{name: "a delivery at the edge of the window is accepted", h: headers, body: body, now: at.Add(5 * time.Minute)},
			{name: "a body with one changed byte is refused", h: headers, body: flip(body, len(body)/2), now: at, wantErr: "does not match the body"},
			{name: "a body with a trailing newline is refused", h: headers, body: append(bytes.Clone(body), '\n'), now: at, wantErr: "does not match the body"},
			{name: "a changed signature is refused", h: with(HeaderSignature, sig.ExpectedHeaders[HeaderSignature][1:]+"A"), body: body, now: at, wantErr: "does not match the body"},
			{name: "a signature that is not base64 is refused", h: with(HeaderSignature, "not base64!"), body: body, now: at, wantErr: "does not match the body"},
			{name: "a timestamp moved by a second is refused", h: with(HeaderTimestamp, at.Add(time.Second).Format(timestampLayout)), body: body, now: at, wantErr: "does not match the body"},
			{name: "another secret is refused", h: headers, body: body, now: at, secret: "another-secret", wantErr: "does not match the body"},
			{name: "a missing signature is refused", h: with(HeaderSignature, ""), body: body, now: at, wantErr: "missing X-Zendesk-Webhook-Signature header"},
			{name: "a missing timestamp is refused", h: with(HeaderTimestamp, ""), body: body, now: at, wantErr: "missing X-Zendesk-Webhook-Signature-Timestamp header"},
			{name: "a timestamp that is no time is refused", h: with(HeaderTimestamp, "yesterday"), body: body, now: at, wantErr: "is not an ISO 8601 time"},
			{name: "a replay after the window is refused", h: headers, body: body, now: at.Add(5*time.Minute + time.Second), wantErr: "outside the 5m0s replay window"},
			{name: "a timestamp from the future is refused", h: headers, body: body, now: at.Add(-6 * time.Minute), wantErr: "outside the 5m0s replay window"},
			{name: "a longer replay_window accepts an older delivery", h: headers, body: body, now: at.Add(9 * time.Minute), opts: map[string]any{"replay_window": "10m"}},
		} {
			t.Run(fx+": "+tt.name, func(t *testing.T) {
				src := source(t, tt.opts)
				if tt.secret != "" {
					src.Config.Auth.Secret = config.NewSecret(tt.secret)
				}
				w := newTestWebhook(t, src, tt.now)
				err := w.Verify(tt.h, tt.body)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("Verify = %v, want nil", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("Verify = %v, want an error containing %q", err, tt.wantErr)
				case tt.wantErr != "" && !errors.Is(err, connectors.ErrUnauthorized):
					t.Errorf("Verify = %v, want it to wrap ErrUnauthorized", err)
				}
			})
		}
		t.Run(fx+": Sign reproduces the fixture's headers", func(t *testing.T) {
			h, err := sign(source(t, nil), body, at)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range sig.ExpectedHeaders {
				if got := h.Get(name); got != want {
					t.Errorf("sign(%s) %s = %q, want %q", sig.BodyFile, name, got, want)
				}
			}
		})
	}
}

func TestVerifyOtherAuth(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     config.Connector
		h       http.Header
		wantErr string
	}{
		{
			name: "a bearer token configured on the Zendesk webhook is checked",
			cfg:  config.Connector{Auth: config.Auth{Type: "bearer", Token: config.NewSecret("tok")}},
			h:    http.Header{"Authorization": {"Bearer tok"}},
		},
		{
			name:    "a wrong bearer token is refused",
			cfg:     config.Connector{Auth: config.Auth{Type: "bearer", Token: config.NewSecret("tok")}},
			h:       http.Header{"Authorization": {"Bearer other"}},
			wantErr: "bearer token does not match",
		},
		{
			name:    "a polled source without webhook auth refuses webhooks",
			cfg:     config.Connector{Poll: config.Poll{Enabled: true}},
			h:       http.Header{},
			wantErr: `source "zd" takes no webhooks`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Type = "zendesk"
			w := newTestWebhook(t, connectors.Source{Name: "zd", Config: tt.cfg, Log: zaptest.NewLogger(t)}, fixtureTime)
			err := w.Verify(tt.h, []byte(`{}`))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Verify = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, connectors.ErrUnauthorized)):
				t.Errorf("Verify = %v, want ErrUnauthorized containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalizeGolden(t *testing.T) {
	for _, fx := range []string{"webhook_ticket_created_event", "webhook_trigger_ticket"} {
		t.Run(fx, func(t *testing.T) {
			w := newTestWebhook(t, source(t, nil), fixtureTime)
			body := fixture.Read(t, "testdata", fx+".json")
			tk, err := w.Normalize(t.Context(), nil, body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if !bytes.Equal(tk.Raw, body) {
				t.Errorf("Raw is not the body as received")
			}
			tk.Source = "zd"
			if err := tk.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			checkGolden(t, fx, ticketJSON(t, tk))
		})
	}
}

// TestNormalizeFixturesAgree checks that the event, the trigger body and
// the export describe ticket 5158 alike, so routing does not depend on the
// intake path.
func TestNormalizeFixturesAgree(t *testing.T) {
	w := newTestWebhook(t, source(t, nil), fixtureTime)
	ev, err := w.Normalize(t.Context(), nil, fixture.Read(t, "testdata", "webhook_ticket_created_event.json"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.Normalize(t.Context(), nil, fixture.Read(t, "testdata", "webhook_trigger_ticket.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ field, ev, tr string }{
		{"id", ev.ID, tr.ID},
		{"title", ev.Title, tr.Title},
		{"caller.id", ev.Caller.ID, tr.Caller.ID},
		{"channel", string(ev.Channel), string(tr.Channel)},
		{"priority", string(rune('0' + ev.Priority)), string(rune('0' + tr.Priority))},
		{"state", ev.State, tr.State},
		{"category", ev.Category, tr.Category},
	} {
		if c.ev != c.tr {
			t.Errorf("%s: event %q, trigger %q", c.field, c.ev, c.tr)
		}
	}
}

func TestNormalizeCodeTables(t *testing.T) {
	opts := map[string]any{
		"priority": map[string]any{"high": "1"},
		"channel":  map[string]any{"Web Form": "walk_in"},
		"state":    map[string]any{"new": "registered"},
		"groups":   map[string]any{"29001000000501": "Service Desk"},
	}
	w := newTestWebhook(t, source(t, opts), fixtureTime)
	tk, err := w.Normalize(t.Context(), nil, fixture.Read(t, "testdata", "webhook_ticket_created_event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Priority != 1 || tk.Channel != ticket.ChannelWalkIn || tk.State != "registered" || tk.AssignmentGroup != "Service Desk" {
		t.Errorf("Normalize with overrides = priority %d, channel %q, state %q, group %q; want 1, walk_in, registered, Service Desk",
			tk.Priority, tk.Channel, tk.State, tk.AssignmentGroup)
	}
}

func TestNormalizeErrors(t *testing.T) {
	template := string(fixture.Read(t, "testdata", "webhook_trigger_template.json"))
	event := string(fixture.Read(t, "testdata", "webhook_ticket_created_event.json"))
	for _, tt := range []struct {
		name  string
		body  string
		field string
		want  string
	}{
		{"an empty body", ``, "", "body is empty"},
		{"a body broken by a placeholder value", `{"ticket":{"id":"5158","subject":"say "hi""}}`, "", "body is not valid JSON (offset"},
		{"a JSON array", `[1,2]`, "", "body must be a JSON object"},
		{"neither an event nor a trigger body", `{"hello":"world"}`, "", "neither a Zendesk ticket event"},
		{"a user event", `{"type":"zen:event-type:user.created","detail":{"id":"1"}}`, "type", "is not a ticket event"},
		{"an event without a ticket id", `{"type":"zen:event-type:ticket.created","detail":{"subject":"x"}}`, "detail.id", "is not a Zendesk ticket id"},
		{"an event with a bad time", strings.Replace(event, `"updated_at":"2024-05-13T10:15:42Z"`, `"updated_at":"13/05/2024"`, 1), "detail.updated_at", "is not an ISO 8601 time"},
		{"the template sent unrendered", template, "ticket.id", "unrendered placeholder"},
		{"a trigger body without an id", `{"ticket":{"subject":"x"}}`, "ticket.id", "is not a Zendesk ticket id"},
		{"a trigger body whose ticket is a string", `{"ticket":"5158"}`, "ticket", "must be a JSON object"},
		{"a trigger body with a numeric subject", `{"ticket":{"id":"1","subject":5}}`, "ticket.subject", "must be a JSON string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWebhook(t, source(t, nil), fixtureTime)
			_, err := w.Normalize(t.Context(), nil, []byte(tt.body))
			var ie *connectors.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field || !strings.Contains(ie.Msg, tt.want) {
				t.Errorf("Normalize(%.40q) = %v, want an input error on %q containing %q", tt.body, err, tt.field, tt.want)
			}
		})
	}
}

func TestNormalizeTriggerVariants(t *testing.T) {
	w := newTestWebhook(t, source(t, nil), fixtureTime)
	for _, tt := range []struct {
		name string
		body string
		want func(ticket.Ticket) bool
	}{
		{"tags may be a JSON array", `{"ticket":{"id":"7","subject":"s","tags":["a","b"]}}`, func(tk ticket.Ticket) bool { return len(tk.Tags) == 2 && tk.Tags[1] == "b" }},
		{"an unrendered requester email is dropped", `{"ticket":{"id":"7","subject":"s","requester":{"id":"{{ticket.requester.id}}","email":"{{ticket.requester.email}}"}}}`, func(tk ticket.Ticket) bool { return tk.Caller == ticket.Caller{} }},
		{"a missing subject falls back to the description", `{"ticket":{"id":"7","description":"Printer jams\nsince Monday"}}`, func(tk ticket.Ticket) bool { return tk.Title == "Printer jams" }},
		{"created_at to the minute becomes opened_at", `{"ticket":{"id":"7","subject":"s","created_at":"2024-05-13T10:15Z"}}`, func(tk ticket.Ticket) bool { return tk.OpenedAt.Equal(time.Date(2024, 5, 13, 10, 15, 0, 0, time.UTC)) }},
		{"a phone call via maps to phone", `{"ticket":{"id":"7","subject":"s","via":"Phone call (incoming)"}}`, func(tk ticket.Ticket) bool { return tk.Channel == ticket.ChannelPhone }},
		{"an unknown via maps to other", `{"ticket":{"id":"7","subject":"s","via":"Carrier pigeon"}}`, func(tk ticket.Ticket) bool { return tk.Channel == ticket.ChannelOther }},
		{"no via leaves the channel empty", `{"ticket":{"id":"7","subject":"s"}}`, func(tk ticket.Ticket) bool { return tk.Channel == "" && tk.UpdatedAt.IsZero() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := w.Normalize(t.Context(), nil, []byte(tt.body))
			if err != nil || !tt.want(tk) {
				t.Errorf("Normalize(%s) = %+v, %v", tt.body, tk, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		auth config.Auth
		opts map[string]any
		want string
	}{
		{"a priority out of range", config.Auth{}, map[string]any{"priority": map[string]any{"urgent": 0}}, `connectors.zd.priority.urgent: 0 is not a priority; use 1 (critical) to 5 (planning)`},
		{"a channel that deskrelay does not know", config.Auth{}, map[string]any{"channel": map[string]any{"voice": "pigeon"}}, `connectors.zd.channel.voice: "pigeon" is not a channel`},
		{"a replay window that is not a duration", config.Auth{}, map[string]any{"replay_window": "soon"}, `connectors.zd.replay_window: `},
		{"a negative replay window", config.Auth{}, map[string]any{"replay_window": "-1m"}, `connectors.zd.replay_window: must be positive, got -1m0s`},
		{"impact values without a field", config.Auth{}, map[string]any{"impact": map[string]any{"values": map[string]any{"impact_high": 1}}}, `connectors.zd.impact.field: is required with impact.values`},
		{"an urgency value out of range", config.Auth{}, map[string]any{"urgency": map[string]any{"field": 1, "values": map[string]any{"now": 4}}}, `connectors.zd.urgency.values.now: 4 is out of range; use 1 (high) to 3 (low)`},
		{"a group key that is no id", config.Auth{}, map[string]any{"groups": map[string]any{"desk": "Service Desk"}}, `connectors.zd.groups.desk: "desk" is not a Zendesk group id`},
		{"a negative request rate", config.Auth{}, map[string]any{"requests_per_minute": -1}, `connectors.zd.requests_per_minute: must be 0 (no pacing) or more, got -1`},
		{"no auth on a webhook-only source", config.Auth{Type: ""}, nil, `connectors.zd.auth.type: is required: hmac (Zendesk's webhook signature), bearer, basic or none`},
		{"hmac without a secret", config.Auth{Type: "hmac"}, nil, `connectors.zd.auth.secret: is required`},
		{"hmac with a hex encoding", config.Auth{Type: "hmac", Secret: config.NewSecret("s"), Encoding: "hex"}, nil, `connectors.zd.auth.encoding: Zendesk signatures are base64; remove encoding`},
		{"hmac with the auth block's replay window", config.Auth{Type: "hmac", Secret: config.NewSecret("s"), ReplayWindow: time.Minute}, nil, `connectors.zd.auth.replay_window: set connectors.zd.replay_window instead`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, tt.opts)
			if tt.auth != (config.Auth{}) || tt.name == "no auth on a webhook-only source" {
				src.Config.Auth = tt.auth
			}
			_, err := newWebhook(src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newWebhook error =\n%v\nwant it to contain\n%s", err, tt.want)
			}
		})
	}
}

// TestIngress posts the signed fixtures through the real ingress.
func TestIngress(t *testing.T) {
	cfg := map[string]config.Connector{"zd": source(t, nil).Config}
	built, err := connectors.Build(cfg, 1<<20, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sig := readSignature(t, "webhook_ticket_created_event.signature.json")
	at, _ := time.Parse(time.RFC3339, sig.Timestamp)
	eps := built.Endpoints
	signed, err := eps["zd"].Sign(fixture.Read(t, "testdata", sig.BodyFile), at)
	if err != nil {
		t.Fatalf("Endpoint.Sign: %v", err)
	}
	if got := signed.Get(HeaderSignature); got != sig.ExpectedHeaders[HeaderSignature] {
		t.Errorf("Endpoint.Sign = %q, want %q", got, sig.ExpectedHeaders[HeaderSignature])
	}
	eps["zd"].Webhook.(*webhook).now = func() time.Time { return at.Add(30 * time.Second) }
	sink := &memSink{}
	in := connectors.NewIngress(eps, sink, time.Second, 5*time.Second, zaptest.NewLogger(t), connectors.NewMetrics(nil))
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{source}", in)
	body := fixture.Read(t, "testdata", sig.BodyFile)
	for _, tt := range []struct {
		name string
		body []byte
		want int
	}{
		{"the signed event is stored and answered 202", body, http.StatusAccepted},
		{"a tampered event is refused with 401", bytes.Replace(body, []byte(`"HIGH"`), []byte(`"URGENT"`), 1), http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/webhooks/zd", bytes.NewReader(tt.body))
			req.Header = fixture.Header(t, "testdata", "webhook_ticket_created_event.headers")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("POST = %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
	if len(sink.got) != 1 || sink.got[0].ID != "5158" || sink.got[0].Source != "zd" {
		t.Errorf("stored %+v, want ticket 5158 of source zd once", sink.got)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, name := range []string{"webhook_ticket_created_event.json", "webhook_trigger_ticket.json", "webhook_trigger_template.json"} {
		f.Add(fixture.Read(f, "testdata", name))
	}
	f.Add([]byte(`{"ticket":{"id":5158,"tags":"a b"}}`))
	f.Add([]byte(`{"type":"zen:event-type:ticket.created","subject":"zen:ticket:1","detail":{}}`))
	w, err := newWebhook(connectors.Source{Name: "f", Config: config.Connector{Type: "zendesk", Auth: config.Auth{Type: "hmac", Secret: config.NewSecret(testSecret)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tk, err := w.Normalize(t.Context(), nil, body)
		if err != nil {
			var ie *connectors.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Normalize returned a non-input error %v", err)
			}
			return
		}
		tk.Source = "f"
		if !isID(tk.ID) || tk.Title == "" {
			t.Fatalf("accepted a payload without a ticket id or title: %+v", tk)
		}
		if err := tk.Validate(); err != nil {
			t.Fatalf("accepted a ticket that does not validate: %v", err)
		}
		if !bytes.Equal(tk.Raw, body) {
			t.Fatalf("Raw is not the body")
		}
	})
}

func FuzzVerify(f *testing.F) {
	for _, fx := range []string{"webhook_ticket_created_event", "webhook_trigger_ticket"} {
		sig := readSignature(f, fx+".signature.json")
		f.Add(sig.Timestamp, sig.ExpectedHeaders[HeaderSignature], fixture.Read(f, "testdata", sig.BodyFile))
	}
	f.Add("2021-03-25T05:09:27Z", "S/RDdU2ERmj7LHDDoWJ2onPYH+t7/f2+LTM4dL7UiLM=", []byte(`{"event":"ticket.updated","id":123}`))
	src := connectors.Source{Name: "f", Config: config.Connector{Type: "zendesk", Auth: config.Auth{Type: "hmac", Secret: config.NewSecret(testSecret)}}}
	wh, err := newWebhook(src)
	if err != nil {
		f.Fatal(err)
	}
	base := *wh.(*webhook).verifier
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		v := base
		at, perr := time.Parse(time.RFC3339, ts)
		if perr == nil {
			v.now = func() time.Time { return at }
		}
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := v.Verify(h, body)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("Verify = %v, want nil or ErrUnauthorized", err)
		}
		if err == nil {
			// Accepted: it must be exactly what Sign produces.
			if perr != nil || h.Get(HeaderSignature) == "" {
				t.Fatalf("accepted a request with timestamp %q", ts)
			}
			want := connectors.SignHMAC([]byte(testSecret), append([]byte(h.Get(HeaderTimestamp)), body...), "base64")
			got, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(h.Get(HeaderSignature)))
			if base64.StdEncoding.EncodeToString(got) != want {
				t.Fatalf("accepted signature %q, want %q", sig, want)
			}
		}
	})
}
