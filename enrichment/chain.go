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
// first hit. It is safe for concurrent use.
type Chain struct {
	log     *zap.Logger
	timeout time.Duration
	sources []chainSource
}

type chainSource struct {
	Source
	name string
	n    counters
}

// NewChain returns a chain over sources, tried in order. Each source gets
// at most timeout per lookup (no limit when timeout ≤ 0); a source that
// fails or times out is logged at warn level and counted in m, and the
// chain goes on to the next. A nil m counts into unregistered collectors.
func NewChain(log *zap.Logger, m *Metrics, timeout time.Duration, sources ...Source) *Chain {
	if m == nil {
		m = NewMetrics(nil)
	}
	c := &Chain{log: log.Named("enrichment"), timeout: timeout}
	for _, s := range sources {
		name := s.Name()
		c.sources = append(c.sources, chainSource{Source: s, name: name, n: m.forSource(name)})
	}
	return c
}

// Lookup returns the caller's profile from the first source that knows it.
// A profile without a Source is labelled with the source's name. When no
// source knows the caller, or the ticket names no caller, the profile is
// unknown with Source [SourceNone] and a Reason that names which keys were
// tried and which sources did not answer (never the caller's email or id).
// When no source could give a definite answer (every one failed or timed
// out), the error wraps [ErrNoAnswer]: the caller should retry later
// rather than serve the ticket as unknown. The error is also non-nil when
// ctx is done.
func (c *Chain) Lookup(ctx context.Context, caller ticket.Caller) (ticket.Profile, error) {
	if err := ctx.Err(); err != nil {
		return ticket.Profile{}, err
	}
	if caller.ID == "" && caller.Email == "" {
		return unknown("no caller id or email on the ticket"), nil
	}
	var failed []string
	answered := false
	for i := range c.sources {
		s := &c.sources[i]
		p, ok, result, err := c.try(ctx, s, caller)
		if err != nil {
			return ticket.Profile{}, err
		}
		if ok {
			return p, nil
		}
		if result == ResultMiss {
			answered = true
		} else {
			failed = append(failed, s.name+" ("+result+")")
		}
	}
	if !answered && len(failed) > 0 {
		return ticket.Profile{}, fmt.Errorf("%w: %s", ErrNoAnswer, strings.Join(failed, ", "))
	}
	reason := "caller " + triedKeys(caller) + " not in any profile source"
	if len(failed) > 0 {
		reason += "; no answer from " + strings.Join(failed, ", ")
	}
	return unknown(reason), nil
}

// try asks one source. err is non-nil only when ctx is done.
func (c *Chain) try(ctx context.Context, s *chainSource, caller ticket.Caller) (p ticket.Profile, ok bool, result string, err error) {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if c.timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()
	start := time.Now()
	p, ok, lerr := s.Lookup(sctx, caller)
	switch {
	case lerr == nil && ok:
		s.n.hit.Inc()
		if p.Source == "" {
			p.Source = s.name
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
