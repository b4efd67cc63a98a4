package zendesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// The headers of Zendesk's webhook signing
// (developer.zendesk.com/documentation/webhooks/verifying).
const (
	HeaderSignature = "X-Zendesk-Webhook-Signature"
	HeaderTimestamp = "X-Zendesk-Webhook-Signature-Timestamp"
)

// timestampLayout is how Zendesk writes the signed timestamp: ISO 8601 in
// UTC to the second ("2024-05-13T10:15:44Z").
const timestampLayout = "2006-01-02T15:04:05Z"

// verifier checks requests of one source: Zendesk's own signature (auth
// type hmac), or a bearer/basic credential Zendesk sends when the webhook
// is configured with one, or nothing (type none).
type verifier struct {
	kind   string
	secret []byte
	window time.Duration
	other  *connectors.Auth // bearer, basic, none
	refuse string           // non-empty: every request is refused with this
	now    func() time.Time
}

// newVerifier checks the auth block of src against what Zendesk can send.
func newVerifier(src connectors.Source, window time.Duration) (*verifier, error) {
	a := src.Config.Auth
	path := src.Path("auth")
	v := &verifier{kind: a.Type, window: window, now: time.Now}
	switch a.Type {
	case "hmac":
		var errs config.Errors
		if !a.Secret.IsSet() {
			errs = append(errs, config.Errorf(path+".secret", "is required: the webhook's signing secret from Admin Center (env:NAME or file:PATH)"))
		}
		// The scheme is fixed by Zendesk: refuse settings that suggest
		// another one rather than ignore them.
		if h := a.Header; h != "" && !strings.EqualFold(h, HeaderSignature) {
			errs = append(errs, config.Errorf(path+".header", "Zendesk signs in %s; remove header", HeaderSignature))
		}
		if h := a.TimestampHeader; h != "" && !strings.EqualFold(h, HeaderTimestamp) {
			errs = append(errs, config.Errorf(path+".timestamp_header", "Zendesk sends the timestamp in %s; remove timestamp_header", HeaderTimestamp))
		}
		if a.Encoding != "" && a.Encoding != "base64" {
			errs = append(errs, config.Errorf(path+".encoding", "Zendesk signatures are base64; remove encoding"))
		}
		if a.Prefix != "" {
			errs = append(errs, config.Errorf(path+".prefix", "Zendesk signatures have no prefix; remove prefix"))
		}
		if a.ReplayWindow != 0 {
			errs = append(errs, config.Errorf(path+".replay_window", "set connectors.%s.replay_window instead", src.Name))
		}
		if len(errs) > 0 {
			return nil, errs
		}
		v.secret = []byte(a.Secret.Reveal())
	case "":
		if !src.Config.Poll.Enabled {
			return nil, config.Errorf(path+".type", "is required: hmac (Zendesk's webhook signature), bearer, basic or none")
		}
		// A polled source that set up no webhook auth takes no webhooks:
		// its endpoint refuses every request instead of accepting
		// unsigned ones.
		v.refuse = fmt.Sprintf("source %q takes no webhooks (no auth configured); set connectors.%s.auth to accept them", src.Name, src.Name)
	default:
		other, err := connectors.NewAuth(path, a)
		if err != nil {
			return nil, err
		}
		v.other = other
	}
	return v, nil
}

// Verify checks a request over the raw body, before anything parses it.
// With Zendesk signing: the signature is base64(HMAC-SHA256(secret,
// timestamp + body)), the secret used as is, compared in constant time;
// the timestamp must lie within the replay window of now. Errors wrap
// [connectors.ErrUnauthorized].
func (v *verifier) Verify(h http.Header, body []byte) error {
	switch {
	case v.refuse != "":
		return fmt.Errorf("%w: %s", connectors.ErrUnauthorized, v.refuse)
	case v.other != nil:
		return v.other.Verify(h, body)
	}
	sig, ts := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" {
		return fmt.Errorf("%w: missing %s header", connectors.ErrUnauthorized, HeaderSignature)
	}
	if ts == "" {
		return fmt.Errorf("%w: missing %s header", connectors.ErrUnauthorized, HeaderTimestamp)
	}
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not an ISO 8601 time", connectors.ErrUnauthorized, HeaderTimestamp, ts)
	}
	msg := make([]byte, 0, len(ts)+len(body))
	msg = append(append(msg, ts...), body...)
	if !connectors.CheckHMAC(v.secret, msg, sig, "base64") {
		return fmt.Errorf("%w: %s does not match the body; check the signing secret in auth.secret", connectors.ErrUnauthorized, HeaderSignature)
	}
	if d := v.now().Sub(at); d > v.window || d < -v.window {
		return fmt.Errorf("%w: %s %s is %s away from now, outside the %s replay window", connectors.ErrUnauthorized, HeaderTimestamp, ts, d.Round(time.Second), v.window)
	}
	return nil
}

// Sign returns the headers that make Verify accept body at now, as Zendesk
// would send them.
func (v *verifier) Sign(body []byte, now time.Time) http.Header {
	if v.other != nil {
		return v.other.Sign(body, now)
	}
	h := http.Header{}
	if v.kind != "hmac" {
		return h
	}
	ts := now.UTC().Format(timestampLayout)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, connectors.SignHMAC(v.secret, append([]byte(ts), body...), "base64"))
	return h
}

// sign is the Spec's Sign, for `deskrelay send`.
func sign(src connectors.Source, body []byte, now time.Time) (http.Header, error) {
	o, _, err := parseOptions(src)
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(src, o.ReplayWindow)
	if err != nil {
		return nil, err
	}
	if v.refuse != "" {
		return nil, errors.New(v.refuse)
	}
	return v.Sign(body, now), nil
}

// webhook normalises the two kinds of Zendesk webhook body.
type webhook struct {
	*verifier
	codes codes
}

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	o, c, optErr := parseOptions(src)
	v, err := newVerifier(src, o.ReplayWindow)
	errs := config.AsErrors(err)
	switch {
	case optErr == nil:
	case !src.Config.Poll.Enabled:
		errs = append(errs, config.AsErrors(optErr)...)
	case len(errs) == 0:
		// connectors.Build builds the poller of this source too, and the
		// poller reports the same option errors: fail without repeating
		// them.
		return nil, config.Errors(nil)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if v.kind == "none" {
		logger(src).Warn("zendesk webhooks are accepted without any signature check (auth.type: none)")
	}
	return &webhook{verifier: v, codes: c}, nil
}

// eventTypePrefix starts the type of every ticket event
// (developer.zendesk.com/api-reference/webhooks/event-types/ticket-events).
const eventTypePrefix = "zen:event-type:ticket."

// Normalize turns an event-subscription body or a trigger body (the
// template in docs/connectors/zendesk.md) into a ticket. Bodies it cannot
// use are *connectors.InputError (400).
func (w *webhook) Normalize(_ context.Context, _ http.Header, body []byte) (ticket.Ticket, error) {
	var probe struct {
		Type   *string         `json:"type"`
		Ticket json.RawMessage `json:"ticket"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return ticket.Ticket{}, jsonInputError(body, err)
	}
	var t ticket.Ticket
	var err error
	switch {
	case probe.Type != nil && strings.HasPrefix(*probe.Type, "zen:event-type:"):
		if !strings.HasPrefix(*probe.Type, eventTypePrefix) {
			return ticket.Ticket{}, connectors.Inputf("type", "%q is not a ticket event; subscribe this webhook to ticket events only", *probe.Type)
		}
		t, err = w.event(body)
	case len(probe.Ticket) > 0:
		t, err = w.trigger(probe.Ticket)
	default:
		return ticket.Ticket{}, connectors.Inputf("", `body is neither a Zendesk ticket event (type "zen:event-type:ticket.…") nor a trigger body with a "ticket" object; see docs/connectors/zendesk.md for the template`)
	}
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.Raw = json.RawMessage(bytes.Clone(body))
	return t, nil
}

// jsonInputError explains a body that is not JSON. Trigger bodies are
// written by an admin and filled by placeholders; a value with a quote or
// a line break can break them.
func jsonInputError(body []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return connectors.Inputf("", "body is empty; Zendesk webhooks for deskrelay must use POST with a JSON body")
	case errors.As(err, &se):
		return connectors.Inputf("", "body is not valid JSON (offset %d: %v); in a trigger webhook, check the JSON body template and the placeholder values it received", se.Offset, se)
	case trimmed[0] != '{':
		return connectors.Inputf("", "body must be a JSON object")
	case errors.As(err, &te):
		return connectors.Inputf(te.Field, "must be a JSON %s, not %s", te.Type, te.Value)
	default:
		return connectors.Inputf("", "body is not valid JSON: %v", err)
	}
}

// event is the body of an event-subscription webhook: string ids,
// upper-case enums, the ticket in detail
// (developer.zendesk.com/api-reference/webhooks/event-types/ticket-events).
type event struct {
	Type    string `json:"type"`
	Subject string `json:"subject"` // zen:ticket:<id>
	Detail  struct {
		ID          flexID   `json:"id"`
		Subject     string   `json:"subject"`
		Description string   `json:"description"`
		Priority    string   `json:"priority"`
		Status      string   `json:"status"`
		Type        string   `json:"type"`
		RequesterID flexID   `json:"requester_id"`
		GroupID     flexID   `json:"group_id"`
		AssigneeID  flexID   `json:"assignee_id"`
		Tags        []string `json:"tags"`
		CreatedAt   string   `json:"created_at"`
		UpdatedAt   string   `json:"updated_at"`
		Via         struct {
			Channel string `json:"channel"`
		} `json:"via"`
	} `json:"detail"`
}

func (w *webhook) event(body []byte) (ticket.Ticket, error) {
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		return ticket.Ticket{}, jsonInputError(body, err)
	}
	d := e.Detail
	id := string(d.ID)
	if id == "" {
		id, _ = strings.CutPrefix(e.Subject, "zen:ticket:")
	}
	if !isID(id) {
		return ticket.Ticket{}, connectors.Inputf("detail.id", "%q is not a Zendesk ticket id", id)
	}
	t := ticket.Ticket{
		ID:              id,
		Number:          id,
		Title:           title(d.Subject, d.Description, id),
		Description:     d.Description,
		Caller:          ticket.Caller{ID: string(d.RequesterID)},
		Channel:         w.codes.channelOf(d.Via.Channel),
		Category:        key(d.Type),
		Priority:        w.codes.priorityOf(d.Priority),
		State:           w.codes.stateOf(d.Status),
		AssignmentGroup: w.codes.groupOf(string(d.GroupID)),
		AssignedTo:      string(d.AssigneeID), // the agent's id
		Tags:            d.Tags,
	}
	var err error
	if t.OpenedAt, err = parseTime(d.CreatedAt); err != nil {
		return ticket.Ticket{}, connectors.Inputf("detail.created_at", "%v", err)
	}
	// updated_at, not the event's nanosecond time, is the version: a
	// webhook and a poll of the same change then share one Nats-Msg-Id.
	if t.UpdatedAt, err = parseTime(d.UpdatedAt); err != nil {
		return ticket.Ticket{}, connectors.Inputf("detail.updated_at", "%v", err)
	}
	return t, nil
}

// triggerBody is the shape of the trigger/automation template documented
// in docs/connectors/zendesk.md. Zendesk leaves the body to the admin;
// placeholder values arrive as text ("High", "Web Form", "network vpn").
type triggerBody struct {
	ID          flexID          `json:"id"`
	Subject     string          `json:"subject"`
	Description string          `json:"description"`
	Status      string          `json:"status"`
	Priority    string          `json:"priority"`
	Type        string          `json:"type"`
	Via         string          `json:"via"`
	Tags        json.RawMessage `json:"tags"` // "a b" or ["a","b"]
	Group       string          `json:"group"`
	CreatedAt   string          `json:"created_at"` // optional
	Requester   struct {
		ID    flexID `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"requester"`
}

func (w *webhook) trigger(raw json.RawMessage) (ticket.Ticket, error) {
	var b triggerBody
	if r := bytes.TrimSpace(raw); len(r) == 0 || r[0] != '{' {
		return ticket.Ticket{}, connectors.Inputf("ticket", "must be a JSON object")
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return ticket.Ticket{}, connectors.Inputf("ticket."+te.Field, "must be a JSON %s, not %s", te.Type, te.Value)
		}
		return ticket.Ticket{}, connectors.Inputf("ticket", "must be a JSON object: %v", err)
	}
	id := strings.TrimPrefix(strings.TrimSpace(string(b.ID)), "#")
	if strings.Contains(id, "{{") {
		return ticket.Ticket{}, connectors.Inputf("ticket.id", "holds an unrendered placeholder %q; connect the webhook to a trigger or automation so that Zendesk fills it in", id)
	}
	if !isID(id) {
		return ticket.Ticket{}, connectors.Inputf("ticket.id", "%q is not a Zendesk ticket id; use \"{{ticket.id}}\"", id)
	}
	reqID := strings.TrimSpace(string(b.Requester.ID))
	if reqID != "" && !isID(reqID) {
		reqID = "" // an unrendered or empty placeholder: no id rather than a wrong one
	}
	email := strings.TrimSpace(b.Requester.Email)
	if strings.Contains(email, "{{") || !strings.Contains(email, "@") {
		email = ""
	}
	t := ticket.Ticket{
		ID:              id,
		Number:          id,
		Title:           title(b.Subject, b.Description, id),
		Description:     b.Description,
		Caller:          ticket.Caller{ID: reqID, Email: email, Name: strings.TrimSpace(b.Requester.Name)},
		Channel:         w.codes.channelOf(b.Via),
		Category:        key(b.Type),
		Priority:        w.codes.priorityOf(b.Priority),
		State:           w.codes.stateOf(b.Status),
		AssignmentGroup: strings.TrimSpace(b.Group),
		Tags:            tags(b.Tags),
	}
	// {{ticket.created_at_with_timestamp}} renders ISO 8601 to the minute.
	// There is no updated_at: a trigger body has no exact version time, so
	// the ticket is de-duplicated by a hash of its normalised fields (a
	// retried delivery is stored once, a change to those fields is not
	// merged with an earlier one).
	var err error
	if t.OpenedAt, err = parseTime(b.CreatedAt); err != nil {
		return ticket.Ticket{}, connectors.Inputf("ticket.created_at", "%v", err)
	}
	return t, nil
}

// tags reads a tag list: a JSON array, or {{ticket.tags}}'s space
// separated text.
func tags(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return nonEmpty(list)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return nonEmpty(strings.Fields(s))
	}
	return nil
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseTime reads a Zendesk time: ISO 8601 with a zone (REST and event
// payloads use UTC "Z", to the second; event times add nanoseconds), or
// to the minute as trigger placeholders render it. Empty is the zero time.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.UTC().Year(); y < 1970 || y > 9999 {
				return time.Time{}, fmt.Errorf("%q is not a plausible time (year 1970 to 9999)", s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time such as 2024-05-13T10:15:42Z", s)
}

// isID reports whether s is a Zendesk id: a positive 64-bit integer.
func isID(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0 && strconv.FormatInt(n, 10) == s
}

// flexID is an id that Zendesk sends as a string (events, trigger bodies)
// or as a number (REST); null and absent are empty.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(strings.TrimSpace(s))
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		if _, err := n.Int64(); err != nil {
			return fmt.Errorf("id %s is not an integer", n)
		}
		*f = flexID(n.String())
	}
	return nil
}

// logger returns src's logger or a no-op one.
func logger(src connectors.Source) *zap.Logger {
	if src.Log != nil {
		return src.Log
	}
	return zap.NewNop()
}
