package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// webhook decodes the body a Business Rule or Flow Designer step sends. It
// does not verify the request: ServiceNow has no signature of its own, so
// the ingress checks the source's auth block (bearer, basic, or hmac of
// the raw body, optionally over a timestamp) before Normalize runs.
type webhook struct {
	m       *mapper
	callers *callers // nil unless lookup_caller_email
	log     *zap.Logger
}

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	o, err := decodeOptions(src)
	if err != nil {
		return nil, err
	}
	w := &webhook{m: o.mapper, log: logger(src)}
	if o.lookup {
		c, err := newClient(src)
		if err != nil {
			return nil, err
		}
		w.callers = newCallers(c, o.cacheTTL, o.cacheSize, nil)
	}
	return w, nil
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
	if r := rec.Get("result"); r.IsObject() && !rec.Get("sys_id").Exists() {
		rec = r
	}
	t, err := m.ticket(rec)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.Raw = json.RawMessage(bytes.Clone(body))
	return t, nil
}

func logger(src connectors.Source) *zap.Logger {
	if src.Log == nil {
		return zap.NewNop()
	}
	return src.Log
}
