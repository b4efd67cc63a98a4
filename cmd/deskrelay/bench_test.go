package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkEndToEnd posts tickets one at a time to a deskrelay running on
// the example config (embedded NATS, file storage) and measures, per ticket,
// the ingress latency (POST → 202) and the end-to-end latency (POST sent →
// routed message received by a NATS subscriber). Run it with a fixed count:
//
//	go test -run='^$' -bench=EndToEnd -benchtime=1000x ./cmd/deskrelay
func BenchmarkEndToEnd(b *testing.B) {
	for _, sync := range []string{"2m", "always"} {
		b.Run("sync="+sync, func(b *testing.B) {
			benchEndToEnd(b, sync)
		})
	}
}

func benchEndToEnd(b *testing.B, sync string) {
	b.Setenv("DESKRELAY_NATS_EMBEDDED_SYNC_INTERVAL", sync)
	r := startServe(b, nil)
	nc, err := nats.Connect(r.NATS)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	routed := make(chan string, 64)
	sub, err := nc.Subscribe("deskrelay.routed.>", func(m *nats.Msg) { routed <- m.Header.Get("Deskrelay-Ticket-Id") })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	who := []string{"doer", "prioritizer", "trier", "supported"}
	var ingress, e2e []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		id := fmt.Sprintf("BENCH-%s-%d", sync, i)
		body := laptop(id, who[i%len(who)]+"@example.com")
		i++
		req, _ := http.NewRequest("POST", "http://"+r.HTTP+"/webhooks/generic", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+r.token)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST = %d", resp.StatusCode)
		}
		ingress = append(ingress, time.Since(start))
		select {
		case got := <-routed:
			if got != id {
				b.Fatalf("routed %q, want %q", got, id)
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("%s not routed within 10s", id)
		}
		e2e = append(e2e, time.Since(start))
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.50), name+"-p50-ms")
		b.ReportMetric(q(0.99), name+"-p99-ms")
	}
	report("ingress", ingress)
	report("e2e", e2e)
}
