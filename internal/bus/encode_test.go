package bus

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/deskrelay/deskrelay/ticket"
)

// TestEncodeIsMarshal checks that the pooled encoder writes what
// json.Marshal writes, HTML escaping and raw payload compaction included,
// also when the buffer is reused.
func TestEncodeIsMarshal(t *testing.T) {
	tk := ticket.Ticket{
		ID: "INC1", Source: "snow", Title: "<b>VPN</b> & mail down",
		Caller:    ticket.Caller{Email: "a@example.com"},
		UpdatedAt: time.Date(2026, 11, 25, 1, 2, 3, 400, time.UTC),
		Tags:      []string{"vpn"}, Raw: json.RawMessage(`{ "a" : [1, 2] }`),
	}
	for _, tt := range []struct {
		name string
		v    any
	}{
		{"a ticket", tk},
		{"a routed message", &ticket.Routed{Schema: ticket.RoutedSchema, Ticket: tk, Routing: ticket.Routing{Tier: ticket.TierL2, Channel: ticket.ChannelPortal}}},
		{"the same ticket again, from a reused buffer", tk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			buf, err := encode(tt.v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			defer release(buf)
			if got := buf.String(); got != string(want) {
				t.Errorf("encode = %s, want %s", got, want)
			}
		})
	}
	if _, err := encode(ticket.Ticket{ID: "x", Raw: json.RawMessage("{")}); err == nil {
		t.Error("encode of a ticket whose raw payload is not JSON = nil error, want the json.Marshal error")
	}
}

// FuzzEncodeIsMarshal checks encode against json.Marshal on routed
// messages built from arbitrary strings, raw payloads and hint maps: the
// same bytes, or an error from both.
//
//	go test -run='^$' -fuzz=FuzzEncodeIsMarshal ./internal/bus
func FuzzEncodeIsMarshal(f *testing.F) {
	f.Add("<b>VPN</b> & mail down", "a@example.com", `{ "a" : [1, 2] }`, "vip", "true", 0.75, int64(400))
	f.Add("caf\xe9 \u2028 line", "", `{"sys_id":"1","d":"<x> & \u00e9","n":1.50e3}`, "", "", 1.0, int64(-1))
	f.Add("", "x", `[]`, "k", "\x00", -0.0, int64(0))
	f.Add("t", "e", `{`, "a", "b", 1e21, int64(1))
	f.Add("t", "e", `"\ud800"`, "z", "y", 3.4e-7, int64(999999999))
	f.Fuzz(func(t *testing.T, title, email, raw, key, val string, conf float64, nanos int64) {
		tk := ticket.Ticket{
			ID: "INC1", Source: "snow", Title: title, Description: title + "\n" + email,
			Caller:    ticket.Caller{Email: email, Name: val},
			UpdatedAt: time.Unix(1764000000, nanos%1e9).UTC(),
			Tags:      []string{key, val},
		}
		if raw != "" {
			tk.Raw = json.RawMessage(raw)
		}
		r := &ticket.Routed{
			Schema: ticket.RoutedSchema, Ticket: tk,
			Profile: ticket.Profile{Name: ticket.Doer, Source: key, Confidence: conf},
			Routing: ticket.Routing{Tier: ticket.TierL2, Channel: ticket.ChannelPortal, Rules: []string{key},
				Hints: ticket.Hints{Extra: map[string]string{key: val, val: key, "b": title}}},
		}
		for _, v := range []any{tk, r} {
			want, werr := json.Marshal(v)
			buf, gerr := encode(v)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("json.Marshal error %v, encode error %v", werr, gerr)
			}
			if gerr != nil {
				continue
			}
			got := buf.String()
			release(buf)
			if got == string(want) {
				continue
			}
			// Invalid UTF-8 becomes U+FFFD in both, which encoding/json
			// writes as \ufffd and v2 as the character: the same JSON.
			valid := true
			for _, s := range []string{title, email, raw, key, val} {
				valid = valid && utf8.ValidString(s)
			}
			if valid || !sameJSON(got, string(want)) {
				t.Fatalf("encode =\n%s\njson.Marshal =\n%s", got, want)
			}
		}
	})
}

// sameJSON reports whether a and b decode to the same value.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
