package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

// Rejection reasons, the values of the reason label of
// deskrelay_webhook_rejected_total.
const (
	RejectUnknownSource  = "unknown_source"
	RejectMethod         = "method"
	RejectContentType    = "content_type"
	RejectTooLarge       = "too_large"
	RejectUnauthorized   = "unauthorized"
	RejectInvalidPayload = "invalid_payload"
	RejectInvalidTicket  = "invalid_ticket"
	RejectUnavailable    = "unavailable"
	RejectInternal       = "internal"
)

// DefaultMaxInFlight is how many webhook requests an [Ingress] handles at
// once by default; see [Ingress.SetMaxInFlight].
const DefaultMaxInFlight = 1024

var rejectReasons = []string{RejectUnknownSource, RejectMethod, RejectContentType, RejectTooLarge, RejectUnauthorized, RejectInvalidPayload, RejectInvalidTicket, RejectUnavailable, RejectInternal}

// Metrics of the webhook ingress.
type Metrics struct {
	requests *prometheus.CounterVec
	rejected *prometheus.CounterVec
	accepted *prometheus.CounterVec
	duration *prometheus.HistogramVec
	panics   prometheus.Counter
}

// NewMetrics registers the ingress metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_webhook_requests_total",
			Help: "Webhook requests received, by configured source and HTTP status code.",
		}, []string{"source", "code"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_webhook_rejected_total",
			Help: "Webhook requests refused, by configured source and reason.",
		}, []string{"source", "reason"}),
		accepted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_webhook_accepted_total",
			Help: "Webhook tickets stored in JetStream (the ingest stream, or routed at once with pipeline.inline), by configured source.",
		}, []string{"source"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deskrelay_webhook_request_duration_seconds",
			Help:    "Time from request to answer, including the JetStream store, by configured source.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "deskrelay_webhook_panics_total",
			Help: "Webhook requests whose handling panicked (answered 500); see the error log for the stack.",
		}),
	}
}

// Ingress serves POST /webhooks/{source}. It is safe for concurrent use.
type Ingress struct {
	routes         map[string]route // by source name
	sink           Sink
	log            *zap.Logger
	m              *Metrics
	publishTimeout time.Duration
	retryAfter     string
	inflight       chan struct{} // one token per request being handled
	backlog        func() uint64 // nil: no backlog limit
	maxBacklog     uint64
	inline         InlineRouter // nil: every ticket goes to the sink
}

// InlineRouter routes a ticket at once and stores its routed message
// (pipeline.Processor.RouteNow). An error means nothing was stored, and
// the ingress stores the ticket in its sink instead.
type InlineRouter interface {
	RouteNow(ctx context.Context, t *ticket.Ticket) error
}

// route is one source's endpoint with the series every accepted request
// touches, resolved once: WithLabelValues hashes the labels on every call.
type route struct {
	ep                    *Endpoint
	accepted, answered202 prometheus.Counter
	duration              prometheus.Observer
}

// NewIngress returns the webhook handler for the built endpoints, storing
// tickets into sink with at most publishTimeout per store, and answering
// 503 with Retry-After: retryAfter when the store fails.
func NewIngress(endpoints map[string]*Endpoint, sink Sink, publishTimeout, retryAfter time.Duration, log *zap.Logger, m *Metrics) *Ingress {
	in := &Ingress{
		routes:         make(map[string]route, len(endpoints)),
		sink:           sink,
		log:            log.Named("ingress"),
		m:              m,
		publishTimeout: publishTimeout,
		retryAfter:     strconv.Itoa(int(retryAfter.Round(time.Second) / time.Second)),
		inflight:       make(chan struct{}, DefaultMaxInFlight),
	}
	for name, ep := range endpoints {
		for _, r := range rejectReasons {
			m.rejected.WithLabelValues(name, r)
		}
		in.routes[name] = route{
			ep:          ep,
			accepted:    m.accepted.WithLabelValues(name),
			answered202: m.requests.WithLabelValues(name, strconv.Itoa(http.StatusAccepted)),
			duration:    m.duration.WithLabelValues(name),
		}
	}
	return in
}

// SetMaxInFlight sets how many webhook requests the ingress handles at
// once, from reading the body to the store's acknowledgement (default
// [DefaultMaxInFlight]). A request that finds them all under way is
// answered at once with 503 and Retry-After, counted with reason
// "unavailable" as a failed store is, rather than queued: under a burst
// beyond what the store takes, memory and latency stay bounded and
// vendors retry later. Call it before serving; n must be at least 1.
func (in *Ingress) SetMaxInFlight(n int) error {
	if n < 1 {
		return fmt.Errorf("ingress: max in flight must be at least 1, got %d", n)
	}
	in.inflight = make(chan struct{}, n)
	return nil
}

// SetMaxBacklog makes the ingress answer 503 with Retry-After, reason
// "unavailable", while backlog() is above max: backlog reports how many
// stored tickets the processing stage has not taken yet
// (pipeline.Processor.Backlog). Without it a burst beyond what routing
// keeps up with is accepted and piles up in the ingest stream, and the
// NATS server's memory with it; with it the vendors hold the burst and
// retry. Call it before serving; backlog must not be nil and max must be
// at least 1.
func (in *Ingress) SetMaxBacklog(backlog func() uint64, max uint64) error {
	if backlog == nil || max < 1 {
		return fmt.Errorf("ingress: max backlog needs a backlog func and a limit of at least 1, got %d", max)
	}
	in.backlog, in.maxBacklog = backlog, max
	return nil
}

// SetInline makes the ingress route each valid ticket in the request
// through r (pipeline.inline): the 202 then follows the store of the
// routed message, one JetStream store instead of the ingest store and the
// processor's work after it. A ticket r does not route (r's error: a
// failed lookup, no route, the directory still loading, a routed message
// NATS refused) is stored in the sink as without r, for the processing
// stage to retry or dead-letter; the answer is the same 202. Both stores
// share the request's publish timeout. Call it before serving.
func (in *Ingress) SetInline(r InlineRouter) { in.inline = r }

// Accepted is the body of a 202 answer.
type Accepted struct {
	Status string `json:"status"`
	ID     string `json:"id"`
	Source string `json:"source"`
	MsgID  string `json:"msg_id"`
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// ServeHTTP handles one webhook request. The answer is 202 only after the
// ticket is stored: by the sink, or routed by the inline router
// ([Ingress.SetInline]).
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("source")
	rt, known := in.routes[name]
	label := name
	if !known {
		label = "unknown" // never a label value from the URL
	}
	code := http.StatusInternalServerError
	defer func() {
		if p := recover(); p != nil {
			in.m.panics.Inc()
			in.log.Error("webhook handler panicked", zap.String("source", label), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			code = in.fail(w, label, http.StatusInternalServerError, RejectInternal, "internal error", "")
		}
		if known && code == http.StatusAccepted {
			rt.answered202.Inc()
		} else {
			in.m.requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
		}
		if known {
			rt.duration.Observe(time.Since(start).Seconds())
		}
	}()
	code = in.serve(w, r, rt, label)
}

func (in *Ingress) serve(w http.ResponseWriter, r *http.Request, rt route, label string) int {
	ep := rt.ep
	if ep == nil {
		return in.fail(w, label, http.StatusNotFound, RejectUnknownSource, fmt.Sprintf("no webhook source %q is configured", r.PathValue("source")), "")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return in.fail(w, label, http.StatusMethodNotAllowed, RejectMethod, "use POST", "")
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return in.fail(w, label, http.StatusUnsupportedMediaType, RejectContentType,
			fmt.Sprintf("content type %q is not supported; send Content-Type: application/json", r.Header.Get("Content-Type")), "")
	}
	// Refuse before reading the body: under a burst beyond what the store
	// takes, a refusal must cost next to nothing.
	if in.backlog != nil && in.backlog() > in.maxBacklog {
		w.Header().Set("Retry-After", in.retryAfter)
		return in.fail(w, label, http.StatusServiceUnavailable, RejectUnavailable, "tickets are waiting to be routed; retry later", "")
	}
	select {
	case in.inflight <- struct{}{}:
		defer func() { <-in.inflight }()
	default:
		w.Header().Set("Retry-After", in.retryAfter)
		return in.fail(w, label, http.StatusServiceUnavailable, RejectUnavailable, "too many webhooks in flight; retry later", "")
	}
	body, err := readBody(w, r, ep.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return in.fail(w, label, http.StatusRequestEntityTooLarge, RejectTooLarge, fmt.Sprintf("body exceeds %d bytes", tooBig.Limit), "")
		}
		return in.fail(w, label, http.StatusBadRequest, RejectInvalidPayload, "cannot read body", "")
	}
	if err := ep.verify(r.Header, body); err != nil {
		in.log.Debug("webhook refused", zap.String("source", label), zap.Error(err))
		w.Header().Set("WWW-Authenticate", `Bearer realm="deskrelay"`)
		return in.fail(w, label, http.StatusUnauthorized, RejectUnauthorized, err.Error(), "")
	}
	t, err := ep.Webhook.Normalize(r.Context(), r.Header, body)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return in.fail(w, label, http.StatusBadRequest, RejectInvalidPayload, ie.Error(), ie.Field)
		}
		in.log.Error("webhook normalise failed", zap.String("source", label), zap.Error(err))
		return in.fail(w, label, http.StatusInternalServerError, RejectInternal, "internal error", "")
	}
	t.Source = ep.Name
	if err := t.Validate(); err != nil {
		var ve *ticket.ValidationError
		field := ""
		if errors.As(err, &ve) && len(ve.Fields) > 0 {
			field = ve.Fields[0].Field
		}
		return in.fail(w, label, http.StatusBadRequest, RejectInvalidTicket, err.Error(), field)
	}
	ctx, cancel := context.WithTimeout(r.Context(), in.publishTimeout)
	defer cancel()
	if in.inline != nil && in.inline.RouteNow(ctx, &t) == nil {
		return in.accept(w, rt, &t, label)
	}
	if err := in.sink.Ingest(ctx, t); err != nil {
		var tooLarge interface{ TooLarge() bool }
		var badInput interface{ BadInput() bool }
		switch {
		case errors.As(err, &tooLarge) && tooLarge.TooLarge():
			return in.fail(w, label, http.StatusRequestEntityTooLarge, RejectTooLarge, "the normalised ticket is too large to store; send a smaller description or payload", "")
		case errors.As(err, &badInput) && badInput.BadInput():
			return in.fail(w, label, http.StatusBadRequest, RejectInvalidTicket, "the ticket cannot be encoded: "+err.Error(), "")
		}
		if r.Context().Err() != nil {
			// The sender hung up before the store answered: nobody reads
			// the 503, and the ticket may well be stored (a retry is
			// deduplicated by its Nats-Msg-Id). Not a store failure.
			in.log.Debug("sender went away before the ticket store answered", zap.String("ticket_id", t.ID), zap.String("source", label), zap.Error(err))
		} else {
			in.log.Warn("ticket not stored, answering 503", zap.String("ticket_id", t.ID), zap.String("source", label), zap.Error(err))
		}
		w.Header().Set("Retry-After", in.retryAfter)
		return in.fail(w, label, http.StatusServiceUnavailable, RejectUnavailable, "ticket store unavailable; retry later", "")
	}
	return in.accept(w, rt, &t, label)
}

// presizeLimit is the largest announced body readBody allocates for before
// it arrives: a sender that announces a body and stalls holds at most this
// much per request in flight (64 MiB at the default 1,024), not the body
// limit. Webhooks are a few KB.
const presizeLimit = 64 << 10

// readBody reads r's body, at most limit bytes (a longer one is an
// *http.MaxBytesError). A body of announced length up to presizeLimit is
// read into a buffer of that size: io.ReadAll grows one from 512 bytes,
// copying as it goes, and those copies were a tenth of the bytes the
// process allocated per ticket. It relies on net/http's server, whose
// body ends after Content-Length bytes and fails (io.ErrUnexpectedEOF)
// when the connection ends or times out before them.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	n := r.ContentLength
	if n <= 0 || n > min(limit, presizeLimit) { // unknown (chunked), large, or over the limit: let the reader grow and say so
		return io.ReadAll(rd)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil, err
	}
	return body, nil
}

// accept answers 202 for t, stored.
func (in *Ingress) accept(w http.ResponseWriter, rt route, t *ticket.Ticket, label string) int {
	rt.accepted.Inc()
	if ce := in.log.Check(zap.DebugLevel, "ticket accepted"); ce != nil { // no fields built above debug
		ce.Write(zap.String("ticket_id", t.ID), zap.String("source", label))
	}
	writeAccepted(w, t.ID, t.Source, t.MsgID())
	return http.StatusAccepted
}

// Header values every JSON answer carries, shared: net/http copies them
// when it writes the header. Never modify them in place.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

// writeAccepted answers 202 with the [Accepted] body, appended by hand:
// every accepted webhook gets one, and encoding/json's reflection was a
// tenth of the handler's own time (BenchmarkIngress).
func writeAccepted(w http.ResponseWriter, id, source, msgID string) {
	// The constant part is 48 bytes; quoting adds at least 2 per string.
	b := make([]byte, 0, 56+len(id)+len(source)+len(msgID))
	b = append(b, `{"status":"accepted","id":`...)
	b = appendString(b, id)
	b = append(b, `,"source":`...)
	b = appendString(b, source)
	b = append(b, `,"msg_id":`...)
	b = appendString(b, msgID)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"], h["X-Content-Type-Options"] = jsonContentType, noSniff
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// the same value encoding/json gives (which writes it as the escape
// \ufffd, where this writes the character); the result is valid JSON
// either way.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

func (in *Ingress) fail(w http.ResponseWriter, label string, code int, reason, msg, field string) int {
	if label != "unknown" {
		in.m.rejected.WithLabelValues(label, reason).Inc()
	}
	writeJSON(w, code, errorBody{Error: msg, Field: field})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h["Content-Type"], h["X-Content-Type-Options"] = jsonContentType, noSniff
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// isJSON accepts application/json and application/<x>+json, any charset.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}
