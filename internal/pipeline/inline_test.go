package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/ticket"
)

// richTicket has what a stored copy might change: a raw vendor record
// with spaces, times in another zone, characters encoding/json escapes.
func richTicket(id string) ticket.Ticket {
	tk := goodTicket(id)
	cet := time.FixedZone("CET", 3600)
	tk.OpenedAt = time.Date(2025, 3, 4, 6, 0, 0, 123456789, cet)
	tk.UpdatedAt = time.Date(2025, 3, 4, 6, 6, 7, 0, cet)
	tk.Description = "Fan <loud> & \"hot\" — ça chauffe\n\tsince Monday"
	tk.Tags = []string{"hardware", "vip"}
	tk.Impact, tk.Urgency = 2, 1
	tk.Raw = json.RawMessage(`{ "number" : "INC0010001",  "short_description": "Laptop will not boot", "nested": {"a": [1, 2.50, true, null]} }`)
	return tk
}

// TestRouteNowPublishesWhatTheProcessorWould routes the same ticket both
// ways, each on its own server, and wants the same routed message, byte
// for byte, under the same Nats-Msg-Id: a consumer cannot tell the paths
// apart, and a ticket routed by both is stored once.
func TestRouteNowPublishesWhatTheProcessorWould(t *testing.T) {
	tk := richTicket("INC200")

	staged := newEnv(t, config.Pipeline{})
	stagedCh := staged.subscribe(t, "deskrelay.routed.>")
	run(t, staged.processor(t, doer, toL2Portal, nil, nil))
	if err := staged.bus.Ingest(t.Context(), tk); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	want := receive(t, stagedCh, "routed message of the processor")

	inline := newEnv(t, config.Pipeline{})
	inlineCh := inline.subscribe(t, "deskrelay.routed.>")
	m := NewMetrics(nil)
	p := inline.processor(t, doer, toL2Portal, nil, m)
	if err := p.RouteNow(t.Context(), &tk); err != nil {
		t.Fatalf("RouteNow: %v", err)
	}
	got := receive(t, inlineCh, "routed message of RouteNow")

	if got.Subject != want.Subject {
		t.Errorf("subject = %q, want the processor's %q", got.Subject, want.Subject)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("routed message differs from the processor's:\n got %s\nwant %s", got.Data, want.Data)
	}
	if !maps.EqualFunc(got.Header, want.Header, slices.Equal) {
		t.Errorf("headers = %v, want the processor's %v", got.Header, want.Header)
	}
	if id := got.Header.Get(nats.MsgIdHdr); id != RoutedMsgID(tk.MsgID()) {
		t.Errorf("Nats-Msg-Id = %q, want %q", id, RoutedMsgID(tk.MsgID()))
	}
	if n := inline.streamMsgs(t, bus.KindIngest); n != 0 {
		t.Errorf("ingest stream holds %d messages after RouteNow, want 0", n)
	}
	if got := testutil.ToFloat64(m.inlineRouted); got != 1 {
		t.Errorf("deskrelay_inline_routed_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.routed.WithLabelValues("l2", "portal", "doer")); got != 1 {
		t.Errorf("deskrelay_routed_total{l2,portal,doer} = %v, want 1", got)
	}
	if got := histogramCount(t, m.stage, StageEnrich); got != 1 {
		t.Errorf("enrich stage observations = %d, want 1", got)
	}
}

// TestRoutedBothWaysIsStoredOnce plays a webhook routed inline and then
// retried by its vendor into the ingest stream (the retry fell back): the
// processor acks it and the routed stream keeps one message.
func TestRoutedBothWaysIsStoredOnce(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	p := e.processor(t, doer, toL2Portal, nil, nil)
	tk := goodTicket("INC201")
	if err := p.RouteNow(t.Context(), &tk); err != nil {
		t.Fatalf("RouteNow: %v", err)
	}
	if err := p.RouteNow(t.Context(), &tk); err != nil {
		t.Fatalf("RouteNow again: %v", err)
	}
	run(t, p)
	if err := e.bus.Ingest(t.Context(), tk); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	e.waitAcked(t)
	if n := e.streamMsgs(t, bus.KindRouted); n != 1 {
		t.Errorf("routed stream holds %d messages, want 1", n)
	}
}

// failingPublisher refuses every routed message.
type failingPublisher struct{ Publisher }

func (failingPublisher) PublishRouted(context.Context, string, *ticket.Routed) error {
	return errors.New("nats: timeout")
}

// TestRouteNowFailsOverToTheIngestStream checks each way RouteNow can fail:
// nothing is published, the error names the stage, and the fallback is
// counted by it.
func TestRouteNowFailsOverToTheIngestStream(t *testing.T) {
	lookupDown := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) {
		return ticket.Profile{}, errors.New("directory unreachable")
	})
	panickyEnricher := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) { panic("bad cache entry") })
	noRoute := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
		return ticket.Routing{}, errors.New("no rule matched")
	})
	panicky := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) { panic("nil map in rule") })
	badTier := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
		return ticket.Routing{Tier: "l 2", Channel: ticket.ChannelPortal, Priority: 3}, nil
	})
	loading := make(chan struct{})
	for _, tt := range []struct {
		name    string
		enr     Enricher
		rt      Router
		pub     Publisher
		opts    []Option
		stage   string
		errText string
	}{
		{"before the directory is loaded", doer, toL2Portal, nil, []Option{WithReady(loading)}, stageReady, "profile directory is still loading"},
		{"a failed profile lookup", lookupDown, toL2Portal, nil, nil, StageEnrich, "enrich: profile lookup: directory unreachable"},
		{"an enricher panic", panickyEnricher, toL2Portal, nil, nil, StageEnrich, "enrich: panic in enrich: bad cache entry"},
		{"no route", doer, noRoute, nil, nil, StageRoute, "route: no rule matched"},
		{"a router panic", doer, panicky, nil, nil, StageRoute, "route: panic in route: nil map in rule"},
		{"a tier that is not a subject token", doer, badTier, nil, nil, StagePublishRouted, "publish_routed: bus: publish routed ticket"},
		{"a failed publish", doer, toL2Portal, failingPublisher{}, nil, StagePublishRouted, "publish_routed: nats: timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, config.Pipeline{})
			pub := tt.pub
			if pub == nil {
				pub = e.bus
			}
			m := NewMetrics(nil)
			p := New(e.cons, tt.enr, tt.rt, pub, e.cfg, zaptest.NewLogger(t), m, tt.opts...)
			tk := goodTicket("INC202")
			err := p.RouteNow(t.Context(), &tk)
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("RouteNow = %v, want an error containing %q", err, tt.errText)
			}
			if n := e.streamMsgs(t, bus.KindRouted); n != 0 {
				t.Errorf("routed stream holds %d messages, want 0", n)
			}
			for stage, c := range m.inlineFallbacks {
				want := 0.0
				if stage == tt.stage {
					want = 1
				}
				if got := testutil.ToFloat64(c); got != want {
					t.Errorf("deskrelay_inline_fallbacks_total{stage=%q} = %v, want %v", stage, got, want)
				}
			}
			if got := testutil.ToFloat64(m.inlineRouted); got != 0 {
				t.Errorf("deskrelay_inline_routed_total = %v, want 0", got)
			}
		})
	}
}

// TestRouteNowOnceReady checks that closing the WithReady channel lets
// RouteNow route.
func TestRouteNowOnceReady(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	ready := make(chan struct{})
	p := New(e.cons, doer, toL2Portal, e.bus, e.cfg, zaptest.NewLogger(t), nil, WithReady(ready))
	tk := goodTicket("INC203")
	if err := p.RouteNow(t.Context(), &tk); !errors.Is(err, ErrNotReady) {
		t.Fatalf("RouteNow before ready = %v, want ErrNotReady", err)
	}
	close(ready)
	if err := p.RouteNow(t.Context(), &tk); err != nil {
		t.Fatalf("RouteNow once ready: %v", err)
	}
	if n := e.streamMsgs(t, bus.KindRouted); n != 1 {
		t.Errorf("routed stream holds %d messages, want 1", n)
	}
}

func TestRouteNowRefusesWithAnInvalidOption(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	p := New(e.cons, doer, toL2Portal, e.bus, e.cfg, zaptest.NewLogger(t), nil, WithReady(nil))
	tk := goodTicket("INC204")
	if err := p.RouteNow(t.Context(), &tk); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("RouteNow = %v, want ErrInvalidOption", err)
	}
}
