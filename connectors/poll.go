package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/deskrelay/deskrelay/ticket"
)

// Poller reads a vendor's changed records, one page per call. Vendors
// implement it; [PollRunner] drives it.
type Poller interface {
	// Poll fetches the page that follows cursor: nil on the very first
	// poll (start at the configured poll.start), else the Page.Cursor of
	// the last page whose tickets were all stored. Poll must not keep
	// state between calls that the cursor does not carry: after a crash,
	// polling resumes from the last stored cursor.
	//
	// Errors: a *[VendorError] for an HTTP answer the vendor gave (401 and
	// 403 stop the poller, 429 waits for RetryAfter, others back off), any
	// other error is retried with backoff.
	Poll(ctx context.Context, cursor []byte) (Page, error)
}

// Page is one page of changed records.
type Page struct {
	// Tickets are the normalised records, in the vendor's order.
	Tickets []ticket.Ticket
	// Rejects are records that could not be normalised; they go to the
	// dead-letter stream with reason "invalid".
	Rejects []Reject
	// Cursor is where the next poll starts. It is stored only after every
	// ticket of this page was stored; it should overlap rather than skip
	// (duplicates are dropped by Nats-Msg-Id).
	Cursor []byte
	// Watermark is the update time the cursor stands for, for the lag
	// metric; zero when unknown.
	Watermark time.Time
	// More says another page is ready now; false waits poll.interval.
	More bool
}

// Reject is a vendor record that could not be normalised.
type Reject struct {
	ID      string // vendor id, when known
	Err     error
	Payload []byte // the record as received
}

// Cursors stores pollers' cursors durably (a NATS KV bucket in
// production). Load returns nil, nil when nothing was stored yet.
type Cursors interface {
	Load(ctx context.Context, source string) ([]byte, error)
	Store(ctx context.Context, source string, cursor []byte) error
}

// Lease ensures one replica polls a source at a time. Acquire returns true
// when this holder has (or renewed) the lease for ttl; Release gives it up.
type Lease interface {
	Acquire(ctx context.Context, source, holder string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, source, holder string) error
}

// DeadLetters stores records that cannot become tickets.
type DeadLetters interface {
	DeadLetter(ctx context.Context, d *ticket.DeadLetter) error
}

// VendorError is a vendor API's error answer.
type VendorError struct {
	Status     int
	RetryAfter time.Duration // from Retry-After or the vendor's reset header; 0 if none
	Body       string        // the start of the body, for the log; never sent to users
	URL        string        // without query and credentials
}

func (e *VendorError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Fatal reports whether the poller must stop: credentials or permissions
// are wrong, and retrying cannot help.
func (e *VendorError) Fatal() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// ErrPollerStopped is returned by [PollRunner.Run] when the vendor refused
// the credentials; an operator must act.
var ErrPollerStopped = errors.New("poller stopped")

// pageConcurrency bounds the tickets of one page stored at once.
const pageConcurrency = 32

// PollMetrics are the poll runner's metrics, shared by all sources.
type PollMetrics struct {
	pages    *prometheus.CounterVec
	tickets  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	leader   *prometheus.GaugeVec
	stopped  *prometheus.GaugeVec
	api      *prometheus.CounterVec
	retries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewPollMetrics registers the poll metrics with reg (nil: unregistered).
func NewPollMetrics(reg prometheus.Registerer) *PollMetrics {
	f := promauto.With(reg)
	return &PollMetrics{
		pages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_poll_pages_total",
			Help: "Pages fetched and fully stored, by source.",
		}, []string{"source"}),
		tickets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_poll_tickets_total",
			Help: "Tickets stored by polling, by source and outcome (stored, rejected).",
		}, []string{"source", "outcome"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_poll_errors_total",
			Help: "Failed polls, by source and kind (auth, rate_limited, vendor, network, store).",
		}, []string{"source", "kind"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deskrelay_poll_lag_seconds",
			Help: "Now minus the stored watermark's update time, by source.",
		}, []string{"source"}),
		leader: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deskrelay_poll_lease_held",
			Help: "1 while this replica holds the source's poll lease.",
		}, []string{"source"}),
		stopped: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deskrelay_poll_stopped",
			Help: "1 when the source's poller stopped because the vendor refused its credentials.",
		}, []string{"source"}),
		api: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_vendor_api_responses_total",
			Help: "Vendor API answers, by source and HTTP status code (every attempt).",
		}, []string{"source", "code"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "deskrelay_vendor_api_retries_total",
			Help: "Vendor API calls retried, by source.",
		}, []string{"source"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deskrelay_poll_duration_seconds",
			Help:    "Time to fetch and store one page, by source.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"source"}),
	}
}

// PollRunner polls one source under a lease and stores what it finds.
type PollRunner struct {
	Source   string // configured name
	Holder   string // this replica's identity in the lease
	Poller   Poller
	Sink     Sink
	DLQ      DeadLetters
	Cursors  Cursors
	Lease    Lease
	Interval time.Duration
	LeaseTTL time.Duration
	Log      *zap.Logger
	Metrics  *PollMetrics
	// Now and Sleep are the clock; nil uses the real one (tests replace
	// them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Run polls until ctx is done (returns nil) or the vendor refuses the
// credentials (returns an error wrapping [ErrPollerStopped]). It holds the
// lease while it polls and releases it on return.
func (r *PollRunner) Run(ctx context.Context) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	sleep := r.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	m := r.Metrics
	for _, k := range []string{"auth", "rate_limited", "vendor", "network", "store"} {
		m.errors.WithLabelValues(r.Source, k)
	}
	m.tickets.WithLabelValues(r.Source, "stored")
	m.tickets.WithLabelValues(r.Source, "rejected")
	m.stopped.WithLabelValues(r.Source).Set(0)
	log := r.Log.With(zap.String("source", r.Source))
	held := false
	defer func() {
		m.leader.WithLabelValues(r.Source).Set(0)
		if held {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Lease.Release(rctx, r.Source, r.Holder); err != nil {
				log.Warn("poll lease not released; another replica takes over when it lapses", zap.Error(err))
			}
		}
	}()
	backoff := time.Duration(0)
	renewEvery := r.LeaseTTL / 3
	lastRenew := time.Time{}
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Hold the lease: renew it well before it lapses.
		if !held || now().Sub(lastRenew) >= renewEvery {
			ok, err := r.Lease.Acquire(ctx, r.Source, r.Holder, r.LeaseTTL)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return nil
				}
				log.Warn("poll lease check failed", zap.Error(err))
				held = false
			case ok && !held:
				log.Info("poll lease acquired", zap.String("holder", r.Holder))
			case !ok && held:
				log.Warn("poll lease lost to another replica")
			}
			held = ok && err == nil
			if held {
				lastRenew = now()
			}
			m.leader.WithLabelValues(r.Source).Set(b2f(held))
			if !held {
				if err := sleep(ctx, renewEvery); err != nil {
					return nil
				}
				continue
			}
		}
		more, wait, err := r.once(ctx, log, now)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ve *VendorError
			if errors.As(err, &ve) && ve.Fatal() {
				m.errors.WithLabelValues(r.Source, "auth").Inc()
				m.stopped.WithLabelValues(r.Source).Set(1)
				log.Error("poller stopped: the vendor refused deskrelay's credentials; fix api.auth and restart", zap.Error(err))
				return fmt.Errorf("source %q: %w: %w", r.Source, ErrPollerStopped, err)
			}
			backoff = nextBackoff(backoff, r.Interval)
			d := max(wait, backoff)
			log.Warn("poll failed, retrying", zap.Error(err), zap.Duration("retry_in", d))
			if err := sleep(ctx, d); err != nil {
				return nil
			}
			continue
		}
		backoff = 0
		if more {
			continue // drain the backlog page by page
		}
		if err := sleep(ctx, r.Interval); err != nil {
			return nil
		}
	}
}

// once polls one page and stores it. It returns whether more pages are
// ready, and how long to wait before the next try after an error.
func (r *PollRunner) once(ctx context.Context, log *zap.Logger, now func() time.Time) (more bool, wait time.Duration, err error) {
	m := r.Metrics
	start := now()
	cur, err := r.Cursors.Load(ctx, r.Source)
	if err != nil {
		m.errors.WithLabelValues(r.Source, "store").Inc()
		return false, 0, fmt.Errorf("load cursor: %w", err)
	}
	page, err := r.Poller.Poll(ctx, cur)
	if err != nil {
		var ve *VendorError
		switch {
		case errors.As(err, &ve) && ve.Status == http.StatusTooManyRequests:
			m.errors.WithLabelValues(r.Source, "rate_limited").Inc()
			return false, ve.RetryAfter, err
		case errors.As(err, &ve):
			if !ve.Fatal() {
				m.errors.WithLabelValues(r.Source, "vendor").Inc()
			}
			return false, ve.RetryAfter, err
		default:
			m.errors.WithLabelValues(r.Source, "network").Inc()
			return false, 0, err
		}
	}
	// A ticket the store would refuse blocks the poller forever if it is
	// retried: dead-letter it with the vendor's record instead.
	valid := page.Tickets[:0:0]
	for _, t := range page.Tickets {
		t.Source = r.Source
		if err := t.Validate(); err != nil {
			payload := []byte(t.Raw)
			if len(payload) == 0 {
				payload, _ = json.Marshal(t)
			}
			page.Rejects = append(page.Rejects, Reject{ID: t.ID, Err: err, Payload: payload})
			continue
		}
		valid = append(valid, t)
	}
	page.Tickets = valid
	// Store the page's tickets concurrently (a backlog drains at the
	// store's throughput, not at one round trip per ticket); the cursor is
	// stored below only once every one of them was acknowledged.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pageConcurrency)
	for i := range page.Tickets {
		t := &page.Tickets[i]
		g.Go(func() error {
			if err := r.Sink.Ingest(gctx, *t); err != nil {
				return fmt.Errorf("store ticket %s: %w", t.ID, err)
			}
			m.tickets.WithLabelValues(r.Source, "stored").Inc()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		m.errors.WithLabelValues(r.Source, "store").Inc()
		return false, 0, err
	}
	for _, rej := range page.Rejects {
		d := &ticket.DeadLetter{
			Schema: ticket.DeadLetterSchema, Reason: ticket.ReasonInvalid, Error: rej.Err.Error(),
			Source: r.Source, TicketID: rej.ID, Deliveries: 1, FailedAt: now().UTC(),
		}
		d.SetPayload(rej.Payload)
		if err := r.DLQ.DeadLetter(ctx, d); err != nil {
			m.errors.WithLabelValues(r.Source, "store").Inc()
			return false, 0, fmt.Errorf("dead-letter record %s: %w", rej.ID, err)
		}
		m.tickets.WithLabelValues(r.Source, "rejected").Inc()
		log.Warn("vendor record dead-lettered", zap.String("ticket_id", rej.ID), zap.Error(rej.Err))
	}
	if page.Cursor != nil {
		if err := r.Cursors.Store(ctx, r.Source, page.Cursor); err != nil {
			m.errors.WithLabelValues(r.Source, "store").Inc()
			return false, 0, fmt.Errorf("store cursor: %w", err)
		}
	}
	m.pages.WithLabelValues(r.Source).Inc()
	m.duration.WithLabelValues(r.Source).Observe(now().Sub(start).Seconds())
	if !page.Watermark.IsZero() {
		m.lag.WithLabelValues(r.Source).Set(now().Sub(page.Watermark).Seconds())
	}
	log.Debug("poll page stored", zap.Int("tickets", len(page.Tickets)), zap.Int("rejects", len(page.Rejects)), zap.Bool("more", page.More))
	return page.More, 0, nil
}

// nextBackoff doubles prev (starting at 1s) up to limit, with ±20% jitter.
func nextBackoff(prev, limit time.Duration) time.Duration {
	d := max(time.Second, 2*prev)
	if limit > time.Second {
		d = min(d, limit)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + jitter
}

// Sleep waits d, or until ctx is done (its error). It is the real clock
// of a [PollRunner] and of pollers that pace their own requests.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date).
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
