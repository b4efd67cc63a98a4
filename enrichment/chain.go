package enrichment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

// Source is one place a caller's profile can come from.
//
// Lookup returns the profile and true when the source knows the caller,
// false when it does not, and an error when it could not tell. It must
// return promptly once ctx is done, and its errors must not contain the
// caller's email or id (they are logged). Implementations are safe for
// concurrent use.
type Source interface {
	// Name identifies the source in metrics, logs and profiles; it is
	// fixed at start-up ("directory").
	Name() string
	Lookup(ctx context.Context, c ticket.Caller) (ticket.Profile, bool, error)
}

// ErrNoAnswer is returned by [Chain.Lookup] when every source failed or
// timed out, so that nothing is known about the caller, not even that they
// are unknown.
var ErrNoAnswer = errors.New("no profile source answered")

// SourceNone is the Source of the profile [Chain.Lookup] returns when no
// source knows the caller.
const SourceNone = "none"

// Chain asks its sources in order for a caller's profile and returns the
// first hit, keeping answers in a [Cache] when it has one. It is safe for
// concurrent use.
type Chain struct {
	log     *zap.Logger
	timeout time.Duration
	sources []chainSource
	cache   *Cache
	m       *Metrics
	now     func() time.Time
}

type chainSource struct {
	Source
	name    string
	timeout time.Duration
	local   bool
	n       counters
}

// Timeouter is implemented by a [Source] that has its own per-lookup
// timeout; the chain's timeout applies to the others.
type Timeouter interface {
	Timeout() time.Duration
}

// Local is implemented by a [Source] that answers from memory without
// I/O, such as the [Directory]'s mirror of the bucket: the chain asks it
// without a timeout and, while no slow source came before it, before its
// cache and without caching its answers (a second copy would only push
// the answers of slow sources out of the cache). Local must return the
// same value for the life of the source.
type Local interface {
	Local() bool
}

// NewChain returns a chain over sources, tried in order. Each source gets
// at most timeout per lookup (no limit when timeout ≤ 0), or its own
// timeout when it is a [Timeouter], or none when it is [Local]; a source
// that fails or times out is logged at warn level and counted in m, and
// the chain goes on to the next. A nil m counts into unregistered
// collectors.
func NewChain(log *zap.Logger, m *Metrics, timeout time.Duration, sources ...Source) *Chain {
	if m == nil {
		m = NewMetrics(nil)
	}
	c := &Chain{log: log.Named("enrichment"), timeout: timeout, m: m, now: time.Now}
	for _, s := range sources {
		name := s.Name()
		d := timeout
		if t, ok := s.(Timeouter); ok && t.Timeout() > 0 {
			d = t.Timeout()
		}
		l, ok := s.(Local)
		local := ok && l.Local()
		if local {
			d = 0
		}
		c.sources = append(c.sources, chainSource{Source: s, name: name, timeout: d, local: local, n: m.forSource(name)})
	}
	return c
}

// WithCache returns a copy of c that answers from cache when it can and
// keeps what its sources answer there: known profiles, and unknown ones
// when every source answered. Answers that end in an error are not kept.
func (c *Chain) WithCache(cache *Cache) *Chain {
	cc := *c
	cc.cache = cache
	return &cc
}

// Sources returns the names of the chain's sources, in order.
func (c *Chain) Sources() []string {
	names := make([]string, len(c.sources))
	for i, s := range c.sources {
		names[i] = s.name
	}
	return names
}

// Lookup returns the caller's profile from the cache, else from the first
// source that knows it. A profile without a Source is labelled with the
// source's name. When no source knows the caller, or the ticket names no
// caller, the profile is unknown with Source [SourceNone] and a Reason
// that names which keys were tried and which sources did not answer
// (never the caller's email or id). When no source could give a definite
// answer (every one failed or timed out), the error wraps [ErrNoAnswer]:
// the caller should retry later rather than serve the ticket as unknown.
// The error is also non-nil when ctx is done.
//
// The profile may share its Competence and Attitude with the cache and
// the directory: do not modify them. On a cache hit Lookup does not
// allocate.
func (c *Chain) Lookup(ctx context.Context, caller ticket.Caller) (ticket.Profile, error) {
	p, _, err := c.lookup(ctx, caller, nil, false)
	return p, err
}

// Step is what one source answered during [Chain.Explain].
type Step struct {
	Source string `json:"source"`
	// Result is hit, miss, error or timeout.
	Result   string          `json:"result"`
	Duration time.Duration   `json:"duration"`
	Error    string          `json:"error,omitempty"`
	Profile  *ticket.Profile `json:"profile,omitempty"`
}

// Trace explains one lookup: the profile, which source gave it and when,
// and what every source asked answered.
type Trace struct {
	Profile ticket.Profile `json:"profile"`
	// Source is the source that answered, or [SourceNone].
	Source string `json:"source"`
	// At is when the sources answered; for a cached profile, when it was
	// cached.
	At     time.Time `json:"at"`
	Cached bool      `json:"cached"`
	Steps  []Step    `json:"steps"`
}

// Explain looks the caller up as [Chain.Lookup] does and records every
// step. With all, it asks every source, even after a hit (the profile is
// still the first hit's), and skips the cache.
func (c *Chain) Explain(ctx context.Context, caller ticket.Caller, all bool) (Trace, error) {
	tr := &Trace{}
	p, at, err := c.lookup(ctx, caller, tr, all)
	tr.Profile, tr.At = p, at
	tr.Source = p.Source
	return *tr, err
}

func (c *Chain) lookup(ctx context.Context, caller ticket.Caller, tr *Trace, all bool) (ticket.Profile, time.Time, error) {
	if err := ctx.Err(); err != nil {
		c.m.chainCounters[LookupCancelled].Inc()
		return ticket.Profile{}, time.Time{}, err
	}
	// Sources whose answer depends on the ticket rather than only on the
	// caller (inference) are never cached, and still run when the cache or
	// a missing caller key already says "unknown".
	ticketOnly := false
	fallback := unknown("no caller id or email on the ticket")
	if caller.ID == "" && caller.Email == "" {
		ticketOnly = true
	}
	// The cache is asked just before the first source that is not Local:
	// a caller the directory knows is answered from its mirror, which
	// costs no more than the cache would.
	useCache := c.cache != nil && !all && !ticketOnly
	asked := false // the cache, and so some source that is not Local
	var gen uint64
	var (
		failed   []string
		answered bool
		found    ticket.Profile // when known
		known    bool
	)
	for i := range c.sources {
		s := &c.sources[i]
		if useCache && !asked && !s.local {
			asked = true
			if p, at, ok := c.cache.get(caller); ok {
				if tr != nil {
					tr.Cached = true
				}
				if p.Name != ticket.Unknown || !c.hasTicketSources() {
					c.m.chainCounters[LookupCached].Inc()
					return p, at, nil
				}
				ticketOnly, fallback = true, p
			}
			gen = c.cache.generation()
		}
		if ticketOnly && !ticketDependent(s) {
			continue
		}
		p, ok, result, err := c.try(ctx, s, caller, tr)
		if err != nil {
			c.m.chainCounters[LookupCancelled].Inc()
			return ticket.Profile{}, time.Time{}, err
		}
		if ok {
			if !known {
				found, known = p, true
			}
			if !all {
				break
			}
			continue
		}
		switch {
		case ticketDependent(s):
		case result == ResultMiss:
			answered = true
		default:
			failed = append(failed, s.name+" ("+result+")")
		}
	}
	at := c.now()
	// Nothing is known when every caller source failed: retry rather than
	// serve the caller as unknown, or as inferred from one ticket.
	if !ticketOnly && !answered && len(failed) > 0 && (!known || found.Source == SourceInferred) {
		c.m.chainCounters[LookupNoAnswer].Inc()
		return ticket.Profile{}, at, fmt.Errorf("%w: %s", ErrNoAnswer, strings.Join(failed, ", "))
	}
	// reason is built only where an unknown profile is kept or returned.
	reason := func() string {
		r := "caller " + triedKeys(caller) + " not in any profile source"
		if len(failed) > 0 {
			r += "; no answer from " + strings.Join(failed, ", ")
		}
		return r
	}
	// Only answers that needed a source beyond the Local ones are kept.
	cacheable := asked && !ticketOnly && len(failed) == 0
	if known {
		c.m.chainCounters[LookupKnown].Inc()
		switch {
		case found.Source == SourceInferred:
			// Remember that the caller is unknown to the directory-like
			// sources, not the inference from this one ticket.
			if cacheable {
				c.cache.put(caller, unknown(reason()), at, gen)
			}
		case asked && !ticketOnly:
			// A source that is not Local was asked first (it missed): keep
			// the answer, even a Local one's, so that it is not asked again.
			c.cache.put(caller, found, at, gen)
		}
		return found, at, nil
	}
	if ticketOnly {
		c.m.chainCounters[LookupUnknown].Inc()
		return fallback, at, nil
	}
	c.m.chainCounters[LookupUnknown].Inc()
	p := unknown(reason())
	if cacheable {
		// Every source said no: remember that for the negative TTL.
		c.cache.put(caller, p, at, gen)
	}
	return p, at, nil
}

// ticketDependent reports whether a source answers from the ticket rather
// than from what is known of the caller (inference).
func ticketDependent(s *chainSource) bool { return s.name == SourceInferred }

func (c *Chain) hasTicketSources() bool {
	for i := range c.sources {
		if ticketDependent(&c.sources[i]) {
			return true
		}
	}
	return false
}

// try asks one source. err is non-nil only when ctx is done.
func (c *Chain) try(ctx context.Context, s *chainSource, caller ticket.Caller, tr *Trace) (p ticket.Profile, ok bool, result string, err error) {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if s.timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, s.timeout)
	}
	defer cancel()
	start := time.Now()
	p, ok, lerr := s.Lookup(sctx, caller)
	if tr != nil {
		defer func() {
			if err != nil {
				return
			}
			st := Step{Source: s.name, Result: result, Duration: time.Since(start)}
			if lerr != nil {
				st.Error = lerr.Error()
			}
			if ok {
				pc := p
				st.Profile = &pc
			}
			tr.Steps = append(tr.Steps, st)
		}()
	}
	switch {
	case lerr == nil && ok:
		s.n.hit.Inc()
		if p.Source == "" {
			p.Source = s.name
		}
		if p.At.IsZero() { // a live answer dates from now
			p.At = c.now().UTC()
		}
		return p, true, ResultHit, nil
	case lerr == nil:
		s.n.miss.Inc()
		return ticket.Profile{}, false, ResultMiss, nil
	case ctx.Err() != nil: // the caller gave up, not the source
		return ticket.Profile{}, false, "", ctx.Err()
	}
	result = ResultError
	if errors.Is(lerr, context.DeadlineExceeded) || sctx.Err() != nil {
		result = ResultTimeout
		s.n.timeout.Inc()
	} else {
		s.n.err.Inc()
	}
	c.log.Warn("profile source failed, trying the next",
		zap.String("profile_source", s.name),
		zap.String("result", result),
		zap.Duration("duration", time.Since(start)),
		zap.Error(lerr))
	return ticket.Profile{}, false, result, nil
}

func triedKeys(c ticket.Caller) string {
	switch {
	case c.Email != "" && c.ID != "":
		return "email and id"
	case c.Email != "":
		return "email"
	default:
		return "id"
	}
}

func unknown(reason string) ticket.Profile {
	return ticket.Profile{Name: ticket.Unknown, Source: SourceNone, Reason: reason}
}
