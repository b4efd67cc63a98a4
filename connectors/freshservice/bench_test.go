package freshservice

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/internal/fixture"
)

// BenchmarkNormalize measures the decoding of a Freshservice ticket and
// its validation: the two webhook bodies (our Workflow Automator template,
// with labels and with numeric codes) as the ingress normalises them, and
// a ticket of the API's list as the poller does.
//
//	go test -run='^$' -bench=Normalize -benchmem ./connectors/freshservice
func BenchmarkNormalize(b *testing.B) {
	w := testWebhook(b, nil)
	for _, name := range []string{"webhook_workflow_automator", "webhook_numeric_codes"} {
		body := fixture.Read(b, "testdata", name+".json")
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				tk, err := w.Normalize(b.Context(), nil, body)
				if err != nil {
					b.Fatal(err)
				}
				tk.Source = "freshservice"
				if err := tk.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("api_ticket", func(b *testing.B) {
		rec := gjson.GetBytes(fixture.Read(b, "testdata", "tickets_list_page1.json"), "tickets.0")
		tb := defaultTables()
		b.SetBytes(int64(len(rec.Raw)))
		b.ReportAllocs()
		for b.Loop() {
			tk, err := tb.decodeRecord(rec, []byte(rec.Raw))
			if err != nil {
				b.Fatal(err)
			}
			tk.Source = "freshservice"
			if err := tk.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
