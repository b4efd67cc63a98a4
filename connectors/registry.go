package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// Spec describes a vendor connector. Vendors register one from init.
type Spec struct {
	// Type is the value of connectors.<name>.type that selects this vendor.
	Type string
	// Summary is one line for `deskrelay connectors list` and the docs.
	Summary string
	// Options lists the vendor-specific config keys (besides type, auth
	// and max_body_bytes); any other key is a config error.
	Options []string
	// NewWebhook builds the webhook decoder of one configured source. It
	// checks the source's options and returns config.Errors with key
	// paths under connectors.<name>. Nil when the vendor cannot push.
	NewWebhook func(src Source) (Webhook, error)
	// NewPoller builds the poller of a source whose poll.enabled is true.
	// Nil when the vendor cannot be polled.
	NewPoller func(src Source) (Poller, error)
	// Check makes one authenticated read against the vendor API with the
	// configured credentials, for `deskrelay connectors check` (see
	// [CheckAPI]). Nil when the vendor has no API.
	Check func(ctx context.Context, src Source) ([]Finding, error)
	// Sign returns the headers that authenticate body the way the vendor
	// does, for `deskrelay send`. Nil: the configured auth block signs
	// (see [Auth.Sign]).
	Sign func(src Source, body []byte, now time.Time) (http.Header, error)
}

// Source is one configured connector instance, as handed to a Spec's
// constructors.
type Source struct {
	// Name is the key under connectors: in the config, used in the URL,
	// the ingest subject and the ticket's source field.
	Name   string
	Config config.Connector
	Log    *zap.Logger
	// Metrics counts vendor API calls; nil counts into unregistered
	// collectors.
	Metrics *PollMetrics
}

// Path returns the config key path of an option of this source.
func (s Source) Path(key string) string { return "connectors." + s.Name + "." + key }

// Webhook turns a webhook body that was already authenticated into a
// normalised ticket. Normalize returns an *[InputError] for a body it
// cannot use; it must not keep body after returning.
type Webhook interface {
	Normalize(ctx context.Context, h http.Header, body []byte) (ticket.Ticket, error)
}

// Verifier is implemented by a Webhook whose vendor signs requests its own
// way (a timestamped signature, say); the ingress then calls Verify instead
// of the configured auth. Verify returns an error wrapping [ErrUnauthorized]
// when the request must be refused.
type Verifier interface {
	Verify(h http.Header, body []byte) error
}

// Sink stores a normalised ticket durably. Ingest returns nil only after
// the store acknowledged it; any error means the ticket was not stored.
// The sender must retry, unless the error has a method TooLarge() bool or
// BadInput() bool that returns true: then retrying cannot help (the
// ingress answers 413 or 400).
type Sink interface {
	Ingest(ctx context.Context, t ticket.Ticket) error
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Spec{}
)

// Register adds a vendor. It panics on an empty or duplicate Type: both
// are programming errors found at start-up.
func Register(s Spec) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if s.Type == "" {
		panic("connectors: Register with empty Type")
	}
	if _, dup := registry[s.Type]; dup {
		panic(fmt.Sprintf("connectors: Register called twice for type %q", s.Type))
	}
	registry[s.Type] = s
}

// Lookup returns the spec registered for typ.
func Lookup(typ string) (Spec, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s, ok := registry[typ]
	return s, ok
}

// Types lists the registered connector types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ErrUnauthorized is wrapped by authentication failures.
var ErrUnauthorized = errors.New("unauthorized")

// InputError is a payload problem the sender can fix: the ingress answers
// 400 with Msg. Field names the ticket field or payload path when known.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Inputf returns an *InputError.
func Inputf(field, format string, args ...any) *InputError {
	return &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Built holds what [Build] made of the connectors config.
type Built struct {
	// Endpoints are the webhook sources, by configured name.
	Endpoints map[string]*Endpoint
	// Pollers are the sources with poll.enabled, by configured name.
	Pollers map[string]Poller
}

// Build checks every configured connector and builds its webhook endpoint
// and, where poll.enabled is set, its poller. It does no I/O. The error is
// config.Errors listing every problem, with key paths. m counts the vendor
// API calls of the built parts (nil: unregistered).
func Build(cfg map[string]config.Connector, defaultMaxBody int64, log *zap.Logger, m *PollMetrics) (*Built, error) {
	var errs config.Errors
	out := &Built{Endpoints: map[string]*Endpoint{}, Pollers: map[string]Poller{}}
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		c := cfg[name]
		path := "connectors." + name
		spec, ok := Lookup(c.Type)
		if !ok {
			if c.Type != "" {
				msg := fmt.Sprintf("unknown connector %q; known types: %s", c.Type, strings.Join(Types(), ", "))
				if s := config.Suggest(c.Type, Types()); s != "" {
					msg = fmt.Sprintf("unknown connector %q (did you mean %q?); known types: %s", c.Type, s, strings.Join(Types(), ", "))
				}
				errs = append(errs, config.Errorf(path+".type", "%s", msg))
			}
			continue
		}
		src := Source{Name: name, Config: c, Log: log.Named("connector." + c.Type).With(zap.String("source", name)), Metrics: m}
		for k := range c.Options {
			if !slices.Contains(spec.Options, k) {
				keys := append([]string{"type", "auth", "max_body_bytes", "api", "poll"}, spec.Options...)
				msg := fmt.Sprintf("unknown key %q for a %s connector", k, c.Type)
				if s := config.Suggest(k, keys); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				errs = append(errs, config.Errorf(src.Path(k), "%s; its keys are %s", msg, strings.Join(keys, ", ")))
			}
		}
		if c.Poll.Enabled {
			if spec.NewPoller == nil {
				errs = append(errs, config.Errorf(path+".poll.enabled", "a %s connector cannot poll; remove poll or set enabled: false", c.Type))
			} else if p, err := spec.NewPoller(src); err != nil {
				errs = append(errs, config.AsErrors(err)...)
			} else {
				out.Pollers[name] = p
			}
		}
		// A source without an auth block that polls takes no webhooks: it
		// gets no URL rather than one that refuses everything.
		if spec.NewWebhook == nil || (c.Poll.Enabled && c.Auth.Type == "") {
			continue
		}
		wh, err := spec.NewWebhook(src)
		if err != nil {
			errs = append(errs, config.AsErrors(err)...)
			continue
		}
		ep := &Endpoint{Name: name, Type: c.Type, Webhook: wh, MaxBodyBytes: c.MaxBodyBytes}
		if ep.MaxBodyBytes == 0 {
			ep.MaxBodyBytes = defaultMaxBody
		}
		if v, ok := wh.(Verifier); ok {
			ep.verify = v.Verify
		} else {
			auth, err := NewAuth(path+".auth", c.Auth)
			if err != nil {
				errs = append(errs, config.AsErrors(err)...)
				continue
			}
			ep.verify = auth.Verify
			ep.sign = func(body []byte, now time.Time) (http.Header, error) { return auth.Sign(body, now), nil }
		}
		if spec.Sign != nil {
			ep.sign = func(body []byte, now time.Time) (http.Header, error) { return spec.Sign(src, body, now) }
		}
		out.Endpoints[name] = ep
	}
	if len(errs) > 0 {
		return nil, dedupe(errs)
	}
	return out, nil
}

// dedupe drops repeated errors: a vendor's webhook and poller constructors
// may both report the same bad option.
func dedupe(errs config.Errors) config.Errors {
	seen := map[[2]string]bool{}
	out := errs[:0]
	for _, e := range errs {
		k := [2]string{e.Path, e.Msg}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// Endpoint is a configured webhook source, ready to serve.
type Endpoint struct {
	Name         string
	Type         string
	Webhook      Webhook
	MaxBodyBytes int64
	verify       func(http.Header, []byte) error
	sign         func([]byte, time.Time) (http.Header, error)
}

// Sign returns the headers a sender must add to body so that this
// endpoint accepts it at now (`deskrelay send`).
func (e *Endpoint) Sign(body []byte, now time.Time) (http.Header, error) {
	if e.sign == nil {
		return http.Header{}, nil
	}
	return e.sign(body, now)
}
