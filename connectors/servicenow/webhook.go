package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// webhook decodes the body a Business Rule or Flow Designer step sends.
// ServiceNow has no signature of its own: Verify applies the source's auth
// block (bearer, basic, or hmac of the raw body, optionally over a
// timestamp), which the ingress calls before Normalize. A polling source
// without an auth block refuses every webhook.
type webhook struct {
	m       *mapper
	callers *callers // nil unless lookup_caller_email
	log     *zap.Logger
	verify  func(http.Header, []byte) error
}

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	o, err := decodeOptions(src)
	errs := config.AsErrors(err)
	verify, err := webhookAuth(src)
	errs = append(errs, config.AsErrors(err)...)
	if len(errs) > 0 {
		return nil, errs
	}
	w := &webhook{m: o.mapper, log: logger(src), verify: verify}
	if o.lookup {
		c, err := newClient(src)
		if err != nil {
			return nil, err
		}
		w.callers = newCallers(c, o.cacheTTL, o.cacheSize, nil)
	}
	return w, nil
}

// webhookAuth returns the check of src's auth block.
func webhookAuth(src connectors.Source) (func(http.Header, []byte) error, error) {
	if src.Config.Auth.Type == "" && src.Config.Poll.Enabled {
		return func(http.Header, []byte) error {
			return fmt.Errorf("%w: source %q only polls; configure its auth block to accept webhooks", connectors.ErrUnauthorized, src.Name)
		}, nil
	}
	a, err := connectors.NewAuth(src.Path("auth"), src.Config.Auth)
	if err != nil {
		return nil, err
	}
	return a.Verify, nil
}

// Verify checks the request against the source's auth block, over the raw
// body and in constant time; the error wraps connectors.ErrUnauthorized.
func (w *webhook) Verify(h http.Header, body []byte) error { return w.verify(h, body) }

// sign returns the headers the source's auth block expects, for
// `deskrelay send`.
func sign(src connectors.Source, body []byte, now time.Time) (http.Header, error) {
	a, err := connectors.NewAuth(src.Path("auth"), src.Config.Auth)
	if err != nil {
		return nil, err
	}
	return a.Sign(body, now), nil
}

// Normalize decodes one record: a JSON object in the Table API shape
// (plain strings, {link, value} or {display_value, value} objects, JSON
// nulls from GlideRecord.getValue), or such an object wrapped as
// {"result": {...}} like a Table API single-record answer. Raw is the
// body as received.
func (w *webhook) Normalize(ctx context.Context, _ http.Header, body []byte) (ticket.Ticket, error) {
	t, err := decodeWebhook(w.m, body)
	if err != nil {
		return ticket.Ticket{}, err
	}
	if w.callers != nil && t.Caller.Email == "" && t.Caller.ID != "" {
		// A failed lookup must not make ServiceNow resend the ticket:
		// the profile chain can still use the caller's sys_id.
		if u, err := w.callers.get(ctx, t.Caller.ID); err != nil {
			w.log.Warn("caller email lookup failed, storing the ticket without it", zap.String("ticket_id", t.ID), zap.Error(err))
		} else {
			t.Caller.Email = u.email
			if t.Caller.Name == "" {
				t.Caller.Name = u.name
			}
		}
	}
	return t, nil
}

// decodeWebhook is Normalize without the caller lookup.
func decodeWebhook(m *mapper, body []byte) (ticket.Ticket, error) {
	if !gjson.ValidBytes(body) {
		return ticket.Ticket{}, connectors.Inputf("", "body is not valid JSON")
	}
	rec := gjson.ParseBytes(body)
	if !rec.IsObject() {
		return ticket.Ticket{}, connectors.Inputf("", "body must be a JSON object: one ServiceNow record")
	}
	rec = unwrap(rec)
	t, err := m.ticket(rec)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.Raw = json.RawMessage(bytes.Clone(body))
	return t, nil
}

// unwrap returns the record of a body that wraps it in a "result" object,
// as a Table API response does, and rec itself when it has a sys_id of its
// own or no "result" object: one pass over the keys, where asking for
// each of the two keys read a body without "result" twice.
func unwrap(rec gjson.Result) gjson.Result {
	var result gjson.Result
	own := false
	rec.ForEach(func(key, val gjson.Result) bool {
		switch key.Str {
		case "sys_id":
			own = true
			return false
		case "result":
			if !result.Exists() {
				result = val
			}
		}
		return true
	})
	if own || !result.IsObject() {
		return rec
	}
	return result
}

func logger(src connectors.Source) *zap.Logger {
	if src.Log == nil {
		return zap.NewNop()
	}
	return src.Log
}
