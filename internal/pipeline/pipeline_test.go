package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type enricherFunc func(ctx context.Context, c ticket.Caller) (ticket.Profile, error)

func (f enricherFunc) Lookup(ctx context.Context, t *ticket.Ticket) (ticket.Profile, error) {
	return f(ctx, t.Caller)
}

type routerFunc func(tk *ticket.Ticket, p *ticket.Profile) (ticket.Routing, error)

func (f routerFunc) Route(tk *ticket.Ticket, p *ticket.Profile) (ticket.Routing, error) {
	return f(tk, p)
}

var doer = enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) {
	return ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 1}, nil
})

var toL2Portal = routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
	return ticket.Routing{Tier: ticket.TierL2, Channel: ticket.ChannelPortal, Priority: 3, Rules: []string{"root", "doer"}}, nil
})

// env is a provisioned JetStream with the bus and the ingest consumer.
type env struct {
	bus  *bus.Bus
	nc   *nats.Conn
	cons jetstream.Consumer
	cfg  config.Pipeline
}

func newEnv(t *testing.T, cfg config.Pipeline) *env {
	t.Helper()
	srv := bustest.Start(t)
	ncfg := config.NATS{URL: srv.ClientURL()}
	nc, err := bus.Connect(t.Context(), ncfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := bus.New(nc, ncfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	cons, err := b.IngestConsumer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("IngestConsumer: %v", err)
	}
	return &env{bus: b, nc: nc, cons: cons, cfg: cfg}
}

// run starts p and returns stop, which cancels Run's ctx and returns what
// Run returned (an error after 20s without return). The test's cleanup
// stops it too and reports an error.
func run(t *testing.T, p *Processor) (stop func() error) {
	t.Helper()
	cancel, wait := start(t, p)
	return func() error { cancel(); return wait() }
}

// start runs p and returns cancel, which ends Run's ctx, and wait, which
// returns what Run returned (an error after 20s without return). The
// test's cleanup cancels and waits too, and reports an error.
func start(t *testing.T, p *Processor) (cancel func(), wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	wait = func() error {
		once.Do(func() {
			select {
			case runErr = <-errc:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s of its ctx ending")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("Run = %v, want nil after a clean stop", err)
		}
	})
	return cancel, wait
}

func (e *env) processor(t *testing.T, enr Enricher, rt Router, pub Publisher, m *Metrics) *Processor {
	t.Helper()
	if pub == nil {
		pub = e.bus
	}
	return New(e.cons, enr, rt, pub, e.cfg, zaptest.NewLogger(t), m, WithClock(func() time.Time { return fixedNow }))
}

func goodTicket(id string) ticket.Ticket {
	return ticket.Ticket{ID: id, Source: "snow-prod", Title: "Laptop will not boot", Caller: ticket.Caller{ID: "u42"}, UpdatedAt: fixedNow}
}

// subscribe returns a channel receiving the messages on subject.
func (e *env) subscribe(t *testing.T, subject string) <-chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return ch
}

func receive(t *testing.T, ch <-chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s within 15s", what)
		return nil
	}
}

// waitAcked polls the consumer until every message of the ingest stream
// is delivered and acked: nothing pending or unacked, and the ack floor at
// the stream's last sequence.
func (e *env) waitAcked(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	s, err := e.bus.JetStream().Stream(t.Context(), e.bus.StreamName(bus.KindIngest))
	if err != nil {
		t.Fatalf("ingest stream: %v", err)
	}
	last := s.CachedInfo().State.LastSeq
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := e.cons.Info(t.Context())
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == last {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer after 15s: %d pending, %d unacked, ack floor %d; want 0, 0, %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream, last)
		}
		<-tick.C
	}
}

func (e *env) streamMsgs(t *testing.T, kind string) uint64 {
	t.Helper()
	s, err := e.bus.JetStream().Stream(t.Context(), e.bus.StreamName(kind))
	if err != nil {
		t.Fatalf("stream %s: %v", kind, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", kind, err)
	}
	return info.State.Msgs
}

func decodeDLQ(t *testing.T, m *nats.Msg) ticket.DeadLetter {
	t.Helper()
	var d ticket.DeadLetter
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("decode dead letter %s: %v", m.Data, err)
	}
	return d
}

func TestGoodTicketIsRoutedAndAcked(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	routedCh := e.subscribe(t, "deskrelay.routed.>")
	m := NewMetrics(nil)
	run(t, e.processor(t, doer, toL2Portal, nil, m))

	tk := goodTicket("INC100")
	if err := e.bus.Ingest(t.Context(), tk); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	msg := receive(t, routedCh, "routed message")
	if msg.Subject != "deskrelay.routed.l2.portal" {
		t.Errorf("routed subject = %q, want deskrelay.routed.l2.portal", msg.Subject)
	}
	for h, want := range map[string]string{
		ticket.HeaderTicketID: "INC100",
		ticket.HeaderProfile:  "doer",
		ticket.HeaderTier:     "l2",
		ticket.HeaderChannel:  "portal",
		ticket.HeaderPriority: "3",
		ticket.HeaderSchema:   ticket.RoutedSchema,
		nats.MsgIdHdr:         "routed:" + tk.MsgID(),
	} {
		if got := msg.Header.Get(h); got != want {
			t.Errorf("routed header %s = %q, want %q", h, got, want)
		}
	}
	var r ticket.Routed
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatalf("decode routed: %v", err)
	}
	if r.Schema != ticket.RoutedSchema || r.Ticket.ID != "INC100" || !r.RoutedAt.Equal(fixedNow) || r.Profile.Name != ticket.Doer {
		t.Errorf("routed = %+v, want schema %s, ticket INC100, doer, routed_at %s", r, ticket.RoutedSchema, fixedNow)
	}
	info := e.waitAcked(t)
	if info.AckFloor.Stream != 1 {
		t.Errorf("consumer ack floor = %d, want 1", info.AckFloor.Stream)
	}
	if got := testutil.ToFloat64(m.routed.WithLabelValues("l2", "portal", "doer")); got != 1 {
		t.Errorf("deskrelay_routed_total{l2,portal,doer} = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.latency); got != 1 {
		t.Errorf("deskrelay_ingest_to_routed_seconds series = %d, want 1", got)
	}
}

func TestPermanentFailuresGoToTheDeadLetters(t *testing.T) {
	noRoute := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
		return ticket.Routing{}, errors.New("no rule matched and the root has no tier")
	})
	panicky := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) { panic("nil map in rule") })
	panickyEnricher := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) { panic("bad cache entry") })
	for _, tt := range []struct {
		name     string
		payload  []byte
		enr      Enricher
		rt       Router
		reason   string
		errText  string
		ticketID string
		b64      bool   // payload is not JSON
		panicked string // stage whose panic was recovered, if any
	}{
		{"a payload that is not JSON is a decode dead letter", []byte("{not json"), doer, toL2Portal, ticket.ReasonDecode, "not a ticket", "", true, ""},
		{"a JSON array is a decode dead letter", []byte(`[1,2]`), doer, toL2Portal, ticket.ReasonDecode, "not a ticket", "", false, ""},
		{"a ticket without title is an invalid dead letter", []byte(`{"id":"INC5","source":"zendesk"}`), doer, toL2Portal, ticket.ReasonInvalid, "title: is required", "INC5", false, ""},
		{"a router error is a routing dead letter", mustJSON(t, goodTicket("INC6")), doer, noRoute, ticket.ReasonRouting, "no rule matched", "INC6", false, ""},
		{"a router panic is a routing dead letter", mustJSON(t, goodTicket("INC7")), doer, panicky, ticket.ReasonRouting, "panic in route: nil map in rule", "INC7", false, StageRoute},
		{"an enricher panic is an enrichment dead letter", mustJSON(t, goodTicket("INC8")), panickyEnricher, toL2Portal, ticket.ReasonEnrichment, "panic in enrich: bad cache entry", "INC8", false, StageEnrich},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, config.Pipeline{})
			dlqCh := e.subscribe(t, "deskrelay.dlq.>")
			m := NewMetrics(nil)
			run(t, e.processor(t, tt.enr, tt.rt, nil, m))
			if _, err := e.bus.JetStream().Publish(t.Context(), "deskrelay.ingest.zendesk", tt.payload, jetstream.WithMsgID("zendesk:raw:1")); err != nil {
				t.Fatalf("publish ingest: %v", err)
			}
			msg := receive(t, dlqCh, "dead letter")
			if want := "deskrelay.dlq." + tt.reason; msg.Subject != want {
				t.Errorf("dead letter subject = %q, want %q", msg.Subject, want)
			}
			if got := msg.Header.Get(nats.MsgIdHdr); got != "dlq:zendesk:raw:1" {
				t.Errorf("dead letter Nats-Msg-Id = %q, want dlq:zendesk:raw:1", got)
			}
			d := decodeDLQ(t, msg)
			if d.Reason != tt.reason || !strings.Contains(d.Error, tt.errText) || d.Source != "zendesk" ||
				d.TicketID != tt.ticketID || d.Deliveries != 1 || d.Subject != "deskrelay.ingest.zendesk" {
				t.Errorf("dead letter = reason %q, error %q, source %q, ticket %q, deliveries %d, subject %q; want %q, containing %q, zendesk, %q, 1, deskrelay.ingest.zendesk",
					d.Reason, d.Error, d.Source, d.TicketID, d.Deliveries, d.Subject, tt.reason, tt.errText, tt.ticketID)
			}
			gotPayload := []byte(d.Payload)
			if tt.b64 {
				gotPayload = d.PayloadBase64
			}
			if string(gotPayload) != string(tt.payload) {
				t.Errorf("dead letter payload = %q, want the original %q", gotPayload, tt.payload)
			}
			e.waitAcked(t)
			if got := testutil.ToFloat64(m.dlq.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("deskrelay_dlq_total{reason=%q} = %v, want 1", tt.reason, got)
			}
			if n := e.streamMsgs(t, bus.KindRouted); n != 0 {
				t.Errorf("routed stream holds %d messages, want 0", n)
			}
			if tt.panicked != "" {
				if got := testutil.ToFloat64(m.panics.WithLabelValues(tt.panicked)); got != 1 {
					t.Errorf("deskrelay_pipeline_panics_total{stage=%q} = %v, want 1", tt.panicked, got)
				}
			}
		})
	}
}

// TestUnpublishableRoutedMessageIsDeadLettered plays a ticket stored
// close to max_payload (by an older deskrelay or another producer): its
// routed message can never be published, so it goes to the routing dead
// letters at once, with its payload when that fits and a reference to the
// ingest message when it does not.
func TestUnpublishableRoutedMessageIsDeadLettered(t *testing.T) {
	for _, tt := range []struct {
		name       string
		slack      int // bytes the ingest payload leaves under max_payload
		extraHints int // bytes of hints the router adds
		withRef    bool
	}{
		{"a ticket near max_payload is dead-lettered with a reference", 400, 0, true},
		{"a ticket whose hints overflow is dead-lettered with its payload", 100 << 10, 200 << 10, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, config.Pipeline{})
			dlqCh := e.subscribe(t, "deskrelay.dlq.>")
			big := routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
				r, _ := toL2Portal(nil, nil)
				r.Hints.Extra = map[string]string{"script": strings.Repeat("h", tt.extraHints)}
				return r, nil
			})
			m := NewMetrics(nil)
			run(t, e.processor(t, doer, big, nil, m))

			tk := goodTicket("INC40")
			size := int(e.nc.MaxPayload()) - tt.slack
			tk.Description = strings.Repeat("d", size-len(mustJSON(t, tk))-len(`,"description":""`))
			payload := mustJSON(t, tk)
			ack, err := e.bus.JetStream().Publish(t.Context(), "deskrelay.ingest.snow-prod", payload, jetstream.WithMsgID(tk.MsgID()))
			if err != nil {
				t.Fatalf("publish %d-byte ticket to ingest: %v", len(payload), err)
			}

			msg := receive(t, dlqCh, "dead letter")
			d := decodeDLQ(t, msg)
			if msg.Subject != "deskrelay.dlq.routing" || d.Deliveries != 1 || d.TicketID != "INC40" ||
				!strings.Contains(d.Error, "publish routed") || !strings.Contains(d.Error, nats.ErrMaxPayload.Error()) {
				t.Errorf("dead letter on %s = deliveries %d, ticket %q, error %q; want deskrelay.dlq.routing, 1, INC40, the max payload error",
					msg.Subject, d.Deliveries, d.TicketID, d.Error)
			}
			ref := fmt.Sprintf("; payload of %d bytes left out (too large for a dead letter): message %d of stream DESKRELAY_INGEST", len(payload), ack.Sequence)
			switch {
			case tt.withRef && (len(d.Payload) != 0 || !strings.HasSuffix(d.Error, ref)):
				t.Errorf("dead letter payload %d bytes, error %q; want no payload and the error ending in %q", len(d.Payload), d.Error, ref)
			case !tt.withRef && string(d.Payload) != string(payload):
				t.Errorf("dead letter payload %d bytes, want the original %d", len(d.Payload), len(payload))
			}
			e.waitAcked(t)
			if n := e.streamMsgs(t, bus.KindRouted); n != 0 {
				t.Errorf("routed stream holds %d messages, want 0", n)
			}
			if got := testutil.ToFloat64(m.retries.WithLabelValues(StagePublishRouted)); got != 0 {
				t.Errorf("deskrelay_pipeline_retries_total{stage=publish_routed} = %v, want 0 (not transient)", got)
			}
			if got := testutil.ToFloat64(m.dlq.WithLabelValues(ticket.ReasonRouting)); got != 1 {
				t.Errorf("deskrelay_dlq_total{reason=routing} = %v, want 1", got)
			}
		})
	}
}

func TestPermanentPublishErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"over max_payload is permanent", fmt.Errorf("publish x: %w", nats.ErrMaxPayload), true},
		{"over the stream's max_msg_size is permanent", fmt.Errorf("publish x: nats: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum}), true},
		{"a tier that is not a subject token is permanent", fmt.Errorf("bus: publish routed: %w: %q", bus.ErrInvalidToken, "l 2"), true},
		{"a message that cannot be encoded is permanent", fmt.Errorf("bus: publish routed: %w", &bus.InputError{Err: errors.New("json: unsupported value")}), true},
		{"a timeout is transient", fmt.Errorf("publish x: %w", context.DeadlineExceeded), false},
		{"a lost connection is transient", fmt.Errorf("publish x: %w", bus.ErrNotConnected), false},
		{"no stream answering is transient", fmt.Errorf("publish x: %w", jetstream.ErrNoStreamResponse), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := permanentPublish(tt.err); got != tt.want {
				t.Errorf("permanentPublish(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFailingEnricherEndsInMaxDeliver(t *testing.T) {
	e := newEnv(t, config.Pipeline{MaxDeliver: 3, RetryDelay: 10 * time.Millisecond})
	dlqCh := e.subscribe(t, "deskrelay.dlq.>")
	var calls atomic.Int32
	down := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) {
		calls.Add(1)
		return ticket.Profile{}, errors.New("directory api: 503")
	})
	m := NewMetrics(nil)
	run(t, e.processor(t, down, toL2Portal, nil, m))
	if err := e.bus.Ingest(t.Context(), goodTicket("INC9")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	msg := receive(t, dlqCh, "dead letter")
	d := decodeDLQ(t, msg)
	if msg.Subject != "deskrelay.dlq.max_deliver" || d.Deliveries != 3 || !strings.Contains(d.Error, "directory api: 503") || d.TicketID != "INC9" {
		t.Errorf("dead letter on %s = deliveries %d, error %q, ticket %q; want deskrelay.dlq.max_deliver, 3, the lookup error, INC9",
			msg.Subject, d.Deliveries, d.Error, d.TicketID)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("enricher called %d times, want 3", got)
	}
	if info := e.waitAcked(t); info.AckFloor.Stream != 1 {
		t.Errorf("consumer ack floor = %d, want 1", info.AckFloor.Stream)
	}
	if got := testutil.ToFloat64(m.retries.WithLabelValues(StageEnrich)); got != 2 {
		t.Errorf("deskrelay_pipeline_retries_total{stage=enrich} = %v, want 2", got)
	}
}

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	for _, tt := range []struct {
		name      string
		base      time.Duration
		delivered uint64
		want      time.Duration
	}{
		{"the first failure waits the base delay", 2 * time.Second, 1, 2 * time.Second},
		{"the second failure waits twice the base", 2 * time.Second, 2, 4 * time.Second},
		{"the fifth failure waits 16 times the base", 2 * time.Second, 5, 32 * time.Second},
		{"the eighth failure waits 4m16s", 2 * time.Second, 8, 256 * time.Second},
		{"the ninth failure is capped", 2 * time.Second, 9, MaxRetryDelay},
		{"a huge delivery count does not overflow", 2 * time.Second, 1 << 40, MaxRetryDelay},
		{"a base above the cap is capped", time.Hour, 1, MaxRetryDelay},
		{"delivery 0 (unknown) waits the base delay", time.Second, 0, time.Second},
		{"no base, no delay", 0, 3, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryDelay(tt.base, tt.delivered); got != tt.want {
				t.Errorf("RetryDelay(%s, %d) = %s, want %s", tt.base, tt.delivered, got, tt.want)
			}
		})
	}
}

func TestIngestConsumerRedeliversWithoutServerLimit(t *testing.T) {
	e := newEnv(t, config.Pipeline{MaxDeliver: 3})
	if got := e.cons.CachedInfo().Config.MaxDeliver; got != -1 {
		t.Errorf("consumer MaxDeliver = %d, want -1 (the processor counts max_deliver)", got)
	}
	// A consumer left by an older deskrelay with the server counting.
	durable := "older-deskrelay"
	_, err := e.bus.JetStream().CreateConsumer(t.Context(), e.bus.StreamName(bus.KindIngest), jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 5, FilterSubject: "deskrelay.ingest.>",
	})
	if err != nil {
		t.Fatalf("create the older consumer: %v", err)
	}
	cons, err := e.bus.IngestConsumer(t.Context(), config.Pipeline{Durable: durable})
	if err != nil {
		t.Fatalf("IngestConsumer over the older consumer: %v", err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	if info.Config.MaxDeliver != -1 {
		t.Errorf("updated consumer MaxDeliver = %d, want -1", info.Config.MaxDeliver)
	}
}

// flakyDLQ fails the first n dead-letter publishes, as a DLQ stream
// without a leader would.
type flakyDLQ struct {
	Publisher
	n     int32
	calls atomic.Int32
}

func (f *flakyDLQ) PublishDLQ(ctx context.Context, msgID string, d *ticket.DeadLetter) error {
	if f.calls.Add(1) <= f.n {
		return fmt.Errorf("publish deskrelay.dlq.%s: %w", d.Reason, nats.ErrNoResponders)
	}
	return f.Publisher.PublishDLQ(ctx, msgID, d)
}

// TestFailedDeadLetterOnLastDeliveryIsRetried checks that a message whose
// dead letter cannot be stored on its max_deliver-th delivery is nak'd and
// delivered again until the dead letter is stored, instead of staying
// unacknowledged once the server stops redelivering.
func TestFailedDeadLetterOnLastDeliveryIsRetried(t *testing.T) {
	e := newEnv(t, config.Pipeline{MaxDeliver: 2, RetryDelay: 10 * time.Millisecond})
	dlqCh := e.subscribe(t, "deskrelay.dlq.>")
	down := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) {
		return ticket.Profile{}, errors.New("directory api: 503")
	})
	pub := &flakyDLQ{Publisher: e.bus, n: 2}
	m := NewMetrics(nil)
	run(t, e.processor(t, down, toL2Portal, pub, m))
	if err := e.bus.Ingest(t.Context(), goodTicket("INC14")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	msg := receive(t, dlqCh, "dead letter")
	d := decodeDLQ(t, msg)
	// Delivery 1 is retried; 2 and 3 fail to store the dead letter; 4 does.
	if msg.Subject != "deskrelay.dlq.max_deliver" || d.Deliveries != 4 || !strings.Contains(d.Error, "directory api: 503") {
		t.Errorf("dead letter on %s = deliveries %d, error %q; want deskrelay.dlq.max_deliver, 4, the lookup error", msg.Subject, d.Deliveries, d.Error)
	}
	if got := pub.calls.Load(); got != 3 {
		t.Errorf("PublishDLQ called %d times, want 3", got)
	}
	e.waitAcked(t)
	if got := testutil.ToFloat64(m.dlq.WithLabelValues(ticket.ReasonMaxDeliver)); got != 1 {
		t.Errorf("deskrelay_dlq_total{reason=max_deliver} = %v, want 1", got)
	}
	for stage, want := range map[string]uint64{StagePublishDLQ: 3, StagePublishRouted: 0} {
		if got := histogramCount(t, m.stage, stage); got != want {
			t.Errorf("deskrelay_stage_duration_seconds{stage=%q} count = %d, want %d", stage, got, want)
		}
	}
	if got := testutil.ToFloat64(m.retries.WithLabelValues(StagePublishDLQ)); got != 2 {
		t.Errorf("deskrelay_pipeline_retries_total{stage=publish_dlq} = %v, want 2", got)
	}
}

// histogramCount returns the number of observations of h{stage}.
func histogramCount(t *testing.T, h *prometheus.HistogramVec, stage string) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(h); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no series stage=%q", stage)
	return 0
}

// TestCrashBetweenPublishAndAck plays a processor that published the
// routed message and died before acking: the redelivery must not publish a
// second routed message.
func TestCrashBetweenPublishAndAck(t *testing.T) {
	e := newEnv(t, config.Pipeline{AckWait: time.Second})
	if err := e.bus.Ingest(t.Context(), goodTicket("INC10")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	// The doomed processor: its publisher stores the routed message, then
	// the goroutine dies (runtime.Goexit) before anything can ack or nak.
	batch, err := e.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	first, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("Fetch returned no message: %v", batch.Error())
	}
	doomed := e.processor(t, doer, toL2Portal, publishThenDie{e.bus}, nil)
	died := make(chan struct{})
	go func() {
		defer close(died)
		meta, err := first.Metadata()
		if err != nil {
			t.Errorf("Metadata: %v", err)
			return
		}
		doomed.handle(t.Context(), t.Context(), make(chan struct{}, 1), first, meta)
	}()
	<-died
	if n := e.streamMsgs(t, bus.KindRouted); n != 1 {
		t.Fatalf("routed stream holds %d messages after the doomed attempt, want 1", n)
	}
	if info, err := e.cons.Info(t.Context()); err != nil || info.NumAckPending != 1 {
		t.Fatalf("consumer info = %+v, %v; want the message unacked", info, err)
	}

	// A healthy processor gets the redelivery after ack_wait.
	run(t, e.processor(t, doer, toL2Portal, nil, nil))
	info := e.waitAckFloor(t, 1)
	if n := e.streamMsgs(t, bus.KindRouted); n != 1 {
		t.Errorf("routed stream holds %d messages after the redelivery, want exactly 1", n)
	}
	if info.NumAckPending != 0 {
		t.Errorf("consumer has %d unacked messages, want 0", info.NumAckPending)
	}
}

// publishThenDie stores the routed message, then ends its goroutine as a
// killed process would: no error comes back, no ack and no nak are sent.
type publishThenDie struct{ Publisher }

func (p publishThenDie) PublishRouted(ctx context.Context, msgID string, r *ticket.Routed) error {
	if err := p.Publisher.PublishRouted(ctx, msgID, r); err != nil {
		return err
	}
	runtime.Goexit()
	return nil
}

// waitAckFloor polls the consumer until its ack floor reaches seq.
func (e *env) waitAckFloor(t *testing.T, seq uint64) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := e.cons.Info(t.Context())
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		if info.AckFloor.Stream >= seq {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer ack floor = %d after 15s, want %d (%d unacked, %d redelivered)", info.AckFloor.Stream, seq, info.NumAckPending, info.NumRedelivered)
		}
		<-tick.C
	}
}

func TestGracefulStopFinishesInFlight(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	entered := make(chan struct{})
	release := make(chan struct{})
	var ctxErr atomic.Value
	slow := enricherFunc(func(ctx context.Context, c ticket.Caller) (ticket.Profile, error) {
		close(entered)
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return ticket.Profile{Name: ticket.Supported, Source: "survey"}, nil
	})
	cancel, wait := start(t, e.processor(t, slow, toL2Portal, nil, nil))
	if err := e.bus.Ingest(t.Context(), goodTicket("INC11")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("enricher not called within 15s")
	}
	cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	// Run cannot return while the enricher holds the message; a Run that
	// did not wait would show up here (this is a check, not a wait).
	select {
	case err := <-stopped:
		t.Fatalf("Run returned %v while a message was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v, want nil after draining", err)
	}
	if got := ctxErr.Load(); got != "<nil>" {
		t.Errorf("in-flight handler's ctx err = %v, want nil during the drain", got)
	}
	if n := e.streamMsgs(t, bus.KindRouted); n != 1 {
		t.Errorf("routed stream holds %d messages, want 1", n)
	}
	e.waitAcked(t)
}

func TestSetRouterSwapsForNextMessages(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	routedCh := e.subscribe(t, "deskrelay.routed.>")
	p := e.processor(t, doer, toL2Portal, nil, nil)
	run(t, p)
	if err := e.bus.Ingest(t.Context(), goodTicket("INC12")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	if got := receive(t, routedCh, "first routed message").Subject; got != "deskrelay.routed.l2.portal" {
		t.Errorf("first routed subject = %q, want deskrelay.routed.l2.portal", got)
	}
	p.SetRouter(routerFunc(func(*ticket.Ticket, *ticket.Profile) (ticket.Routing, error) {
		return ticket.Routing{Tier: ticket.TierDesktop, Channel: ticket.ChannelWalkIn, Priority: 4}, nil
	}))
	if err := e.bus.Ingest(t.Context(), goodTicket("INC13")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	if got := receive(t, routedCh, "second routed message").Subject; got != "deskrelay.routed.desktop.walk_in" {
		t.Errorf("second routed subject = %q, want deskrelay.routed.desktop.walk_in", got)
	}
}

func TestInvalidOptionFailsRun(t *testing.T) {
	e := newEnv(t, config.Pipeline{})
	p := New(e.cons, doer, toL2Portal, e.bus, e.cfg, zaptest.NewLogger(t), nil, WithDrainTimeout(-time.Second), WithClock(nil), WithConnection(nil))
	err := p.Run(t.Context())
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "drain timeout must be > 0, got -1s") || !strings.Contains(err.Error(), "clock") || !strings.Contains(err.Error(), "connection must not be nil") {
		t.Errorf("Run with bad options = %v, want ErrInvalidOption naming the drain timeout, the clock and the connection", err)
	}
}

func TestMetricsLint(t *testing.T) {
	m := NewMetrics(nil)
	for _, c := range []prometheus.Collector{m.routed, m.dlq, m.latency, m.stage, m.retries, m.panics, m.consumeErrors, m.inlineRouted, m.inlineFallbacksVec} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatalf("CollectAndLint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("metric %s: %s", p.Metric, p.Text)
		}
	}
	if got := testutil.CollectAndCount(m.stage); got != 5 {
		t.Errorf("deskrelay_stage_duration_seconds series = %d, want 5 (decode, enrich, route, publish_routed, publish_dlq)", got)
	}
	if got := testutil.CollectAndCount(m.dlq); got != len(ticket.Reasons) {
		t.Errorf("deskrelay_dlq_total series = %d, want one per reason (%d)", got, len(ticket.Reasons))
	}
}

// TestStopHandsBackFetchedMessages checks that a message fetched but not
// started when Run stops is nak'd, so another processor gets it at once
// rather than after ack_wait (30s here).
func TestStopHandsBackFetchedMessages(t *testing.T) {
	e := newEnv(t, config.Pipeline{Workers: 1, AckWait: 30 * time.Second})
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	blocking := enricherFunc(func(ctx context.Context, c ticket.Caller) (ticket.Profile, error) {
		entered <- struct{}{}
		<-release
		return ticket.Profile{Name: ticket.Trier, Source: "survey"}, nil
	})
	cancel, wait := start(t, e.processor(t, blocking, toL2Portal, nil, nil))
	for _, id := range []string{"INC20", "INC21", "INC22"} {
		if err := e.bus.Ingest(t.Context(), goodTicket(id)); err != nil {
			t.Fatalf("Ingest(%s): %v", id, err)
		}
	}
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("enricher not called within 15s")
	}
	cancel() // before the release: no further message may start
	close(release)
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := len(entered); got != 0 {
		t.Errorf("the stopping processor started %d more messages, want 0", got)
	}

	run(t, e.processor(t, doer, toL2Portal, nil, nil))
	e.waitAcked(t)
	if n := e.streamMsgs(t, bus.KindRouted); n != 3 {
		t.Errorf("routed stream holds %d messages, want 3", n)
	}
}

// TestBacklogCountsUndeliveredMessages checks that Backlog reports the
// messages the consumer has not delivered yet while the processor is
// behind, and 0 once it has caught up.
func TestBacklogCountsUndeliveredMessages(t *testing.T) {
	e := newEnv(t, config.Pipeline{Workers: 1})
	for _, id := range []string{"INC30", "INC31", "INC32"} {
		if err := e.bus.Ingest(t.Context(), goodTicket(id)); err != nil {
			t.Fatalf("Ingest(%s): %v", id, err)
		}
	}
	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	blocking := enricherFunc(func(context.Context, ticket.Caller) (ticket.Profile, error) {
		entered <- struct{}{}
		<-release
		return ticket.Profile{Name: ticket.Doer, Source: "survey"}, nil
	})
	// One message at a time: the second is not taken while the first blocks.
	p := New(e.cons, blocking, toL2Portal, e.bus, e.cfg, zaptest.NewLogger(t), nil, WithMaxPending(1))
	// With one message per pull, nats.go's iterator can miss sending the
	// next pull request on a loaded machine and recovers only when the
	// current one expires (30s by default): short pulls keep that within
	// waitAcked's time.
	p.pullOpts = fastHeartbeat
	if got := p.Backlog(); got != 0 {
		t.Errorf("Backlog before the first delivery = %d, want 0", got)
	}
	run(t, p)
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("enricher not called within 15s")
	}
	// The server may already have handed the next message to the client's
	// pull buffer: it is then no longer pending for the consumer.
	if got := p.Backlog(); got < 1 || got > 2 {
		t.Errorf("Backlog while the first of 3 messages is processed = %d, want 1 or 2", got)
	}
	close(release)
	e.waitAcked(t)
	if got := p.Backlog(); got != 0 {
		t.Errorf("Backlog after all were processed = %d, want 0", got)
	}
}
