package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/deskrelay/deskrelay/ticket"
)

// SourceName is the name of the inference source and the Source of every
// profile it returns.
const SourceName = "inferred"

// DefaultMinConfidence is the confidence below which an inferred profile
// stays unknown when [WithMinConfidence] is not given. Confidence runs from
// 0.25 (nothing known) to 1; see [Inferrer.Infer].
const DefaultMinConfidence = 0.5

// MaxHistory is how many earlier tickets of the caller are read, the
// newest ones; older ones are ignored.
const MaxHistory = 20

// historyWeight scales the signals of an earlier ticket against those of
// the ticket being inferred.
const historyWeight = 0.35

// The prior log-odds of each axis, leaning towards the most common
// profile, Doer (high competence, fixes it myself). A ticket without any
// technical term also gets plainWeight, so a ticket with no signal at all
// comes out as a trier at confidence 0.29: unknown at any useful threshold.
const (
	priorCompetence = 0.3
	priorAttitude   = 0.1
)

// ErrInvalidOption wraps the error of an [Option] or of [NewMemory] given
// a bad value.
var ErrInvalidOption = errors.New("invalid inference option")

// History gives a caller's recent tickets, oldest first. Implementations
// are safe for concurrent use and return promptly once ctx is done.
type History interface {
	Recent(ctx context.Context, c ticket.Caller) ([]ticket.Ticket, error)
}

// Recorder is a [History] that [Inferrer.Lookup] feeds with every ticket
// it infers a profile for, after inferring it. Record must not block; a
// store that can fail handles its own errors.
type Recorder interface {
	Record(t ticket.Ticket)
}

// Inferrer estimates profiles. Build it with [New]; it is safe for
// concurrent use and implements enrichment.Source.
type Inferrer struct {
	vocab   *vocab
	min     float64
	history History
	metrics *Metrics
}

// Option configures an [Inferrer].
type Option func(*Inferrer) error

// WithMinConfidence sets the confidence below which the profile name stays
// unknown (scores still attached); 0 always names one of the four
// profiles. It must be within [0, 1].
func WithMinConfidence(x float64) Option {
	return func(in *Inferrer) error {
		if !(x >= 0 && x <= 1) {
			return fmt.Errorf("%w: min confidence must be within 0…1, got %v", ErrInvalidOption, x)
		}
		in.min = x
		return nil
	}
}

// WithHistory makes [Inferrer.Lookup] read the caller's earlier tickets
// from h, and record each ticket into h when h is also a [Recorder].
func WithHistory(h History) Option {
	return func(in *Inferrer) error {
		if h == nil {
			return fmt.Errorf("%w: nil history", ErrInvalidOption)
		}
		in.history = h
		return nil
	}
}

// WithMetrics observes every inferred confidence in m.
func WithMetrics(m *Metrics) Option {
	return func(in *Inferrer) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		in.metrics = m
		return nil
	}
}

// New returns an inferrer with the built-in vocabulary. An invalid option
// gives an error wrapping [ErrInvalidOption].
func New(opts ...Option) (*Inferrer, error) {
	v, err := compile(signals)
	if err != nil {
		return nil, fmt.Errorf("infer: built-in vocabulary: %w", err)
	}
	in := &Inferrer{vocab: v, min: DefaultMinConfidence}
	for _, o := range opts {
		if err := o(in); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// MinConfidence returns the threshold below which the profile stays unknown.
func (in *Inferrer) MinConfidence() float64 { return in.min }

// Name returns [SourceName].
func (in *Inferrer) Name() string { return SourceName }

type ctxKey struct{}

// ContextWithTicket returns a context that carries t to [Inferrer.Lookup].
// t must not change while the context is in use.
func ContextWithTicket(ctx context.Context, t *ticket.Ticket) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// TicketFromContext returns the ticket [ContextWithTicket] stored in ctx.
func TicketFromContext(ctx context.Context) (*ticket.Ticket, bool) {
	t, ok := ctx.Value(ctxKey{}).(*ticket.Ticket)
	return t, ok && t != nil
}

// Lookup infers the profile of the caller of the ticket in ctx (see
// [ContextWithTicket]) from that ticket and, with [WithHistory], the
// caller's earlier tickets. Without a ticket in ctx it reports a miss.
// When the history fails, the profile is inferred from the ticket alone and
// its Reason says so. The profile is returned even when its name is
// unknown, so that the scores reach the routed message. It never returns an
// error.
func (in *Inferrer) Lookup(ctx context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	t, ok := TicketFromContext(ctx)
	if !ok {
		return ticket.Profile{}, false, nil
	}
	var (
		hist    []ticket.Ticket
		histErr error
	)
	if in.history != nil {
		hist, histErr = in.history.Recent(ctx, c)
	}
	p := in.Infer(t, hist)
	if histErr != nil {
		p.Reason += "; caller history unavailable"
	}
	if r, ok := in.history.(Recorder); ok {
		r.Record(*t)
	}
	return p, true, nil
}

// Infer estimates the profile of t's caller from t and history, the
// caller's earlier tickets (oldest first; a ticket with t's ID is skipped,
// and only the newest [MaxHistory] are read).
//
// Competence and Attitude are the two axis scores in 0…1 (attitude 1 =
// "I fix it myself"); the name is their quadrant split at 0.5. Confidence
// is the product of each axis's distance from a coin toss, max(s, 1-s),
// so it runs from 0.25 to 1: read it as a ranking, not a calibrated
// probability (docs/inference.md shows how accuracy grows with it). Below
// the minimum confidence the name is unknown. Source is always
// [SourceName] and Reason names the signals that weighed most.
func (in *Inferrer) Infer(t *ticket.Ticket, history []ticket.Ticket) ticket.Profile {
	var ev evidence
	in.ticketEvidence(&ev, t, 1)
	if len(history) > MaxHistory {
		history = history[len(history)-MaxHistory:]
	}
	for i := range history {
		if history[i].ID != t.ID || t.ID == "" {
			in.ticketEvidence(&ev, &history[i], historyWeight)
			ev.history++
		}
	}
	c := sigmoid(priorCompetence + ev.competence)
	a := sigmoid(priorAttitude + ev.attitude)
	conf := round3(math.Max(c, 1-c) * math.Max(a, 1-a))
	c, a = round3(c), round3(a)
	p := ticket.Profile{Name: quadrant(c, a), Source: SourceName, Confidence: conf, Competence: &c, Attitude: &a}
	if conf < in.min {
		p.Reason = fmt.Sprintf("inferred %s with confidence %.3g, below the minimum %.3g", p.Name, conf, in.min)
		p.Name = ticket.Unknown
	} else {
		p.Reason = "inferred"
	}
	p.Reason += ev.explain()
	if in.metrics != nil {
		in.metrics.confidence.Observe(conf)
	}
	return p
}

func quadrant(competence, attitude float64) ticket.ProfileName {
	switch high, myself := competence >= 0.5, attitude >= 0.5; {
	case high && myself:
		return ticket.Doer
	case high:
		return ticket.Prioritizer
	case myself:
		return ticket.Trier
	default:
		return ticket.Supported
	}
}

// evidence sums the log-odds found on each axis.
type evidence struct {
	competence, attitude float64
	signals              uint32 // bit i: signals[i] seen; channelBit: a channel that weighs
	history              int
}

// Bits of evidence.signals beyond the vocabulary's signals.
const (
	plainBit   = 30
	channelBit = 31
)

// plainWeight is the competence of a ticket without a single technical
// term, error code or diagnosis: people who know IT use its words.
const plainWeight = -0.5

// Caps on the word shapes counted per ticket, so that a pasted log does
// not outweigh everything else.
const (
	maxCodes    = 2
	maxDotted   = 1
	maxAcronyms = 3
)

// The weights of word shapes on competence.
const (
	codeWeight    = 0.45
	dottedWeight  = 0.4
	acronymWeight = 0.15
)

func (in *Inferrer) ticketEvidence(ev *evidence, t *ticket.Ticket, w float64) {
	var (
		once                    seen
		codes, dotted, acronyms int
	)
	technical := false
	hit := func(e *entry) {
		technical = technical || e.group == technicalGroup || e.group == diagnosisGroup
		ev.competence += w * e.competence
		ev.attitude += w * e.attitude
		ev.signals |= 1 << e.group
	}
	shapes := func(s shape) {
		switch {
		case s == shapeCode && codes < maxCodes:
			codes++
			technical = true
			ev.competence += w * codeWeight
		case s == shapeDotted && dotted < maxDotted:
			dotted++
			technical = true
			ev.competence += w * dottedWeight
		case s == shapeAcronym && acronyms < maxAcronyms:
			acronyms++
			ev.competence += w * acronymWeight
		}
	}
	in.vocab.scan(t.Title, &once, hit, shapes)
	in.vocab.scan(t.Description, &once, hit, shapes)
	for _, tag := range t.Tags {
		in.vocab.scan(tag, &once, hit, shapes)
	}
	if !technical {
		ev.competence += w * plainWeight
		ev.signals |= 1 << plainBit
	}
	if dc, da := channelWeight(t.Channel); dc != 0 || da != 0 {
		ev.competence += w * dc
		ev.attitude += w * da
		ev.signals |= 1 << channelBit
	}
}

// channelWeight is what the channel a ticket came by says: the portal and
// virtual agent are self-service; phone and walk-in ask for a person.
func channelWeight(c ticket.Channel) (competence, attitude float64) {
	switch c {
	case ticket.ChannelPortal, ticket.ChannelVirtualAgent:
		return 0, 0.8
	case ticket.ChannelChat:
		return 0.2, 0.2
	case ticket.ChannelEmail:
		return 0, 0.1
	case ticket.ChannelPhone:
		return 0, -0.8
	case ticket.ChannelWalkIn:
		return -0.5, -1
	}
	return 0, 0
}

// explain lists the signals seen, for the profile's Reason.
func (ev *evidence) explain() string {
	if ev.signals == 0 && ev.history == 0 {
		return "; no signal found"
	}
	var b strings.Builder
	b.WriteString("; signals: ")
	sep := ""
	for i := range signals {
		if ev.signals&(1<<i) != 0 {
			b.WriteString(sep)
			b.WriteString(signals[i].name)
			sep = ", "
		}
	}
	if ev.signals&(1<<plainBit) != 0 {
		b.WriteString(sep)
		b.WriteString("no_technical_term")
		sep = ", "
	}
	if ev.signals&(1<<channelBit) != 0 {
		b.WriteString(sep)
		b.WriteString("channel")
		sep = ", "
	}
	if ev.history > 0 {
		fmt.Fprintf(&b, "%s%d earlier tickets", sep, ev.history)
	}
	return b.String()
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
