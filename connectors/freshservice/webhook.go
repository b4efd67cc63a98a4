package freshservice

import (
	"context"
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// webhook decodes the body of a Workflow Automator "Trigger Webhook"
// action. Freshservice lets the admin write that body, so its shape is
// ours: {"event": …, "ticket": {…}} as in the template of
// docs/connectors/freshservice.md, or the ticket object alone. The request
// was authenticated by the configured auth block before Normalize runs
// (Freshservice does not sign webhooks).
type webhook struct {
	tables *tables
}

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	o, err := decodeOptions(src)
	if err != nil {
		return nil, err
	}
	return &webhook{tables: o.tables}, nil
}

// Normalize decodes body into a ticket; Raw is the whole body.
func (w *webhook) Normalize(_ context.Context, _ http.Header, body []byte) (ticket.Ticket, error) {
	return w.normalize(body)
}

func (w *webhook) normalize(body []byte) (ticket.Ticket, error) {
	if !gjson.ValidBytes(body) {
		return ticket.Ticket{}, connectors.Inputf("", "body is not valid JSON; check the placeholders of the Trigger Webhook body (a quote or line break in a value must be escaped)")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return ticket.Ticket{}, connectors.Inputf("", "body must be a JSON object")
	}
	rec := root
	if t := root.Get("ticket"); t.Exists() {
		if !t.IsObject() {
			return ticket.Ticket{}, connectors.Inputf("ticket", "must be a JSON object")
		}
		rec = t
	}
	return w.tables.decodeRecord(rec, body)
}
