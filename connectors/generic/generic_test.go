package generic

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

func build(t *testing.T, opts map[string]any) (connectors.Webhook, error) {
	t.Helper()
	return newWebhook(connectors.Source{Name: "snow", Config: config.Connector{Type: "generic", Options: opts}, Log: zaptest.NewLogger(t)})
}

// snowMapping maps the ServiceNow Business Rule example payload.
var snowMapping = map[string]any{
	"mapping": map[string]any{
		"id": "sys_id", "number": "number", "title": "short_description", "description": "description",
		"caller.id": "caller.sys_id", "caller.email": "caller.email", "caller.name": "caller.name",
		"channel": "contact_type", "category": "category", "subcategory": "subcategory",
		"impact": "impact", "urgency": "urgency", "priority": "priority", "state": "state",
		"assignment_group": "assignment_group.name", "configuration_item": "cmdb_ci",
		"opened_at": "opened_at", "updated_at": "sys_updated_on",
	},
	"values": map[string]map[string]string{
		"channel": {"self-service": "portal", "virtual_agent": "virtual_agent"},
	},
}

func TestMappingServiceNowPayload(t *testing.T) {
	body, err := os.ReadFile("testdata/servicenow_outbound.json")
	if err != nil {
		t.Fatal(err)
	}
	wh, err := build(t, snowMapping)
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	tk, err := wh.Normalize(t.Context(), nil, body)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	want := ticket.Ticket{
		ID: "59a60bfcb9e24a4ba04482e650fb4efd", Number: "INC0010236",
		Title:   "Printer on 3rd floor shows paper jam but is empty",
		Caller:  ticket.Caller{ID: "ed3b7c29563ff74f4fb0f8c15f0043f0", Email: "trina.trier@example.com", Name: "Trina Trier"},
		Channel: ticket.ChannelEmail, Category: "hardware", Subcategory: "printer",
		Impact: 3, Urgency: 3, Priority: 5, State: "1", AssignmentGroup: "Service Desk",
		OpenedAt:  time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC),
		UpdatedAt: time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC),
	}
	tk.Description, tk.Raw = "", nil
	if tk.ID != want.ID || tk.Number != want.Number || tk.Title != want.Title || tk.Caller != want.Caller ||
		tk.Channel != want.Channel || tk.Category != want.Category || tk.Subcategory != want.Subcategory ||
		tk.Impact != want.Impact || tk.Urgency != want.Urgency || tk.Priority != want.Priority || tk.State != want.State ||
		tk.AssignmentGroup != want.AssignmentGroup || tk.ConfigurationItem != "" || !tk.OpenedAt.Equal(want.OpenedAt) || !tk.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("Normalize =\n%+v\nwant\n%+v", tk, want)
	}
}

func TestMappingErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want string
	}{
		{"a missing id path names the field", `{"short_description":"x"}`, `id: is required but payload path "sys_id" is missing or empty`},
		{"an uncoded impact asks for a values table", `{"sys_id":"1","short_description":"x","impact":"high"}`, `impact: payload path "impact": "high" is not a number (add a values table to translate it)`},
		{"an unknown channel lists the channels", `{"sys_id":"1","short_description":"x","contact_type":"pigeon"}`, `channel: payload path "contact_type": "pigeon" is not a channel`},
		{"a bad time says what is accepted", `{"sys_id":"1","short_description":"x","sys_updated_on":"yesterday"}`, `updated_at: payload path "sys_updated_on": "yesterday" is not a time`},
		{"an array body is refused", `[1,2]`, "body must be a JSON object"},
		{"a broken body is refused", `{"sys_id":`, "body is not valid JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) { wantInputError(t, snowMapping, tt.body, tt.want) })
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts map[string]any
		want string
	}{
		{"an unknown mapping word", map[string]any{"mapping": "auto"}, `connectors.snow.mapping: "auto" is not a mapping; use identity or a map of ticket field → payload path`},
		{"a mapping without id and title", map[string]any{"mapping": map[string]any{"number": "number"}}, `connectors.snow.mapping: maps no payload path to "id", which every ticket needs` + "\n" + `connectors.snow.mapping: maps no payload path to "title", which every ticket needs`},
		{"an unknown ticket field", map[string]any{"mapping": map[string]any{"id": "a", "title": "b", "titel": "c"}}, `connectors.snow.mapping.titel: unknown ticket field "titel"`},
		{"a values table for identity", map[string]any{"values": map[string]any{"channel": map[string]any{"web": "portal"}}}, "connectors.snow.values.channel: values apply only to a field mapping"},
		{"a values table with a bad target", map[string]any{"mapping": map[string]any{"id": "a", "title": "b"}, "values": map[string]any{"impact": map[string]any{"high": "0"}}}, `connectors.snow.values.impact.high: "0" is not a impact; use 1 (high) to 3 (low)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(t, tt.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("newWebhook error =\n%v\nwant prefix\n%s", err, tt.want)
			}
		})
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	wh, err := build(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"INC1","source":"x","title":"Laptop","caller":{"email":"doer@example.com"},"channel":"phone","tags":["vip"],"updated_at":"2024-05-13T10:15:42Z"}`
	tk, err := wh.Normalize(t.Context(), nil, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if tk.ID != "INC1" || tk.Caller.Email != "doer@example.com" || tk.Channel != ticket.ChannelPhone || len(tk.Tags) != 1 || tk.UpdatedAt.IsZero() {
		t.Errorf("Normalize = %+v", tk)
	}
}

func FuzzNormalize(f *testing.F) {
	body, _ := os.ReadFile("testdata/servicenow_outbound.json")
	f.Add(body, true)
	f.Add([]byte(`{"id":"1","title":"t"}`), false)
	f.Add([]byte(`{"id":1}`), false)
	f.Fuzz(func(t *testing.T, body []byte, mapped bool) {
		var opts map[string]any
		if mapped {
			opts = snowMapping
		}
		wh, err := newWebhook(connectors.Source{Name: "f", Config: config.Connector{Type: "generic", Options: opts}})
		if err != nil {
			t.Fatal(err)
		}
		tk, err := wh.Normalize(t.Context(), nil, body)
		if err != nil {
			var ie *connectors.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Normalize returned a non-input error %v", err)
			}
			return
		}
		if mapped && (tk.ID == "" || tk.Title == "") {
			t.Fatalf("accepted a mapped payload without id/title: %+v", tk)
		}
	})
}

// TestIdentityErrors pins the 400 messages of the identity mapping: each
// names the field and says what to send instead.
func TestIdentityErrors(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string
	}{
		{"an unknown field is named", `{"id":"1","title":"x","colour":"red"}`, `colour: is not a ticket field (see the ticket format in the README)`},
		{"a number where a string belongs", `{"id":1,"title":"x"}`, `id: must be a JSON string, not number`},
		{"a string where a number belongs", `{"id":"1","title":"x","impact":"high"}`, `impact: must be a JSON number, not string`},
		{"a nested field", `{"id":"1","title":"x","caller":{"email":7}}`, `caller.email: must be a JSON string, not number`},
		{"an array body", `[1,2]`, `body must be a JSON object (a ticket), not array`},
		{"a string body", `"ticket"`, `body must be a JSON object (a ticket), not string`},
		{"a broken body", `{"id":`, `body is not valid JSON`},
		{"an empty body", ``, `body is not valid JSON`},
		{"two values", `{"id":"1","title":"x"} {}`, `body holds more than one JSON value`},
		{"a bad time", `{"id":"1","title":"x","opened_at":"yesterday"}`, `opened_at and updated_at must be RFC 3339 times such as 2024-05-13T10:15:42Z, not "yesterday"`},
		{"a time out of range says why", `{"id":"1","title":"x","opened_at":"2024-13-01T00:00:00Z"}`, `opened_at and updated_at must be RFC 3339 times such as 2024-05-13T10:15:42Z, not "2024-13-01T00:00:00Z": month out of range`},
		{"a number where a time belongs", `{"id":"1","title":"x","opened_at":5}`, `opened_at: must be an RFC 3339 time string such as 2024-05-13T10:15:42Z, not number`},
	} {
		t.Run(tt.name, func(t *testing.T) { wantInputError(t, map[string]any{"mapping": "identity"}, tt.body, tt.want) })
	}
	t.Run("field names match in any case, as encoding/json does", func(t *testing.T) {
		wh, err := build(t, map[string]any{"mapping": "identity"})
		if err != nil {
			t.Fatal(err)
		}
		tk, err := wh.Normalize(t.Context(), nil, []byte(`{"ID":"1","Title":"x","Caller":{"EMAIL":"a@example.com"}}`))
		if err != nil || tk.ID != "1" || tk.Title != "x" || tk.Caller.Email != "a@example.com" {
			t.Errorf("Normalize = %+v, %v; want id, title and caller email set", tk, err)
		}
	})
}

// wantInputError checks that a source built with opts refuses body with an
// input error whose message starts with want.
func wantInputError(t *testing.T, opts map[string]any, body, want string) {
	t.Helper()
	wh, err := build(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wh.Normalize(t.Context(), nil, []byte(body))
	var ie *connectors.InputError
	if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Normalize(%s) = %v, want input error starting %q", body, err, want)
	}
}

// TestPlanNormalizesAsGjson checks that reading the plain paths in one
// pass gives the ticket (or the error) that asking gjson for every path
// does, with plain and gjson-syntax paths mixed.
func TestPlanNormalizesAsGjson(t *testing.T) {
	snow, err := os.ReadFile("testdata/servicenow_outbound.json")
	if err != nil {
		t.Fatal(err)
	}
	mixed := map[string]any{"mapping": map[string]any{
		"id": "issue.key", "title": "issue.fields.summary", "number": "issue.id",
		"caller.email": `people.#(role=="caller").email`, "caller.name": "issue.fields.reporter.displayName",
		"tags": "issue.fields.labels", "category": `issue.fields.components.0.name`,
		"subcategory": `a\.b`, "updated_at": "issue.fields.updated", "priority": "issue.fields.priority.id",
		"state": "status.0",
	}}
	bodies := []string{
		string(snow),
		`{"issue":{"key":"K-1","id":"10","fields":{"summary":"s","labels":["x","y"],"components":[{"name":"c0"}],"updated":1715595342,"priority":{"id":"2"},"reporter":{"displayName":"R"}}},"people":[{"role":"agent","email":"a@x"},{"role":"caller","email":"c@x"}],"a.b":"escaped"}`,
		`{"issue":{"key":"K-2"},"issue":{"fields":{"summary":"second issue"}}}`,
		`{"issue":{"key":"K-3","fields":{"summary":"s","priority":{"id":"high"}}}}`,
		`{"issue":{"key":null,"fields":{"summary":"s"}}}`,
		`{"sys_id":"1","sys_id":"2","short_description":"dup","impact":null}`,
		// JSON text inside a string is not entered by an index path.
		`{"status":"[urgent] vpn down","issue":{"key":"K-4","fields":{"summary":"s","components":"[{\"name\":\"in-string\"}]"}}}`,
	}
	for _, m := range []struct {
		name  string
		opts  map[string]any
		mixed bool // has paths only gjson reads
	}{{"servicenow", snowMapping, false}, {"mixed", mixed, true}} {
		wh, err := build(t, m.opts)
		if err != nil {
			t.Fatalf("%s: newWebhook: %v", m.name, err)
		}
		w := wh.(*webhook)
		if plain := w.pick.Len(); plain == 0 || m.mixed && plain == len(w.fields) {
			t.Fatalf("%s: %d of %d paths plain", m.name, plain, len(w.fields))
		}
		ref := *w
		ref.fields = slices.Clone(w.fields)
		for i := range ref.fields {
			ref.fields[i].slot = -1
		}
		for _, body := range bodies {
			got, gerr := w.Normalize(t.Context(), nil, []byte(body))
			want, werr := ref.Normalize(t.Context(), nil, []byte(body))
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s:\nplan   %+v, %v\ngjson  %+v, %v", m.name, body, got, gerr, want, werr)
			}
		}
	}
}
