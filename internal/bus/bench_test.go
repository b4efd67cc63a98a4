package bus

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

// BenchmarkIngest measures one Ingest (publish + PubAck, file storage,
// in-process connection) with the server's default sync interval and with
// sync_interval "always", which fsyncs every write. One publisher, so the
// figure is the latency of one stored ticket; compare with benchstat:
//
//	go test -run='^$' -bench=Ingest -benchtime=2s -count=8 ./internal/bus > ingest.txt
//	benchstat ingest.txt
func BenchmarkIngest(b *testing.B) {
	for _, sync := range []string{"default", SyncAlways} {
		b.Run("sync="+sync, func(b *testing.B) {
			cfg := config.NATS{Embedded: config.Embedded{Listen: ListenNone}}
			if sync == SyncAlways {
				cfg.Embedded.SyncInterval = SyncAlways
			}
			srv, err := StartEmbedded(cfg, b.TempDir(), zap.NewNop())
			if err != nil {
				b.Fatalf("StartEmbedded: %v", err)
			}
			b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
			nc, err := Connect(b.Context(), cfg, srv, zap.NewNop())
			if err != nil {
				b.Fatalf("Connect: %v", err)
			}
			bustest.CloseOnCleanup(b, nc)
			bus, err := New(nc, cfg, zap.NewNop(), nil)
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			if err := bus.Provision(b.Context()); err != nil {
				b.Fatalf("Provision: %v", err)
			}
			tk := sampleTicket("")
			tk.Description = "The VPN client disconnects every hour and the caller has to log in again."
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				tk.ID = "INC" + strconv.Itoa(i)
				if err := bus.Ingest(b.Context(), tk); err != nil {
					b.Fatalf("Ingest: %v", err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tickets/s")
		})
	}
}

// BenchmarkEncode measures the encoding of a routed message with and
// without the raw vendor payload a ServiceNow ticket carries (a 1.4 KB
// record), by encode and, for comparison in the same run, json.Marshal.
//
//	go test -run='^$' -bench=Encode -benchmem ./internal/bus
func BenchmarkEncode(b *testing.B) {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	raw := `{"sys_id":"9d385017c611228701d22104cc95c371","number":"INC0010236","short_description":"Printer on 3rd floor shows paper jam but is empty","description":"` +
		strings.Repeat("Since this morning the problem comes back after every restart & <nothing> helps. ", 12) +
		`","caller_id":{"link":"https://example.service-now.com/api/now/table/sys_user/ed3b","value":"ed3b7c29563ff74f4fb0f8c15f0043f0"},"impact":"2","urgency":"1","sys_updated_on":"2026-11-25 09:00:00"}`
	r := &ticket.Routed{
		Schema: ticket.RoutedSchema,
		Ticket: ticket.Ticket{
			ID: "9d385017c611228701d22104cc95c371", Source: "snow", Number: "INC0010236", Title: "Printer on 3rd floor shows paper jam but is empty",
			Caller:  ticket.Caller{ID: "ed3b7c29563ff74f4fb0f8c15f0043f0", Email: "trina.trier@example.com"},
			Channel: ticket.ChannelEmail, Category: "hardware", Subcategory: "printer", Impact: 2, Urgency: 1, State: "new",
			OpenedAt: at, UpdatedAt: at,
		},
		Profile: ticket.Profile{Name: ticket.Trier, Source: "directory", Confidence: 1},
		Routing: ticket.Routing{Tier: ticket.TierL1, Channel: ticket.ChannelChat, Priority: 3, Rules: []string{"root", "trier"},
			Hints: ticket.Hints{CommunicationStyle: "Short and friendly.", PreferredChannels: []ticket.Channel{ticket.ChannelChat}, Extra: map[string]string{"vip": "false"}}},
		RoutedAt: at,
	}
	for _, withRaw := range []bool{true, false} {
		r.Ticket.Raw = nil
		name := "raw=none"
		if withRaw {
			r.Ticket.Raw, name = json.RawMessage(raw), "raw=1.4KB"
		}
		b.Run(name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, err := encode(r)
				if err != nil {
					b.Fatal(err)
				}
				release(buf)
			}
		})
		b.Run(name+"/json.Marshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
