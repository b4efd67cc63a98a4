package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/ticket"
)

// Enricher finds the profile of the ticket's caller; it sees the whole
// ticket, so that it can infer a profile from it or remember who resolved
// it. An error is transient: the message is retried after the retry delay.
type Enricher interface {
	Lookup(ctx context.Context, t *ticket.Ticket) (ticket.Profile, error)
}

// Router decides tier, channel, priority and hints. It does no I/O; an
// error is permanent and sends the ticket to the "routing" dead letters.
type Router interface {
	Route(tk *ticket.Ticket, p *ticket.Profile) (ticket.Routing, error)
}

// Publisher stores routed messages and dead letters; *bus.Bus is one. A
// nil error means the message is stored (or was already, under msgID).
type Publisher interface {
	PublishRouted(ctx context.Context, msgID string, r *ticket.Routed) error
	PublishDLQ(ctx context.Context, msgID string, d *ticket.DeadLetter) error
}

// ErrInvalidOption wraps the error of an option given a bad value.
var ErrInvalidOption = errors.New("invalid pipeline option")

// ErrNotReady is returned by [Processor.RouteNow] before the channel of
// [WithReady] is closed.
var ErrNotReady = errors.New("not ready to route: the profile directory is still loading")

// DefaultDrainTimeout is how long Run lets in-flight messages finish after
// its ctx ended.
const DefaultDrainTimeout = 10 * time.Second

// DefaultMaxPending is how many messages Run holds at once by default:
// fetched and buffered, being processed, or waiting for the PubAck of
// their routed message (see [WithMaxPending]). Waiting for a PubAck takes
// no worker, so this, not the number of workers, bounds the round trips
// in flight; it stays well under the consumer's max_ack_pending (1000 by
// default), which the server enforces anyway.
const DefaultMaxPending = 256

// MaxRetryDelay caps the delay before a transiently failed message is
// redelivered; see [RetryDelay].
const MaxRetryDelay = 5 * time.Minute

// RetryDelay returns how long a message that failed on its delivered-th
// delivery (1 for the first) waits before the next one: base ×
// 2^(delivered−1), capped at [MaxRetryDelay]. With the default base (2s)
// and max_deliver (5) the four retries wait 2+4+8+16 = 30s in all; with
// max_deliver 10 about 11 minutes (2s … 4m16s, then 5m), which rides out a
// JetStream leader election, a NATS restart and most directory outages.
func RetryDelay(base time.Duration, delivered uint64) time.Duration {
	return backoff(base, MaxRetryDelay, delivered)
}

// backoff returns base × 2^(n−1), at most ceiling; n 0 counts as 1.
func backoff(base, ceiling time.Duration, n uint64) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := uint64(1); i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Option configures a Processor; see [WithClock], [WithDrainTimeout].
type Option func(*Processor) error

// WithClock sets the clock used for RoutedAt, FailedAt and latencies.
func WithClock(now func() time.Time) Option {
	return func(p *Processor) error {
		if now == nil {
			return fmt.Errorf("%w: clock must not be nil", ErrInvalidOption)
		}
		p.now = now
		return nil
	}
}

// WithDrainTimeout sets how long Run waits for in-flight messages after
// its ctx ended before cancelling their work (default
// [DefaultDrainTimeout]).
func WithDrainTimeout(d time.Duration) Option {
	return func(p *Processor) error {
		if d <= 0 {
			return fmt.Errorf("%w: drain timeout must be > 0, got %s", ErrInvalidOption, d)
		}
		p.drainTimeout = d
		return nil
	}
}

// WithMaxPending sets how many messages Run holds at once (default
// [DefaultMaxPending]): it is the size of the pull batch and the bound on
// messages whose routed publish awaits its PubAck. Values above the
// consumer's max_ack_pending bring nothing: the server delivers no more.
func WithMaxPending(n int) Option {
	return func(p *Processor) error {
		if n < 1 {
			return fmt.Errorf("%w: max pending must be at least 1, got %d", ErrInvalidOption, n)
		}
		p.maxPending = n
		return nil
	}
}

// WithReady makes [Processor.RouteNow] refuse, with [ErrNotReady], until
// ready is closed: until the profile directory is loaded every caller
// would look unknown, and the ingest stream keeps those tickets for Run,
// which its caller starts only then.
func WithReady(ready <-chan struct{}) Option {
	return func(p *Processor) error {
		if ready == nil {
			return fmt.Errorf("%w: ready channel must not be nil", ErrInvalidOption)
		}
		p.ready = ready
		return nil
	}
}

// WithConnection has Run follow the state of nc, the connection the
// consumer uses (see [link]). Run then opens a message iterator only
// while nc is connected: the client library leaves an iterator opened
// during a reconnect waiting for its missed heartbeats (30s). And when nc
// goes down, the messages in flight are given up at once and nak'd when
// it is back, instead of waiting for a PubAck that cannot come until the
// ack wait. Without nc, Run relies on heartbeats and the ack wait alone.
func WithConnection(nc *nats.Conn) Option {
	return func(p *Processor) error {
		if nc == nil {
			return fmt.Errorf("%w: connection must not be nil", ErrInvalidOption)
		}
		p.nc = nc
		return nil
	}
}

// Processor is the processing stage. Run it once; SetRouter may be called
// concurrently with Run.
type Processor struct {
	cons         jetstream.Consumer
	enr          Enricher
	router       atomic.Pointer[routerRef]
	pub          Publisher
	cfg          config.Pipeline
	maxDeliver   int
	log          *zap.Logger
	m            *Metrics
	now          func() time.Time
	drainTimeout time.Duration
	maxPending   int
	backlog      atomic.Uint64   // NumPending of the last delivery
	ready        <-chan struct{} // RouteNow refuses until closed; nil: ready
	nc           *nats.Conn      // the consumer's connection, if given
	link         *link           // follows nc while Run runs
	err          error           // from an option, returned by Run
	// pullOpts are added to the iterator's options (tests shorten the
	// heartbeat).
	pullOpts []jetstream.PullMessagesOpt
}

type routerRef struct{ r Router }

// New returns a Processor reading cons. Zero values of cfg take the
// defaults of [bus.DefaultPipeline] (4 workers, retry delay 2s, max
// deliver 5, ack wait 30s); the consumer's own AckWait, when its cached
// info has it, wins over cfg because the server enforces it.
//
// cfg.MaxDeliver is counted here, not by the server: cons should redeliver
// without limit (MaxDeliver -1, as [bus.Bus.IngestConsumer] makes it).
// A message still failing on its cfg.MaxDeliver-th delivery goes to the
// "max_deliver" dead letters; a negative cfg.MaxDeliver retries for ever.
// m may be nil. An invalid option makes Run fail with [ErrInvalidOption].
func New(cons jetstream.Consumer, enr Enricher, rt Router, pub Publisher, cfg config.Pipeline, log *zap.Logger, m *Metrics, opts ...Option) *Processor {
	cfg = bus.PipelineWithDefaults(cfg)
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		cfg.AckWait = info.Config.AckWait
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	p := &Processor{
		cons:         cons,
		enr:          enr,
		pub:          pub,
		cfg:          cfg,
		maxDeliver:   cfg.MaxDeliver,
		log:          log.Named("pipeline"),
		m:            m,
		now:          time.Now,
		drainTimeout: DefaultDrainTimeout,
		maxPending:   DefaultMaxPending,
	}
	p.router.Store(&routerRef{rt})
	for _, o := range opts {
		if err := o(p); err != nil {
			p.err = errors.Join(p.err, err)
		}
	}
	return p
}

// Backlog returns how many ingest messages were waiting for the consumer,
// not yet delivered, when the last message was taken: how far the
// processing stage is behind. It is 0 before the first delivery and keeps
// its last value while nothing is delivered. Safe for concurrent use; the
// ingress refuses webhooks while it is too high
// (connectors.Ingress.SetMaxBacklog).
func (p *Processor) Backlog() uint64 { return p.backlog.Load() }

// SetRouter swaps the router used for the next messages (hot reload of the
// routing rules). Messages in flight finish with the router they started
// with.
func (p *Processor) SetRouter(rt Router) { p.router.Store(&routerRef{rt}) }

// Consume backoff: after an error reading the consumer Run waits
// consumeBackoffMin, doubling per consecutive error up to
// consumeBackoffMax, before it asks for a new iterator; a received message
// resets it.
const (
	consumeBackoffMin = 100 * time.Millisecond
	consumeBackoffMax = 30 * time.Second
)

// Run consumes the ingest stream until ctx ends. It pulls up to the max
// pending count ([WithMaxPending]) of messages at a time; cfg.Workers of
// them at most are decoded, enriched and routed at once, and each then
// waits for the PubAck of its routed message without holding a worker, so
// that many routed publishes are in flight while the workers go on. Then it stops fetching, naks the messages fetched but not
// started (they are redelivered at once), lets the in-flight ones finish
// and ack or nak (at most the drain timeout, after which their context is
// cancelled), and returns nil.
//
// Run outlives NATS stalls, disconnects, server restarts and leader
// elections: an error reading the consumer (no heartbeat from a stalled
// server, a failed pull request) is logged as a warning, counted in
// deskrelay_pipeline_consume_errors_total, and followed, after a backoff
// of 100ms doubling up to 30s, by a new message iterator; with
// [WithConnection] an iterator is opened only while the connection is up,
// so that Run resumes at once after a reconnect, and a message in flight
// when the connection goes down is retried after the retry delay, not the
// ack wait. Run returns an
// error, prefixed "pipeline:", only when it cannot go on: an invalid
// option ([ErrInvalidOption]), a closed connection
// ([nats.ErrConnectionClosed] or [jetstream.ErrConnectionClosed]), or a
// consumer that was deleted or refuses the pull
// ([jetstream.ErrConsumerDeleted], [jetstream.ErrConsumerNotFound],
// [jetstream.ErrBadRequest]); recreating a deleted consumer is the
// caller's business ([bus.Bus.IngestConsumer]).
func (p *Processor) Run(ctx context.Context) error {
	if p.err != nil {
		return fmt.Errorf("pipeline: %w", p.err)
	}
	// Handlers run under workCtx, which outlives ctx by the drain timeout
	// so that in-flight messages can publish and ack.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	p.link = startLink(workCtx, p.nc)
	defer p.link.stop()
	var wg sync.WaitGroup
	slots := make(chan struct{}, p.maxPending)
	workers := make(chan struct{}, p.cfg.Workers)
	p.log.Info("pipeline started", zap.String("consumer", p.consumerName()), zap.Int("workers", p.cfg.Workers),
		zap.Int("max_pending", p.maxPending), zap.Int("max_deliver", p.maxDeliver))

	runErr := p.consume(ctx, workCtx, &wg, slots, workers)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(p.drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		p.log.Warn("in-flight messages did not finish in time, cancelling them", zap.Duration("duration", p.drainTimeout))
		cancelWork()
		<-done
	}
	if runErr != nil {
		return runErr
	}
	p.log.Info("pipeline stopped")
	return nil
}

// consume reads the consumer through one message iterator after another
// until ctx ends (nil) or an error leaves nothing to retry.
func (p *Processor) consume(ctx, workCtx context.Context, wg *sync.WaitGroup, slots, workers chan struct{}) error {
	opts := append([]jetstream.PullMessagesOpt{jetstream.PullMaxMessages(p.maxPending)}, p.pullOpts...)
	failures := 0
	for {
		err := p.consumeIterator(ctx, workCtx, wg, slots, workers, opts, &failures)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if !terminal(err) {
			// A pull request sent to a consumer that is gone is not
			// answered at all: ask whether it still exists.
			ictx, cancel := context.WithTimeout(ctx, bus.DefaultPublishTimeout)
			if _, ierr := p.cons.Info(ictx); terminal(ierr) {
				err = ierr
			}
			cancel()
		}
		if terminal(err) {
			return fmt.Errorf("pipeline: consumer %s: %w", p.consumerName(), err)
		}
		failures++
		delay := backoff(consumeBackoffMin, consumeBackoffMax, uint64(failures))
		p.m.consumeErrors.Inc()
		p.log.Warn("reading the ingest consumer failed, resuming after a pause", zap.String("consumer", p.consumerName()),
			zap.Int("attempt", failures), zap.Duration("duration", delay), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// consumeIterator hands the messages of one iterator to handlers. It
// returns nil when ctx ended, else the iterator's error.
func (p *Processor) consumeIterator(ctx, workCtx context.Context, wg *sync.WaitGroup, slots, workers chan struct{}, opts []jetstream.PullMessagesOpt, failures *int) error {
	it, err := p.openIterator(ctx, opts)
	if it == nil {
		return err
	}
	stopDrain := context.AfterFunc(ctx, it.Drain)
	defer stopDrain()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("next message: %w", err)
		}
		*failures = 0
		meta, err := msg.Metadata()
		if err != nil {
			// Not a JetStream delivery: nothing to ack or retry.
			p.log.Error("message without jetstream metadata", zap.String("subject", msg.Subject()), zap.Error(err))
			continue
		}
		if ctx.Err() != nil {
			p.release(msg)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			p.release(msg)
			continue
		}
		if ctx.Err() != nil { // both were ready: stopping wins
			<-slots
			p.release(msg)
			continue
		}
		p.backlog.Store(meta.NumPending) // in delivery order, once taken
		wg.Go(func() {
			defer func() { <-slots }()
			p.handle(ctx, workCtx, workers, msg, meta)
		})
	}
}

// openIterator opens a message iterator once the connection is up, and
// again when the connection went down while it was being opened (see
// [link] for why). It returns a nil iterator when ctx ended (and a
// nil error) or opening failed.
func (p *Processor) openIterator(ctx context.Context, opts []jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	for {
		if !p.link.settle(ctx) {
			return nil, nil
		}
		it, err := p.cons.Messages(opts...)
		if err != nil {
			return nil, fmt.Errorf("open message iterator: %w", err)
		}
		if p.link.connected() {
			return it, nil
		}
		it.Stop()
		p.log.Debug("the connection went down while the message iterator was opened, opening it again once it is back", zap.String("consumer", p.consumerName()))
	}
}

// terminal reports whether err, from reading the consumer, cannot go away
// by retrying.
func terminal(err error) bool {
	for _, target := range []error{
		nats.ErrConnectionClosed, jetstream.ErrConnectionClosed,
		jetstream.ErrConsumerDeleted, jetstream.ErrConsumerNotFound,
		jetstream.ErrBadRequest, jetstream.ErrInvalidOption,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// consumerName returns the consumer's name for logs and errors.
func (p *Processor) consumerName() string {
	if info := p.cons.CachedInfo(); info != nil {
		return info.Name
	}
	return "?"
}

// release hands a fetched but unstarted message back for immediate
// redelivery.
func (p *Processor) release(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		p.log.Warn("nak on shutdown failed; the message is redelivered after ack_wait", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// delivery is one message being handled, or one ticket routed inline
// (msg and meta nil).
type delivery struct {
	msg      jetstream.Msg
	meta     *jetstream.MsgMetadata
	id       string // ingest Nats-Msg-Id, or stream:seq
	source   string
	ticketID string // once decoded
	base     *zap.Logger
	log      *zap.Logger // built by logger on first use
	logTID   bool        // log has the ticket_id field
	// Run's stop and work contexts and handling's deadline (the ack wait
	// counted from the start of the handler) bound a wait for the
	// connection before a nak: it ends when Run stops, or when a Run
	// ended by an error gives up its handlers.
	stop, work, handling context.Context
}

// logger returns the processor's logger with the delivery's fields. It is
// built on first use, not per message: the happy path logs nothing above
// debug, and With on every message cost 5% of the bytes allocated.
func (d *delivery) logger() *zap.Logger {
	switch {
	case d.log != nil:
	case d.meta == nil: // routed inline: no ingest message
		d.log = d.base.With(zap.String("msg_id", d.id), zap.Bool("inline", true))
	default:
		d.log = d.base.With(zap.String("msg_id", d.id), zap.Uint64("seq", d.meta.Sequence.Stream), zap.Uint64("attempt", d.meta.NumDelivered))
	}
	if !d.logTID && d.ticketID != "" {
		d.log, d.logTID = d.log.With(zap.String("ticket_id", d.ticketID)), true
	}
	return d.log
}

// exhausted reports whether d has had its cfg.MaxDeliver deliveries: a
// transient failure now sends it to the dead letters.
func (p *Processor) exhausted(d *delivery) bool {
	return p.maxDeliver > 0 && d.meta.NumDelivered >= uint64(p.maxDeliver)
}

// nakLater naks d for a redelivery after [RetryDelay].
func (p *Processor) nakLater(d *delivery) {
	delay := RetryDelay(p.cfg.RetryDelay, d.meta.NumDelivered)
	err := d.msg.NakWithDelay(delay)
	if err != nil && p.link != nil && d.handling != nil && d.stop.Err() == nil {
		// Nothing is buffered while the connection is down: nak once it
		// is back, within the ack wait and unless Run stops, or the
		// message waits for its whole ack wait.
		deadline, _ := d.handling.Deadline()
		ctx, cancel := context.WithDeadline(d.work, deadline)
		stopWaiting := context.AfterFunc(d.stop, cancel)
		if p.link.waitUp(ctx) {
			err = d.msg.NakWithDelay(delay)
		}
		stopWaiting()
		cancel()
	}
	if err != nil {
		d.logger().Warn("nak failed; the message is redelivered after ack_wait", zap.Error(err))
	}
}

// errPanic marks an error made from a recovered panic.
var errPanic = errors.New("panic")

// guard runs f, turning a panic into an error (logged with its stack and
// counted) so that bad input never kills the stage.
func (p *Processor) guard(d *delivery, stage string, f func() error) (err error) {
	start := p.now()
	defer func() {
		p.m.observeStage(stage, p.now().Sub(start).Seconds())
		if r := recover(); r != nil {
			p.m.panics.WithLabelValues(stage).Inc()
			d.logger().Error("panic while processing message", zap.String("stage", stage),
				zap.Any("panic", r), zap.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%w in %s: %v", errPanic, stage, r)
		}
	}()
	return f()
}

// handle processes msg: it waits for one of workers (or, when stopCtx
// ends first, hands msg back unstarted), decodes, enriches and routes,
// gives the worker back, publishes the routed message and acks msg once
// that publish is acknowledged. ctx is the work context, which outlives
// stopCtx by the drain timeout.
func (p *Processor) handle(stopCtx, ctx context.Context, workers chan struct{}, msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	select {
	case workers <- struct{}{}:
	case <-stopCtx.Done():
		p.release(msg)
		return
	}
	held := true
	done := func() {
		if held {
			held = false
			<-workers
		}
	}
	defer done()
	if stopCtx.Err() != nil { // both were ready: stopping wins
		p.release(msg)
		return
	}
	d := &delivery{msg: msg, meta: meta, source: lastToken(msg.Subject()), base: p.log}
	if d.id = msg.Headers().Get(nats.MsgIdHdr); d.id == "" {
		d.id = fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
	}
	// Cancelled at the ack wait, or when the connection goes down ([link]).
	hctx, cancel := context.WithTimeout(p.link.context(ctx), p.cfg.AckWait)
	defer cancel()
	d.stop, d.work, d.handling = stopCtx, ctx, hctx

	var tk ticket.Ticket
	err := p.guard(d, StageDecode, func() (err error) { tk, err = ticket.Decode(msg.Data()); return err })
	d.ticketID = tk.ID
	var verr *ticket.ValidationError
	switch {
	case err == nil:
	case errors.As(err, &verr):
		p.deadLetter(hctx, d, ticket.ReasonInvalid, tk.ID, err)
		return
	default: // ErrNotTicket or a panic
		p.deadLetter(hctx, d, ticket.ReasonDecode, "", err)
		return
	}

	routed, stage, err := p.decide(hctx, d, &tk)
	switch {
	case err == nil:
	case stage == StageEnrich && !errors.Is(err, errPanic):
		p.retry(ctx, hctx, d, StageEnrich, tk.ID, err)
		return
	case stage == StageEnrich:
		p.deadLetter(hctx, d, ticket.ReasonEnrichment, tk.ID, err)
		return
	default:
		p.deadLetter(hctx, d, ticket.ReasonRouting, tk.ID, err)
		return
	}
	dec, prof := routed.Routing, routed.Profile

	done() // waiting for the PubAck needs no worker
	err = p.guard(d, StagePublishRouted, func() error { return p.pub.PublishRouted(hctx, RoutedMsgID(d.id), routed) })
	if err != nil {
		err = fmt.Errorf("publish routed: %w", err)
		if permanentPublish(err) { // the same message would fail again
			p.deadLetter(hctx, d, ticket.ReasonRouting, tk.ID, err)
			return
		}
		p.retry(ctx, hctx, d, StagePublishRouted, tk.ID, err)
		return
	}
	p.m.countRouted(string(dec.Tier), string(dec.Channel), string(prof.Name))
	p.m.latency.Observe(p.now().Sub(meta.Timestamp).Seconds())
	// A plain ack, not a double ack: the routed message is stored, so
	// should this ack be lost the redelivery publishes it again under the
	// same Nats-Msg-Id, which JetStream drops as a duplicate. Waiting for
	// the server to confirm the ack would buy nothing but a round trip.
	if err := msg.Ack(); err != nil {
		d.logger().Warn("ack after routed publish failed; the redelivery will not publish twice", zap.Error(err))
		return
	}
	if !p.log.Core().Enabled(zap.DebugLevel) {
		return
	}
	d.logger().Debug("ticket routed", zap.String("tier", string(dec.Tier)), zap.String("channel", string(dec.Channel)),
		zap.String("route", strings.Join(dec.Rules, "/")), zap.String("source", d.source))
}

// RouteNow routes tk at once, in the caller's goroutine, instead of
// through the ingest stream: it asks for the profile and the decision and
// publishes the routed message under Nats-Msg-Id [RoutedMsgID](tk.MsgID()),
// the id the processor would give it. A nil error means the routed message
// is stored (or was already, under that id). tk must be valid
// (ticket.Validate) and carry its source.
//
// Any error means nothing was routed, and the caller should store tk in
// the ingest stream instead, where the processor retries, or dead-letters,
// it as it does every ticket: a profile lookup that failed or a panic, a
// ticket with no route, a routed message NATS refused, or [ErrNotReady].
// The error is wrapped with the stage that failed and counted in
// deskrelay_inline_fallbacks_total{stage}. This is the webhook ingress's
// fast path (pipeline.inline): one JetStream store per ticket instead of
// two, a delivery and an ack. Safe for concurrent use, also with Run.
func (p *Processor) RouteNow(ctx context.Context, tk *ticket.Ticket) error {
	if p.err != nil {
		return fmt.Errorf("pipeline: %w", p.err)
	}
	if p.ready != nil {
		select {
		case <-p.ready:
		default:
			p.m.inlineFallbacks[stageReady].Inc()
			return ErrNotReady
		}
	}
	d := &delivery{id: tk.MsgID(), source: tk.Source, ticketID: tk.ID, base: p.log}
	routed, stage, err := p.decide(ctx, d, tk)
	if err == nil {
		stage = StagePublishRouted
		err = p.guard(d, stage, func() error { return p.pub.PublishRouted(ctx, RoutedMsgID(d.id), routed) })
	}
	if err != nil {
		p.m.inlineFallbacks[stage].Inc()
		if ce := p.log.Check(zap.DebugLevel, "not routed inline, storing it for the processor"); ce != nil {
			ce.Write(zap.String("ticket_id", tk.ID), zap.String("source", tk.Source), zap.String("stage", stage), zap.Error(err))
		}
		return fmt.Errorf("%s: %w", stage, err)
	}
	dec := &routed.Routing
	p.m.countRouted(string(dec.Tier), string(dec.Channel), string(routed.Profile.Name))
	p.m.inlineRouted.Inc()
	if ce := p.log.Check(zap.DebugLevel, "ticket routed inline"); ce != nil {
		ce.Write(zap.String("ticket_id", tk.ID), zap.String("source", tk.Source), zap.String("tier", string(dec.Tier)),
			zap.String("channel", string(dec.Channel)), zap.String("route", strings.Join(dec.Rules, "/")))
	}
	return nil
}

// decide asks the enricher for tk's caller profile and the router for the
// decision, and returns the routed message. On failure it names the stage
// that failed (StageEnrich: transient, unless errPanic; StageRoute:
// permanent).
func (p *Processor) decide(ctx context.Context, d *delivery, tk *ticket.Ticket) (*ticket.Routed, string, error) {
	var prof ticket.Profile
	err := p.guard(d, StageEnrich, func() (err error) { prof, err = p.enr.Lookup(ctx, tk); return err })
	if err != nil {
		if !errors.Is(err, errPanic) {
			err = fmt.Errorf("profile lookup: %w", err)
		}
		return nil, StageEnrich, err
	}
	rt := p.router.Load().r
	var dec ticket.Routing
	if err := p.guard(d, StageRoute, func() (err error) { dec, err = rt.Route(tk, &prof); return err }); err != nil {
		return nil, StageRoute, err
	}
	return &ticket.Routed{Schema: ticket.RoutedSchema, Ticket: *tk, Profile: prof, Routing: dec, RoutedAt: p.now()}, "", nil
}

// RoutedMsgID returns the Nats-Msg-Id of the routed message of the ticket
// stored under ingestID (its ticket.MsgID): "routed:" + ingestID. The
// processor and [Processor.RouteNow] use the same, so that a ticket routed
// by both (a webhook routed at once, then retried by its vendor into the
// ingest stream) is stored once.
func RoutedMsgID(ingestID string) string { return "routed:" + ingestID }

// retry naks d for a later attempt after a transient failure (delay
// [RetryDelay]), or sends it to the dead letters once it had
// cfg.MaxDeliver deliveries. runCtx is the handler's context: when it was
// cancelled (shutdown) the message is nak'd for an immediate redelivery.
func (p *Processor) retry(runCtx, ctx context.Context, d *delivery, stage, ticketID string, err error) {
	if runCtx.Err() != nil {
		d.logger().Warn("processing interrupted by shutdown, message will be redelivered", zap.String("stage", stage), zap.Error(err))
		p.release(d.msg)
		return
	}
	lost := errors.Is(context.Cause(ctx), errConnectionLost) && errors.Is(err, context.Canceled)
	if lost {
		err = fmt.Errorf("%w: %w", errConnectionLost, err)
	}
	// An interrupted last delivery is not dead-lettered: ctx is cancelled,
	// so the dead letter could not be stored anyway.
	if !lost && p.exhausted(d) {
		p.deadLetter(ctx, d, ticket.ReasonMaxDeliver, ticketID, fmt.Errorf("after %d deliveries: %w", d.meta.NumDelivered, err))
		return
	}
	p.m.retries.WithLabelValues(stage).Inc()
	d.logger().Warn("transient failure, message will be redelivered", zap.String("stage", stage),
		zap.Duration("duration", RetryDelay(p.cfg.RetryDelay, d.meta.NumDelivered)), zap.Error(err))
	p.nakLater(d)
}

// deadLetter publishes d to <prefix>.dlq.<reason> with the error, the
// original payload and the source, then acks it. A dead letter too large
// to publish (over the server's max_payload or the dlq stream's
// max_msg_size) is sent again without the payload, its Error ending in a
// reference to the ingest message instead (see [payloadRef]). If the dead
// letter cannot be stored the message is nak'd with [RetryDelay], whatever
// its delivery count: it is never left unacknowledged, and the next
// delivery processes it again from the start.
func (p *Processor) deadLetter(ctx context.Context, d *delivery, reason, ticketID string, cause error) {
	dl := &ticket.DeadLetter{
		Schema:     ticket.DeadLetterSchema,
		Reason:     reason,
		Error:      cause.Error(),
		Source:     d.source,
		TicketID:   ticketID,
		Subject:    d.msg.Subject(),
		Deliveries: int(d.meta.NumDelivered),
		FailedAt:   p.now(),

		IngestStream: d.meta.Stream,
		IngestSeq:    d.meta.Sequence.Stream,
	}
	dl.SetPayload(d.msg.Data())
	publish := func() error {
		return p.guard(d, StagePublishDLQ, func() error { return p.pub.PublishDLQ(ctx, "dlq:"+d.id, dl) })
	}
	err := publish()
	if tooLarge(err) {
		d.logger().Warn("dead letter too large, sending it with a reference instead of the payload",
			zap.String("reason", reason), zap.Int("bytes", len(d.msg.Data())), zap.Error(err))
		dl.Payload, dl.PayloadBase64, dl.PayloadOmitted = nil, nil, true
		dl.Error += payloadRef(len(d.msg.Data()), d.meta.Stream, d.meta.Sequence.Stream)
		err = publish()
	}
	if err != nil {
		p.m.retries.WithLabelValues(StagePublishDLQ).Inc()
		log := d.logger().Warn
		if permanentPublish(err) { // retried all the same, but someone must look
			log = d.logger().Error
		}
		log("dead letter not stored, message will be redelivered", zap.String("reason", reason),
			zap.Duration("duration", RetryDelay(p.cfg.RetryDelay, d.meta.NumDelivered)), zap.Error(err))
		p.nakLater(d)
		return
	}
	p.m.dlq.WithLabelValues(reason).Inc()
	d.logger().Warn("message sent to the dead letters", zap.String("reason", reason), zap.String("source", d.source), zap.Error(cause))
	if err := d.msg.Ack(); err != nil { // a plain ack, as after a routed publish
		d.logger().Warn("ack after dead letter failed; the redelivery will not publish twice", zap.Error(err))
	}
}

// payloadRef is appended to the Error of a dead letter sent without its
// payload: "; payload of <n> bytes left out (too large for a dead
// letter): message <seq> of stream <stream>". The ingest message stays
// readable there until the stream's max_age (7 days by default). This
// text is API: consumers of the dead letters parse it.
func payloadRef(n int, stream string, seq uint64) string {
	return fmt.Sprintf("; payload of %d bytes left out (too large for a dead letter): message %d of stream %s", n, seq, stream)
}

// tooLarge reports whether a publish failed because the message is larger
// than the server (max_payload) or the stream (max_msg_size) accepts.
func tooLarge(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// permanentPublish reports whether a publish failed for a reason that
// retrying the same message cannot change: too large, a subject token
// (tier, channel, reason) NATS refuses, or a message that cannot be
// encoded.
func permanentPublish(err error) bool {
	var bad interface{ BadInput() bool }
	return tooLarge(err) || errors.Is(err, bus.ErrInvalidToken) || (errors.As(err, &bad) && bad.BadInput())
}

// lastToken returns the part of subject after its last dot: the source of
// <prefix>.ingest.<source>.
func lastToken(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}
