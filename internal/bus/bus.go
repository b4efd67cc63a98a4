package bus

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

var (
	// ErrNotConnected is returned, without waiting, by a publish while the
	// connection is not CONNECTED (reconnecting, draining or closed).
	ErrNotConnected = errors.New("nats not connected")
	// ErrInvalidToken is returned for a subject token (source, tier,
	// channel, reason) that NATS would not take as one literal token (see
	// the package doc).
	ErrInvalidToken = errors.New("invalid subject token")
)

// PayloadReserve is the room Ingest leaves under the server's max_payload
// (1 MiB by default): the routed message carries the ticket plus the
// profile, the decision and its hints (a few KB), and a dead letter the
// ticket plus the error, so an ingested ticket must be smaller than
// max_payload by at least this much. On a server whose max_payload is
// under twice the reserve, half of max_payload is reserved instead.
const PayloadReserve = 64 << 10

// TooLargeError is returned (wrapped) by Ingest for a ticket whose JSON
// encoding is longer than Limit: max_payload minus [PayloadReserve].
// Retrying cannot help. Callers test for it with errors.As on an
// interface{ TooLarge() bool }, as the HTTP ingress does (413).
type TooLargeError struct {
	Size  int // encoded ticket, bytes
	Limit int // largest encoded ticket accepted, bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("ticket encodes to %d bytes, more than the %d accepted (nats max_payload minus a reserve for routing)", e.Size, e.Limit)
}

// TooLarge reports true: the ticket is too large to be stored.
func (e *TooLargeError) TooLarge() bool { return true }

// InputError is returned (wrapped) for a ticket that cannot be encoded
// (json.Marshal fails: a Raw that is not JSON, for one). Retrying cannot
// help. Callers test for it with errors.As on an interface{ BadInput()
// bool }, as the HTTP ingress does (400).
type InputError struct{ Err error }

func (e *InputError) Error() string { return "ticket cannot be encoded: " + e.Err.Error() }

// Unwrap returns the encoding error.
func (e *InputError) Unwrap() error { return e.Err }

// BadInput reports true: the ticket, not the store, is at fault.
func (e *InputError) BadInput() bool { return true }

// Bus publishes deskrelay's messages to JetStream and provisions the
// streams and buckets they live in. It is safe for concurrent use. It does
// not own the connection: the caller drains it after the last publish.
type Bus struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	log        *zap.Logger
	m          *Metrics
	prefix     string
	ingest     config.Stream
	routed     config.Stream
	dlq        config.Stream
	bucket     string
	cursors    string
	leases     string
	kvReplicas int
	now        func() time.Time

	readyMu sync.Mutex
	readyAt time.Time // last successful stream check
}

// New returns a Bus on nc for cfg with the defaults of [DefaultStream],
// [DefaultSubjectPrefix] and [DefaultProfilesBucket] filled in for zero
// values. cfg is expected to have passed config.Load's checks; a bad
// subject prefix is still refused here, and a bad retention or storage by
// Provision. m may be nil.
func New(nc *nats.Conn, cfg config.NATS, log *zap.Logger, m *Metrics) (*Bus, error) {
	if p := cfg.SubjectPrefix; p != "" {
		for tok := range strings.SplitSeq(p, ".") {
			if !validToken(tok) {
				return nil, fmt.Errorf("bus: %w: subject prefix %q", ErrInvalidToken, p)
			}
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Bus{
		nc:         nc,
		js:         js,
		log:        log.Named("bus"),
		m:          m,
		prefix:     cmp.Or(cfg.SubjectPrefix, DefaultSubjectPrefix),
		ingest:     StreamWithDefaults(KindIngest, cfg.Streams.Ingest),
		routed:     StreamWithDefaults(KindRouted, cfg.Streams.Routed),
		dlq:        StreamWithDefaults(KindDLQ, cfg.Streams.DLQ),
		bucket:     cmp.Or(cfg.ProfilesBucket, DefaultProfilesBucket),
		cursors:    cmp.Or(cfg.CursorsBucket, config.Default().NATS.CursorsBucket),
		leases:     cmp.Or(cfg.LeasesBucket, config.Default().NATS.LeasesBucket),
		kvReplicas: cmp.Or(cfg.KVReplicas, 1),
		now:        time.Now,
	}, nil
}

func retention(s string) (jetstream.RetentionPolicy, error) {
	switch s {
	case "limits":
		return jetstream.LimitsPolicy, nil
	case "interest":
		return jetstream.InterestPolicy, nil
	case "workqueue":
		return jetstream.WorkQueuePolicy, nil
	}
	return 0, fmt.Errorf("%q is not a retention; use limits, interest or workqueue", s)
}

func storage(s string) (jetstream.StorageType, error) {
	switch s {
	case "file":
		return jetstream.FileStorage, nil
	case "memory":
		return jetstream.MemoryStorage, nil
	}
	return 0, fmt.Errorf("%q is not a storage; use file or memory", s)
}

// validToken reports whether s can be one literal token of a subject
// deskrelay publishes on, by nats-server's own rules (server/sublist.go,
// isValidSubject with rune checks, and subjectIsLiteral): s is not empty,
// holds no '.', no space, tab, CR, LF or form feed, no NUL, is valid
// UTF-8, and is not a wildcard ("*" or ">"). A '*' or '>' inside a longer
// token ("p*1") is literal to NATS and allowed here. config checks
// nats.subject_prefix with a stricter, separate rule (ASCII letters,
// digits, '-' and '_').
func validToken(s string) bool {
	switch s {
	case "", "*", ">":
		return false
	}
	return utf8.ValidString(s) && !strings.ContainsAny(s, ". \t\r\n\f\x00")
}

func checkTokens(tokens ...string) error {
	for _, t := range tokens {
		if !validToken(t) {
			return fmt.Errorf("%w: %q", ErrInvalidToken, t)
		}
	}
	return nil
}

// Subject returns <prefix>.<kind>.<tokens…>; Subject(KindRouted, "l2",
// "portal") is "deskrelay.routed.l2.portal". It does not validate the
// tokens; the publish methods do.
func (b *Bus) Subject(kind string, tokens ...string) string {
	s := b.prefix + "." + kind
	for _, t := range tokens {
		s += "." + t
	}
	return s
}

// JetStream returns the JetStream handle the Bus uses.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// StreamName returns the configured stream name of kind ([KindIngest],
// [KindRouted], [KindDLQ]), or "" for another kind.
func (b *Bus) StreamName(kind string) string {
	switch kind {
	case KindIngest:
		return b.ingest.Name
	case KindRouted:
		return b.routed.Name
	case KindDLQ:
		return b.dlq.Name
	}
	return ""
}

// Provision creates the ingest, routed and dlq streams and the profiles KV
// bucket, or updates them to the configured limits. It is idempotent. A
// change the server cannot apply in place (storage, for one) is an error
// naming the stream.
func (b *Bus) Provision(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, s := range []struct {
		kind string
		cfg  config.Stream
		desc string
	}{
		{KindIngest, b.ingest, "deskrelay: normalised tickets as accepted from the connectors"},
		{KindRouted, b.routed, "deskrelay: routed tickets for virtual agents and queues"},
		{KindDLQ, b.dlq, "deskrelay: tickets that could not be decoded, enriched or routed"},
	} {
		ret, err := retention(s.cfg.Retention)
		if err != nil {
			return fmt.Errorf("bus: stream %s: %w", s.cfg.Name, err)
		}
		st, err := storage(s.cfg.Storage)
		if err != nil {
			return fmt.Errorf("bus: stream %s: %w", s.cfg.Name, err)
		}
		sc := jetstream.StreamConfig{
			Name:        s.cfg.Name,
			Description: s.desc,
			Subjects:    []string{b.Subject(s.kind, ">")},
			Retention:   ret,
			MaxAge:      s.cfg.MaxAge,
			MaxBytes:    cmp.Or(s.cfg.MaxBytes, -1),
			MaxMsgs:     -1,
			Replicas:    s.cfg.Replicas,
			Duplicates:  s.cfg.DuplicateWindow,
			Storage:     st,
			Discard:     jetstream.DiscardOld,
		}
		if s.kind == KindIngest {
			// Losing tickets to make room would be a silent drop: refuse
			// new ones instead (the webhook answers 503).
			sc.Discard = jetstream.DiscardNew
		}
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: provision stream %s: %w", s.cfg.Name, err)
		}
		b.log.Info("stream provisioned", zap.String("stream", s.cfg.Name), zap.String("subject", sc.Subjects[0]))
	}
	for _, kv := range []jetstream.KeyValueConfig{
		{Bucket: b.bucket, Description: "deskrelay: caller IT profiles by caller id and email"},
		{Bucket: b.cursors, Description: "deskrelay: poll cursors (watermarks) by source"},
		{Bucket: b.leases, Description: "deskrelay: poll leases by source: which replica polls"},
	} {
		kv.Replicas, kv.Storage = b.kvReplicas, jetstream.FileStorage
		if _, err := b.js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("bus: provision kv bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}

// ProfilesKV returns the profiles KV bucket; it fails with
// [jetstream.ErrBucketNotFound] before Provision.
func (b *Bus) ProfilesKV(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	kv, err := b.js.KeyValue(ctx, b.bucket)
	if err != nil {
		return nil, fmt.Errorf("bus: kv bucket %s: %w", b.bucket, err)
	}
	return kv, nil
}

// Ingest stores t on <prefix>.ingest.<t.Source> with Nats-Msg-Id
// t.MsgID() and returns nil only after JetStream acknowledged it (a
// duplicate within the window counts as stored). Any error means the
// ticket was not stored. It implements the connectors' Sink.
func (b *Bus) Ingest(ctx context.Context, t ticket.Ticket) error {
	_, err := b.IngestResult(ctx, t)
	return err
}

// IngestResult is Ingest that also reports whether JetStream had already
// stored a message with the same Nats-Msg-Id within the duplicate window.
// It fails at once, without publishing, with [ErrNotConnected] while the
// connection is down, with [ErrInvalidToken] for a source that cannot be
// a subject token, with an [*InputError] for a ticket json.Marshal
// refuses and with a [*TooLargeError] for one that would leave less than
// [PayloadReserve] under the server's max_payload. A ctx without deadline
// gets [DefaultPublishTimeout].
func (b *Bus) IngestResult(ctx context.Context, t ticket.Ticket) (duplicate bool, err error) {
	defer func() {
		switch {
		case err != nil:
			b.m.ingest.WithLabelValues(ResultError).Inc()
		case duplicate:
			b.m.ingest.WithLabelValues(ResultDuplicate).Inc()
		default:
			b.m.ingest.WithLabelValues(ResultStored).Inc()
		}
	}()
	if err := checkTokens(t.Source); err != nil {
		return false, fmt.Errorf("bus: ingest ticket %q: source: %w", t.ID, err)
	}
	buf, err := encode(t)
	if err != nil {
		return false, fmt.Errorf("bus: ingest ticket %q: %w", t.ID, &InputError{err})
	}
	defer release(buf)
	body := buf.Bytes()
	if limit := ingestLimit(b.nc.MaxPayload()); limit > 0 && len(body) > limit {
		return false, fmt.Errorf("bus: ingest ticket %q: %w", t.ID, &TooLargeError{Size: len(body), Limit: limit})
	}
	msg := &nats.Msg{Subject: b.Subject(KindIngest, t.Source), Data: body, Header: nats.Header{}}
	msg.Header.Set(ticket.HeaderTicketID, t.ID)
	msg.Header.Set(ticket.HeaderSource, t.Source)
	ack, err := b.publish(ctx, KindIngest, t.MsgID(), msg)
	if err != nil {
		return false, fmt.Errorf("bus: ingest ticket %q: %w", t.ID, err)
	}
	return ack.Duplicate, nil
}

// encodeBufs holds the buffers of encode.
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encode returns v's JSON encoding in a pooled buffer to hand back with
// release once the message is published (the connection copies the data
// before PublishMsg returns): the profile showed json.Marshal's result as
// the largest allocation of our own after the server's. The bytes are
// json.Marshal's, but for invalid UTF-8: both replace it with U+FFFD,
// which encode writes as the character and json.Marshal as \ufffd.
//
// Tickets and routed messages, which every webhook makes, are written by
// their AppendJSON, without reflection (2.3× faster, ticket package's
// BenchmarkAppendJSON); anything else on the encoding/json/v2 engine with
// the v1 options, which AppendJSON's bytes equal (FuzzEncodeIsMarshal
// here, FuzzAppendJSON there). encoding/json itself checks and compacts
// a ticket's raw vendor payload byte by byte, which with a 1.4 KB
// ServiceNow record was 7.5% of deskrelay's CPU.
func encode(v any) (*bytes.Buffer, error) {
	buf := encodeBufs.Get().(*bytes.Buffer)
	buf.Reset()
	var err error
	switch v := v.(type) {
	case *ticket.Routed:
		err = appendTo(buf, v.AppendJSON)
	case ticket.Ticket:
		err = appendTo(buf, v.AppendJSON)
	default:
		err = jsonv2.MarshalWrite(buf, v, jsonv1.DefaultOptionsV1())
	}
	if err != nil {
		release(buf)
		return nil, err
	}
	return buf, nil
}

// appendTo appends into buf's free space with appendJSON and keeps the
// result in buf (a copy onto itself unless the space was too small).
func appendTo(buf *bytes.Buffer, appendJSON func([]byte) ([]byte, error)) error {
	b, err := appendJSON(buf.AvailableBuffer())
	if err != nil {
		return err
	}
	_, _ = buf.Write(b)
	return nil
}

// release returns buf to the pool unless it grew past 64 KiB.
func release(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		encodeBufs.Put(buf)
	}
}

// ingestLimit returns the largest encoded ticket Ingest accepts under the
// server's max_payload, or 0 when that is not known yet.
func ingestLimit(maxPayload int64) int {
	if maxPayload <= 0 {
		return 0
	}
	return int(maxPayload - min(PayloadReserve, maxPayload/2))
}

// PublishRouted publishes r on <prefix>.routed.<tier>.<channel> with
// Nats-Msg-Id msgID and the Deskrelay-* headers consumers filter on
// (schema, ticket id, source, profile, tier, channel, priority). It
// returns nil once JetStream acknowledged the message, also when msgID was
// a duplicate within the window (the message is stored once).
func (b *Bus) PublishRouted(ctx context.Context, msgID string, r *ticket.Routed) error {
	tier, channel := string(r.Routing.Tier), string(r.Routing.Channel)
	if err := checkTokens(tier, channel); err != nil {
		return fmt.Errorf("bus: publish routed ticket %q: %w", r.Ticket.ID, err)
	}
	buf, err := encode(r)
	if err != nil {
		return fmt.Errorf("bus: publish routed ticket %q: %w", r.Ticket.ID, &InputError{err})
	}
	defer release(buf)
	body := buf.Bytes()
	// One backing array for the seven values and a map sized for them and
	// the two headers publish adds (Nats-Msg-Id, Nats-Expected-Stream).
	vals := [...]string{r.Schema, r.Ticket.ID, r.Ticket.Source, string(r.Profile.Name), tier, channel, strconv.Itoa(r.Routing.Priority)}
	h := make(nats.Header, len(vals)+2)
	for i, k := range ticket.RoutedHeaders() { // in the order of vals
		h[k] = vals[i : i+1 : i+1]
	}
	msg := &nats.Msg{Subject: b.Subject(KindRouted, tier, channel), Data: body, Header: h}
	if _, err := b.publish(ctx, KindRouted, msgID, msg); err != nil {
		return fmt.Errorf("bus: publish routed ticket %q: %w", r.Ticket.ID, err)
	}
	return nil
}

// PublishDLQ publishes d on <prefix>.dlq.<reason> with Nats-Msg-Id msgID
// and the Deskrelay-Reason, Deskrelay-Source (when known),
// Deskrelay-Ticket-Id (when known) and Deskrelay-Schema headers. An empty
// d.Schema is sent as [ticket.DeadLetterSchema]. It returns nil once
// JetStream acknowledged the message.
func (b *Bus) PublishDLQ(ctx context.Context, msgID string, d *ticket.DeadLetter) error {
	if err := checkTokens(d.Reason); err != nil {
		return fmt.Errorf("bus: publish dead letter: reason: %w", err)
	}
	dl := *d
	dl.Schema = cmp.Or(dl.Schema, ticket.DeadLetterSchema)
	body, err := json.Marshal(&dl)
	if err != nil {
		return fmt.Errorf("bus: publish dead letter: %w", &InputError{err})
	}
	msg := &nats.Msg{Subject: b.Subject(KindDLQ, dl.Reason), Data: body, Header: nats.Header{}}
	msg.Header.Set(ticket.HeaderSchema, dl.Schema)
	msg.Header.Set(ticket.HeaderReason, dl.Reason)
	if dl.Source != "" {
		msg.Header.Set(ticket.HeaderSource, dl.Source)
	}
	if dl.TicketID != "" {
		msg.Header.Set(ticket.HeaderTicketID, dl.TicketID)
	}
	if _, err := b.publish(ctx, KindDLQ, msgID, msg); err != nil {
		return fmt.Errorf("bus: publish dead letter %s: %w", dl.Reason, err)
	}
	return nil
}

// publish sends msg to the stream of kind with Nats-Msg-Id msgID and waits
// for the PubAck, failing fast when the connection is down.
func (b *Bus) publish(ctx context.Context, kind, msgID string, msg *nats.Msg) (*jetstream.PubAck, error) {
	if msgID == "" {
		return nil, errors.New("empty Nats-Msg-Id")
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return nil, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	start := b.now()
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.StreamName(kind)))
	b.m.publish.WithLabelValues(kind).Observe(b.now().Sub(start).Seconds())
	if err != nil {
		if errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrReconnectBufExceeded) {
			return nil, fmt.Errorf("publish %s: %w: %w", msg.Subject, ErrNotConnected, err)
		}
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return ack, nil
}

// IngestConsumer creates or updates the processing stage's durable pull
// consumer on the ingest stream (filter <prefix>.ingest.>, explicit acks)
// with cfg's durable name, ack_wait and max_ack_pending, zero values taken
// from [DefaultPipeline]. The server-side MaxDeliver is always -1
// (unlimited), also on a consumer created earlier with another value: the
// server keeps redelivering, and internal/pipeline counts cfg.MaxDeliver
// deliveries itself and dead-letters, so a message whose dead letter could
// not be stored is retried rather than left unacknowledged for good.
func (b *Bus) IngestConsumer(ctx context.Context, cfg config.Pipeline) (jetstream.Consumer, error) {
	cfg = PipelineWithDefaults(cfg)
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	c, err := b.js.CreateOrUpdateConsumer(ctx, b.ingest.Name, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "deskrelay processing stage: enrichment and routing",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // the pipeline dead-letters after cfg.MaxDeliver
		MaxAckPending: cfg.MaxAckPending,
		FilterSubject: b.Subject(KindIngest, ">"),
	})
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s on %s: %w", cfg.Durable, b.ingest.Name, err)
	}
	return c, nil
}

// Ready reports whether the Bus can work: the connection is CONNECTED and
// the three streams exist. A successful stream check is reused for
// [DefaultReadyCache]; the connection state is checked every time.
func (b *Bus) Ready(ctx context.Context) error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("bus: %w (%s)", ErrNotConnected, st)
	}
	b.readyMu.Lock()
	defer b.readyMu.Unlock()
	now := b.now()
	if !b.readyAt.IsZero() && now.Sub(b.readyAt) < DefaultReadyCache {
		return nil
	}
	ctx, cancel := withTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, name := range []string{b.ingest.Name, b.routed.Name, b.dlq.Name} {
		if _, err := b.js.Stream(ctx, name); err != nil {
			b.readyAt = time.Time{}
			return fmt.Errorf("bus: stream %s: %w", name, err)
		}
	}
	b.readyAt = now
	return nil
}

// withTimeout bounds ctx by d unless it already has a deadline, in which
// case ctx itself comes back: no second timer per publish.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
