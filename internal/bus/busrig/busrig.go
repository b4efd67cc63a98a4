// Package busrig gives tests of the packages that store through deskrelay's
// bus (connectors, pollers, the pipeline, cmd) a provisioned bus on a real
// in-process NATS server, the way production has it: streams, profile,
// cursor and lease buckets. internal/bus's own tests use bustest instead
// (this package imports bus).
package busrig

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
)

// Rig is a provisioned bus on its own server. Everything is closed and
// shut down when the test ends.
type Rig struct {
	Server  *server.Server
	Conn    *nats.Conn
	Bus     *bus.Bus
	Cursors *bus.Cursors
	Leases  *bus.Leases
}

// Start runs a JetStream server on a random loopback port and provisions
// deskrelay's streams and buckets with cfg (its URL is set here; zero
// values take the defaults).
func Start(t testing.TB, cfg config.NATS) *Rig {
	t.Helper()
	srv := bustest.Start(t)
	cfg.URL = srv.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := bus.Connect(ctx, cfg, nil, zap.NewNop())
	if err != nil {
		t.Fatalf("busrig: connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := bus.New(nc, cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatalf("busrig: %v", err)
	}
	if err := b.Provision(ctx); err != nil {
		t.Fatalf("busrig: provision: %v", err)
	}
	cursors, err := b.Cursors(ctx)
	if err != nil {
		t.Fatalf("busrig: %v", err)
	}
	leases, err := b.Leases(ctx)
	if err != nil {
		t.Fatalf("busrig: %v", err)
	}
	return &Rig{Server: srv, Conn: nc, Bus: b, Cursors: cursors, Leases: leases}
}

// Count returns how many messages the rig's stream of kind holds.
func (r *Rig) Count(t testing.TB, kind string) uint64 {
	t.Helper()
	return Count(t, r.Bus, kind)
}

// Count returns how many messages b's stream of kind (bus.KindIngest,
// bus.KindRouted, bus.KindDLQ) holds.
func Count(t testing.TB, b *bus.Bus, kind string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, b.StreamName(kind))
	if err != nil {
		t.Fatalf("busrig: stream %s: %v", kind, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("busrig: stream %s info: %v", kind, err)
	}
	return info.State.Msgs
}
