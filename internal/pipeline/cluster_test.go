package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
)

// TestRunSurvivesALostClusterNode runs the processor on a 3-node cluster
// with every stream replicated three times, stops the node it is
// connected to, and stores more tickets: every ticket stored before and
// after is routed, once. (How fast: a ticket whose routed publish was in
// flight is nak'd once the client has moved to another node, see
// TestRunRetriesAMessageInFlightWhenTheConnectionDrops; one the server was
// delivering when the node went away is redelivered after the ack wait,
// 5s here.)
func TestRunSurvivesALostClusterNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	servers := bustest.Cluster(t, 3)
	ncfg := config.NATS{URL: bustest.ClientURLs(servers), KVReplicas: 3, Streams: config.Streams{
		Ingest: config.Stream{Replicas: 3}, Routed: config.Stream{Replicas: 3}, DLQ: config.Stream{Replicas: 3},
	}}
	b, nc := connectBusWith(t, ncfg)
	// Messages the server was sending when the node went away are lost in
	// transit and redelivered after the ack wait: 5s keeps the test short.
	cfg := config.Pipeline{AckWait: 5 * time.Second}
	cons, err := b.IngestConsumer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("IngestConsumer: %v", err)
	}
	p := New(cons, doer, toL2Portal, b, cfg, zaptest.NewLogger(t), nil, WithClock(func() time.Time { return fixedNow }), WithConnection(nc))
	errc := runUntilStopped(t, p)

	const before, after = 20, 20
	for i := range before {
		if err := b.Ingest(t.Context(), goodTicket(fmt.Sprintf("C%02d", i))); err != nil {
			t.Fatalf("Ingest before the loss: %v", err)
		}
	}
	lost := nc.ConnectedServerName()
	for _, s := range servers {
		if s.Name() == lost {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	start := time.Now()
	for i := before; i < before+after; i++ {
		if err := ingestRetrying(t, b, fmt.Sprintf("C%02d", i)); err != nil {
			t.Fatalf("Ingest after losing %s: %v", lost, err)
		}
	}
	t.Logf("lost %s; stored again %v later", lost, time.Since(start))

	js, _ := jetstream.New(nc)
	var oc jetstream.Consumer
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if oc, err = js.OrderedConsumer(t.Context(), b.StreamName(bus.KindRouted), jetstream.OrderedConsumerConfig{}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("read the routed stream: %v", err)
	}
	routed := map[string]int{}
	for deadline := time.Now().Add(20 * time.Second); len(routed) < before+after && time.Now().Before(deadline); {
		select {
		case err := <-errc:
			t.Fatalf("Run = %v after losing %s, want it to keep running", err, lost)
		default:
		}
		msg, err := oc.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		routed[msg.Headers().Get("Deskrelay-Ticket-Id")]++
	}
	t.Logf("all routed %v after the loss", time.Since(start))
	for i := range before + after {
		id := fmt.Sprintf("C%02d", i)
		if n := routed[id]; n != 1 {
			t.Errorf("ticket %s routed %d times, want once", id, n)
		}
	}
	// Nothing more arrives: a duplicate would come after the others.
	if msg, err := oc.Next(jetstream.FetchMaxWait(2 * time.Second)); err == nil {
		t.Errorf("extra routed message for %s", msg.Headers().Get("Deskrelay-Ticket-Id"))
	}
}
