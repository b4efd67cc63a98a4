package ticket

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchRouted is a routed message as the pipeline publishes it for a
// ticket of about 1.5 KB encoded: a long description, the profile, and
// a decision with every hint set.
func benchRouted() *Routed {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	return &Routed{
		Schema: RoutedSchema,
		Ticket: Ticket{
			ID: "INC0042317", Source: "generic", Number: "INC0042317", Title: "Laptop does not boot after BIOS update",
			Description: strings.Repeat("The screen stays black after the update; I already tried a hard reset. ", 12),
			Caller:      Caller{ID: "u4711", Email: "caller4711@example.com", Name: "Sam Supported"},
			Channel:     ChannelPhone, Category: "hardware", Subcategory: "laptop", Impact: 2, Urgency: 2, State: "new",
			AssignmentGroup: "Service Desk", ConfigurationItem: "LT-4471", OpenedAt: at, UpdatedAt: at.Add(time.Minute),
			Tags: []string{"vip", "bench"},
		},
		Profile: Profile{Name: Supported, Source: "directory", Confidence: 1},
		Routing: Routing{
			Tier: TierDesktop, Channel: ChannelWalkIn, Priority: 2,
			Rules: []string{"root", "vip", "supported", "supported-hardware"},
			Hints: Hints{
				CommunicationStyle: "Patient and warm, in everyday language: no IT terms, one step at a time.",
				Language:           "plain",
				PreferredChannels:  []Channel{ChannelPhone, ChannelWalkIn},
				Do:                 []string{"Offer a phone call or a visit at their desk.", "Use the same agent as last time when possible."},
				Avoid:              []string{"Written instructions full of IT terms.", "Links to the self-service portal."},
				StatusUpdateEvery:  "2h",
				VirtualAgent:       "handoff_to_human",
				Extra:              map[string]string{"vip": "true"},
			},
		},
		RoutedAt: at.Add(12 * time.Millisecond),
	}
}

// BenchmarkRoutedMarshal measures the encoding of one routed message,
// json.Marshal as internal/bus does it before the publish.
//
//	go test -run='^$' -bench=RoutedMarshal -benchmem ./ticket
func BenchmarkRoutedMarshal(b *testing.B) {
	r := benchRouted()
	body, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures what the pipeline does first with each ingest
// message: decode and validate the stored ticket.
//
//	go test -run='^$' -bench=Decode -benchmem ./ticket
func BenchmarkDecode(b *testing.B) {
	for _, raw := range []string{"", `{"sys_id":"9d385017c611228701d22104cc95c371","number":"INC0010236","short_description":"Printer shows paper jam",` +
		`"description":"` + strings.Repeat("Tray 2 is empty & still it jams. ", 30) + `","impact":"2","urgency":"1","sys_updated_on":"2026-11-25 09:00:00"}`} {
		name := "raw=none"
		if raw != "" {
			name = fmt.Sprintf("raw=%dB", len(raw))
		}
		b.Run(name, func(b *testing.B) {
			tk := benchRouted().Ticket
			if raw != "" {
				tk.Raw = json.RawMessage(raw)
			}
			data, err := json.Marshal(&tk)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMsgID measures the de-duplication key, computed on ingress and
// for every routed message.
func BenchmarkMsgID(b *testing.B) {
	tk := benchRouted().Ticket
	b.ReportAllocs()
	for b.Loop() {
		_ = tk.MsgID()
	}
}
