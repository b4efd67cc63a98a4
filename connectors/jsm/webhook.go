package jsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// Header names of Jira Cloud webhook deliveries (SOURCES.md, "Webhook
// signature"). HeaderSignature is present only on admin webhooks
// registered with a secret; HeaderIdentifier is unique per delivery and
// unchanged on retries.
const (
	HeaderSignature  = "X-Hub-Signature"
	HeaderIdentifier = "X-Atlassian-Webhook-Identifier"
)

// webhook verifies and normalises Jira issue webhooks of one source.
type webhook struct {
	set *settings
	log *zap.Logger
	v   *verifier
}

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	set, errs, _ := parseOptions(src)
	v, verrs := newVerifier(src)
	errs = append(errs, verrs...)
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	log := src.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &webhook{set: set, log: log, v: v}, nil
}

// verifier checks Jira's X-Hub-Signature (auth type hmac), or delegates
// to the configured auth block for the other types (a proxy in front of
// deskrelay that adds a bearer token, say).
type verifier struct {
	secret []byte
	other  *connectors.Auth
}

// newVerifier checks the auth block. With type hmac the scheme is Jira's
// and fixed: WebSub-style "sha256=<lowercase hex HMAC-SHA256 of the raw
// body>" in X-Hub-Signature, keyed with the secret's UTF-8 bytes, with no
// timestamp (SOURCES.md, "Webhook signature"); the keys that would change
// it are refused rather than ignored.
func newVerifier(src connectors.Source) (*verifier, config.Errors) {
	a := src.Config.Auth
	path := src.Path("auth")
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(path+"."+key, format, args...))
	}
	switch a.Type {
	case "hmac":
		if !a.Secret.IsSet() {
			bad("secret", "is required: the secret given to the Jira webhook (env:NAME or file:PATH)")
		}
		if a.Header != "" && textproto.CanonicalMIMEHeaderKey(a.Header) != HeaderSignature {
			bad("header", "Jira signs in %s; remove header or set it to %s", HeaderSignature, HeaderSignature)
		}
		if a.Encoding != "" && a.Encoding != "hex" {
			bad("encoding", "Jira signs in hex; remove encoding")
		}
		if a.Prefix != "" && a.Prefix != "sha256=" {
			bad("prefix", "Jira's signature starts with sha256=; remove prefix")
		}
		if a.TimestampHeader != "" || a.ReplayWindow != 0 {
			bad("timestamp_header", "Jira signs no timestamp, so there is no replay window; remove timestamp_header and replay_window")
		}
		return &verifier{secret: []byte(a.Secret.Reveal())}, errs
	case "":
		bad("type", "is required: hmac (the secret set on the Jira webhook, checked against %s) or none", HeaderSignature)
		return nil, errs
	}
	other, err := connectors.NewAuth(path, a)
	if err != nil {
		return nil, config.AsErrors(err)
	}
	return &verifier{other: other}, nil
}

// Verify checks the request before its body is parsed, in constant time.
func (w *webhook) Verify(h http.Header, body []byte) error { return w.v.Verify(h, body) }

func (v *verifier) Verify(h http.Header, body []byte) error {
	if v.other != nil {
		return v.other.Verify(h, body)
	}
	got := h.Get(HeaderSignature)
	if got == "" {
		return fmt.Errorf("%w: missing %s header; give the Jira webhook a secret (only admin webhooks with a secret are signed)", connectors.ErrUnauthorized, HeaderSignature)
	}
	method, sig, ok := strings.Cut(got, "=")
	if !ok {
		return fmt.Errorf("%w: %s is not of the form sha256=<hex>", connectors.ErrUnauthorized, HeaderSignature)
	}
	if !strings.EqualFold(method, "sha256") {
		return fmt.Errorf("%w: %s uses %q; only sha256 is accepted", connectors.ErrUnauthorized, HeaderSignature, truncate(method, 16))
	}
	if !connectors.CheckHMAC(v.secret, body, sig, "hex") {
		return fmt.Errorf("%w: %s does not match the body; check auth.secret against the webhook's secret in Jira", connectors.ErrUnauthorized, HeaderSignature)
	}
	return nil
}

// Sign returns the headers Jira would send with body.
func (v *verifier) Sign(body []byte, now time.Time) http.Header {
	if v.other != nil {
		return v.other.Sign(body, now)
	}
	h := http.Header{}
	h.Set(HeaderSignature, "sha256="+connectors.SignHMAC(v.secret, body, "hex"))
	return h
}

// sign is the Spec's Sign, for `deskrelay send`.
func sign(src connectors.Source, body []byte, now time.Time) (http.Header, error) {
	v, errs := newVerifier(src)
	if len(errs) > 0 {
		return nil, errs
	}
	return v.Sign(body, now), nil
}

// envelope is an issue event webhook body (SOURCES.md, "Webhook
// envelope"): timestamp in epoch milliseconds, the event names, the issue
// and, on comment events, the comment.
type envelope struct {
	Timestamp json.Number     `json:"timestamp"`
	Event     string          `json:"webhookEvent"`
	EventType string          `json:"issue_event_type_name"`
	Issue     json.RawMessage `json:"issue"`
	Comment   json.RawMessage `json:"comment"`
}

// Normalize turns an issue webhook into a ticket: id = the issue's numeric
// id (stable when the issue moves and its key changes), number = the key,
// caller = the reporter, raw = the whole body.
func (w *webhook) Normalize(_ context.Context, h http.Header, body []byte) (ticket.Ticket, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return ticket.Ticket{}, connectors.Inputf(te.Field, "must be a JSON %s, not %s", jsonKind(te.Type), te.Value)
		case errors.As(err, &te) && te.Type == reflect.TypeFor[json.Number]():
			// The v2 engine names no field for a json.Number; timestamp
			// is the envelope's only one.
			return ticket.Ticket{}, connectors.Inputf("timestamp", "must be a JSON number, not %s", te.Value)
		}
		return ticket.Ticket{}, connectors.Inputf("", "body is not a Jira webhook JSON object: %v", plain(err))
	}
	if len(env.Issue) == 0 || isNull(env.Issue) {
		return ticket.Ticket{}, connectors.Inputf("issue", "webhook event %q carries no issue; subscribe this webhook to issue events only", truncate(env.Event, 64))
	}
	t, notes, err := w.set.normalize(env.Issue, "issue.", env.Comment)
	if err != nil {
		return ticket.Ticket{}, err
	}
	var sent time.Time
	if ms, err := env.Timestamp.Int64(); err == nil && ms > 0 {
		sent = millis(ms)
	}
	switch {
	case env.Event == "jira:issue_deleted":
		// The issue's updated time is that of its last edit: key the
		// deletion by the delivery's own time so it is not taken for a
		// duplicate of that edit.
		t.State = "deleted"
		if !sent.IsZero() {
			t.UpdatedAt = sent
		}
	case t.UpdatedAt.IsZero():
		// Comment events may carry an issue without updated.
		t.UpdatedAt = sent
	}
	if err := checkTicket(t); err != nil {
		return ticket.Ticket{}, err
	}
	t.Raw = bytes.Clone(body)
	if len(notes) == 0 && !w.log.Core().Enabled(zap.DebugLevel) {
		return t, nil // no logger with fields for nothing to log
	}
	log := w.log.With(zap.String("ticket_id", t.ID), zap.String("webhook_id", truncate(h.Get(HeaderIdentifier), 64)))
	for _, n := range notes {
		log.Warn("jira value not in the code table; field left empty", zap.String("field", n.Field), zap.String("value", truncate(n.Value, 64)))
	}
	log.Debug("jira webhook normalised", zap.String("event", truncate(env.Event, 64)), zap.String("event_type", truncate(env.EventType, 64)))
	return t, nil
}
