package zendesk

import (
	"encoding/json"
	"testing"

	"github.com/deskrelay/deskrelay/internal/fixture"
)

func BenchmarkNormalize(b *testing.B) {
	w := newTestWebhook(b, source(b, nil), fixtureTime)
	for _, fx := range []string{"webhook_ticket_created_event", "webhook_trigger_ticket"} {
		body := fixture.Read(b, "testdata", fx+".json")
		b.Run(fx, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Normalize(b.Context(), nil, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("export_ticket", func(b *testing.B) {
		var page exportPage
		if err := json.Unmarshal(fixture.Read(b, "testdata", "incremental_tickets_cursor_page1.json"), &page); err != nil {
			b.Fatal(err)
		}
		p := &poller{codes: w.codes}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := p.normalize(page.Tickets[0], nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	sig := readSignature(b, "webhook_ticket_created_event.signature.json")
	body := fixture.Read(b, "testdata", sig.BodyFile)
	h := fixture.Header(b, "testdata", "webhook_ticket_created_event.headers")
	w := newTestWebhook(b, source(b, nil), fixtureTime)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Verify(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
