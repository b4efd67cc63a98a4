package generic

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

// benchIdentityBody is a normalised ticket of about 1.5 KB, as the
// harness (go run ./bench) posts it.
var benchIdentityBody = []byte(`{"id":"BENCH-42","number":"INC0000042","title":"Laptop does not boot after BIOS update",` +
	`"description":"` + strings.Repeat("The screen stays black after the update; I already tried a hard reset. ", 14) + `",` +
	`"caller":{"id":"u4711","email":"caller4711@bench.example.com","name":"Bench Caller 4711"},` +
	`"channel":"phone","category":"hardware","subcategory":"laptop","impact":2,"urgency":2,"state":"new",` +
	`"assignment_group":"Service Desk","configuration_item":"LT-4471","opened_at":"2026-11-25T09:00:00Z",` +
	`"updated_at":"2026-11-25T09:00:00.042Z","tags":["vip","bench"]}`)

// BenchmarkNormalize measures what the ingress does with a webhook body
// after auth: Normalize, then Validate. "identity" is the example
// config's source; "mapping" is the ServiceNow Business Rule payload
// through the README's field mapping.
//
//	go test -run='^$' -bench=Normalize -benchmem ./connectors/generic
func BenchmarkNormalize(b *testing.B) {
	snow, err := os.ReadFile("testdata/servicenow_outbound.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts map[string]any
		body []byte
	}{
		{"identity", map[string]any{"mapping": "identity"}, benchIdentityBody},
		{"mapping/servicenow", snowMapping, snow},
	} {
		b.Run(c.name, func(b *testing.B) {
			wh, err := newWebhook(connectors.Source{Name: "generic", Config: config.Connector{Type: "generic", Options: c.opts}, Log: zap.NewNop()})
			if err != nil {
				b.Fatalf("newWebhook: %v", err)
			}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				tk, err := wh.Normalize(b.Context(), nil, c.body)
				if err != nil {
					b.Fatal(err)
				}
				tk.Source = "generic"
				if err := tk.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
