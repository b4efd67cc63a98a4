package bus

import (
	"encoding/json"
	"testing"
	"time"

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
