package servicenow

import (
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/config"
)

// BenchmarkWebhook measures what the ingress does with a ServiceNow
// webhook: Verify (bearer token, constant time), Normalize, Validate.
// "business_rule" is the example Business Rule payload with its nested
// caller mapping; "table_record" a Table API incident record.
//
//	go test -run='^$' -bench=Webhook -benchmem ./connectors/servicenow
func BenchmarkWebhook(b *testing.B) {
	record := []byte(gjson.GetBytes(readFile(b, "incident_list_page1.json"), "result.0").Raw)
	for _, c := range []struct {
		name string
		opts map[string]any
		body []byte
	}{
		{"business_rule", businessRuleFields, readFile(b, "outbound_business_rule.json")},
		{"table_record", nil, record},
	} {
		b.Run(c.name, func(b *testing.B) {
			src := source(b, "", c.opts, func(cc *config.Connector) {
				cc.Auth = config.Auth{Type: "bearer", Token: config.NewSecret("bench-token")}
				cc.Poll.Enabled = false
			})
			wh, err := newWebhook(src)
			if err != nil {
				b.Fatalf("newWebhook: %v", err)
			}
			w := wh.(*webhook)
			h := http.Header{"Authorization": []string{"Bearer bench-token"}, "Content-Type": []string{"application/json"}}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Verify(h, c.body); err != nil {
					b.Fatal(err)
				}
				tk, err := w.Normalize(b.Context(), h, c.body)
				if err != nil {
					b.Fatal(err)
				}
				tk.Source = "snow"
				if err := tk.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
