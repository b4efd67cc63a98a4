package bus

import (
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
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
