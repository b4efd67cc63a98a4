package zendesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// exportPath is the cursor-based Incremental Ticket Export
// (developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports,
// "Incremental Ticket Export, Cursor Based").
const exportPath = "/api/v2/incremental/tickets/cursor.json"

// maxPerPage is the export's page limit: "up to 1000 items per page".
const maxPerPage = 1000

// excludedWindow is how far behind now the export stops: "items created or
// changed within the minute prior to your request are excluded"
// (developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api).
const excludedWindow = time.Minute

// Cursor is the poll cursor deskrelay stores for a Zendesk source, as JSON.
//
// After is Zendesk's after_cursor, kept opaque. Zendesk orders the export
// by update time and then ticket id, and an after_cursor resumes right
// after the last ticket of the page it came with: tickets that share that
// ticket's update second but sort after it are on the next page, never
// skipped. The cursor is stored only after every ticket of its page was
// stored, so a crash re-reads at most one page, whose tickets JetStream
// drops as duplicates by Nats-Msg-Id (source:id:updated_at). At the end of
// the stream Zendesk's advice is to keep after_cursor for the next poll,
// which is what happens: Poll always stores the newest after_cursor.
//
// StartTime (Unix seconds) is used only until Zendesk returned a first
// after_cursor. Watermark is the update time the cursor stands for, for
// the lag metric.
type Cursor struct {
	After     string    `json:"after_cursor,omitempty"`
	StartTime int64     `json:"start_time,omitempty"`
	Watermark time.Time `json:"watermark,omitzero"`
}

// poller reads the export one page per Poll call.
type poller struct {
	api            *connectors.APIClient
	codes          codes
	start          string // poll.start
	perPage        int
	includeDeleted bool
	sideload       bool
	gap            time.Duration // least time between two export requests
	log            *zap.Logger
	now            func() time.Time
	wait           func(ctx context.Context, d time.Duration) error

	mu   sync.Mutex
	next time.Time // earliest time of the next export request
}

func newPoller(src connectors.Source) (connectors.Poller, error) {
	o, c, err := parseOptions(src)
	errs := config.AsErrors(err)
	p := src.Config.Poll
	if len(p.Fields) > 0 {
		errs = append(errs, config.Errorf(src.Path("poll.fields"), "the Zendesk export always returns whole tickets; remove poll.fields"))
	}
	if p.PageSize < 1 || p.PageSize > maxPerPage {
		errs = append(errs, config.Errorf(src.Path("poll.page_size"), "must be 1 to %d (the export's page limit), got %d", maxPerPage, p.PageSize))
	}
	api, err := connectors.NewAPIClient(src, src.Metrics)
	errs = append(errs, config.AsErrors(err)...)
	if len(errs) > 0 {
		return nil, errs
	}
	pl := &poller{
		api: api, codes: c, start: p.Start, perPage: p.PageSize,
		includeDeleted: o.IncludeDeleted, sideload: o.SideloadUsers,
		log: logger(src), now: time.Now, wait: connectors.Sleep,
	}
	if o.RequestsPerMinute > 0 {
		pl.gap = time.Minute / time.Duration(o.RequestsPerMinute)
	}
	return pl, nil
}

// exportPage is one answer of the cursor export.
type exportPage struct {
	Tickets     []json.RawMessage `json:"tickets"`
	AfterCursor *string           `json:"after_cursor"`
	EndOfStream bool              `json:"end_of_stream"`
	// Users are sideloaded with include=users: the requesters' e-mail.
	Users []struct {
		ID    flexID `json:"id"`
		Email string `json:"email"`
	} `json:"users"`
}

// Poll fetches the page after cursor. Tickets deleted in Zendesk are left
// out (exclude_deleted) unless include_deleted is set; then they arrive
// with state "deleted".
func (p *poller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	var c Cursor
	if cur != nil {
		if err := json.Unmarshal(cur, &c); err != nil {
			return connectors.Page{}, fmt.Errorf("zendesk: stored cursor %q is not a zendesk cursor: %w", truncate(cur), err)
		}
	}
	q := url.Values{}
	switch {
	case c.After != "":
		q.Set("cursor", c.After)
	case c.StartTime > 0:
		q.Set("start_time", strconv.FormatInt(c.StartTime, 10))
	default:
		now := p.now()
		start, err := config.ParseStart(p.start, now)
		if err != nil {
			return connectors.Page{}, fmt.Errorf("zendesk: poll.start: %w", err)
		}
		// Zendesk returns nothing newer than a minute, and a start time
		// in the future is no use: start at least that far back.
		if latest := now.Add(-excludedWindow - time.Second); start.After(latest) {
			start = latest
		}
		c.StartTime = start.Unix()
		q.Set("start_time", strconv.FormatInt(c.StartTime, 10))
	}
	q.Set("per_page", strconv.Itoa(p.perPage))
	if !p.includeDeleted {
		q.Set("exclude_deleted", "true")
	}
	if p.sideload {
		q.Set("include", "users")
	}
	if err := p.pace(ctx); err != nil {
		return connectors.Page{}, err
	}
	asked := p.now()
	resp, body, err := p.api.Get(ctx, exportPath, q)
	if err != nil {
		var ve *connectors.VendorError
		if errors.As(err, &ve) && resp != nil {
			ve.RetryAfter = max(ve.RetryAfter, resetAfter(resp.Header))
		}
		return connectors.Page{}, fmt.Errorf("zendesk: export tickets: %w", err)
	}
	var page exportPage
	if err := json.Unmarshal(body, &page); err != nil {
		return connectors.Page{}, fmt.Errorf("zendesk: export tickets: answer is not the export's JSON: %w", err)
	}
	emails := map[string]string{}
	for _, u := range page.Users {
		if u.ID != "" && u.Email != "" {
			emails[string(u.ID)] = u.Email
		}
	}
	out := connectors.Page{More: !page.EndOfStream}
	wm := c.Watermark
	for _, raw := range page.Tickets {
		t, at, err := p.normalize(raw, emails)
		wm = later(wm, at)
		switch {
		case errors.Is(err, errDeleted):
			continue
		case err != nil:
			var id struct {
				ID flexID `json:"id"`
			}
			_ = json.Unmarshal(raw, &id)
			out.Rejects = append(out.Rejects, connectors.Reject{ID: string(id.ID), Err: err, Payload: bytes.Clone(raw)})
			continue
		}
		out.Tickets = append(out.Tickets, t)
	}
	if page.EndOfStream {
		// The answer holds everything up to a minute before the request.
		wm = later(wm, asked.Add(-excludedWindow).UTC().Truncate(time.Second))
	}
	if page.AfterCursor != nil && *page.AfterCursor != "" {
		c.After = *page.AfterCursor
	}
	c.Watermark = wm
	out.Watermark = wm
	if out.Cursor, err = json.Marshal(c); err != nil {
		return connectors.Page{}, fmt.Errorf("zendesk: encode cursor: %w", err)
	}
	if len(page.Tickets) == 0 && out.More {
		// Zendesk said more is coming yet sent nothing: wait an interval
		// rather than ask again at once.
		out.More = false
	}
	p.log.Debug("zendesk export page", zap.Int("tickets", len(out.Tickets)), zap.Int("rejects", len(out.Rejects)), zap.Bool("end_of_stream", page.EndOfStream))
	return out, nil
}

// pace spaces export requests to requests_per_minute, so that a backlog
// drains at the rate Zendesk allows instead of by 429s. This spacing is
// not part of the cursor: after a restart the first request goes at once.
func (p *poller) pace(ctx context.Context) error {
	if p.gap <= 0 {
		return nil
	}
	p.mu.Lock()
	now := p.now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.gap)
	p.mu.Unlock()
	return p.wait(ctx, at.Sub(now))
}

// resetAfter reads Zendesk's rate-limit reset headers: ratelimit-reset
// (seconds) and the resets= part of endpoint headers such as
// zendesk-ratelimit-tickets-index ("total=100; remaining=99; resets=41")
// (developer.zendesk.com/documentation/api-basics/best-practices/best-practices-for-avoiding-rate-limiting).
func resetAfter(h http.Header) time.Duration {
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Ratelimit-Reset"))); err == nil && s > 0 {
		d = time.Duration(s) * time.Second
	}
	for name, vals := range h {
		if !strings.HasPrefix(name, "Zendesk-Ratelimit-") {
			continue
		}
		for _, v := range vals {
			for part := range strings.SplitSeq(v, ";") {
				if n, ok := strings.CutPrefix(strings.TrimSpace(part), "resets="); ok {
					if s, err := strconv.Atoi(n); err == nil && s > 0 {
						d = max(d, time.Duration(s)*time.Second)
					}
				}
			}
		}
	}
	return d
}

// restTicket is a ticket of the REST resource: integer ids, lower-case
// enums, ISO 8601 UTC times, generated_timestamp in epoch seconds
// (developer.zendesk.com/api-reference/ticketing/tickets/tickets).
type restTicket struct {
	ID                 flexID   `json:"id"`
	Subject            string   `json:"subject"`
	Description        string   `json:"description"`
	Priority           string   `json:"priority"`
	Status             string   `json:"status"`
	Type               string   `json:"type"`
	RequesterID        flexID   `json:"requester_id"`
	GroupID            flexID   `json:"group_id"`
	AssigneeID         flexID   `json:"assignee_id"`
	Tags               []string `json:"tags"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          string   `json:"updated_at"`
	GeneratedTimestamp int64    `json:"generated_timestamp"`
	Via                struct {
		Channel string `json:"channel"`
	} `json:"via"`
	CustomFields []struct {
		ID    int64           `json:"id"`
		Value json.RawMessage `json:"value"`
	} `json:"custom_fields"`
}

// errDeleted marks a deleted ticket that is left out.
var errDeleted = errors.New("ticket deleted in zendesk")

// normalize turns one exported ticket into a ticket. It also returns the
// time the record stands for in the export's order (generated_timestamp,
// else updated_at), for the watermark, even when it fails.
func (p *poller) normalize(raw json.RawMessage, emails map[string]string) (ticket.Ticket, time.Time, error) {
	var r restTicket
	if err := json.Unmarshal(raw, &r); err != nil {
		return ticket.Ticket{}, time.Time{}, fmt.Errorf("not a zendesk ticket: %w", err)
	}
	var at time.Time
	if r.GeneratedTimestamp > 0 {
		at = time.Unix(r.GeneratedTimestamp, 0).UTC()
	}
	id := string(r.ID)
	if !isID(id) {
		return ticket.Ticket{}, at, fmt.Errorf("id %q is not a zendesk ticket id", id)
	}
	if key(r.Status) == "deleted" && !p.includeDeleted {
		return ticket.Ticket{}, at, errDeleted
	}
	requester := string(r.RequesterID)
	t := ticket.Ticket{
		ID:              id,
		Number:          id,
		Title:           title(r.Subject, r.Description, id),
		Description:     r.Description,
		Caller:          ticket.Caller{ID: requester, Email: emails[requester]},
		Channel:         p.codes.channelOf(r.Via.Channel),
		Category:        key(r.Type),
		Priority:        p.codes.priorityOf(r.Priority),
		State:           p.codes.stateOf(r.Status),
		AssignmentGroup: p.codes.groupOf(string(r.GroupID)),
		AssignedTo:      string(r.AssigneeID), // the agent's id
		Tags:            nonEmpty(r.Tags),
		Raw:             bytes.Clone(raw),
	}
	var err error
	if t.OpenedAt, err = parseTime(r.CreatedAt); err != nil {
		return ticket.Ticket{}, at, fmt.Errorf("created_at: %w", err)
	}
	if t.UpdatedAt, err = parseTime(r.UpdatedAt); err != nil {
		return ticket.Ticket{}, at, fmt.Errorf("updated_at: %w", err)
	}
	if at.IsZero() {
		at = t.UpdatedAt
	}
	for _, f := range r.CustomFields {
		var v string
		if json.Unmarshal(f.Value, &v) != nil {
			continue
		}
		if f.ID == p.codes.impact.Field {
			t.Impact = p.codes.impact.Values[key(v)]
		}
		if f.ID == p.codes.urgency.Field {
			t.Urgency = p.codes.urgency.Values[key(v)]
		}
	}
	// The runner sets the source; check the rest now so that a bad record
	// is dead-lettered with its own error.
	v := t
	v.Source = "-"
	if err := v.Validate(); err != nil {
		return ticket.Ticket{}, at, err
	}
	return t, at, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// check makes one authenticated read for `deskrelay connectors check`:
// with polling on, a one-ticket export page (the read polling needs, which
// only admins may make; it counts against the export's 10 requests a
// minute), else the current user. Zendesk reports the account's limit in
// X-Rate-Limit and what is left in X-Rate-Limit-Remaining.
func check(ctx context.Context, src connectors.Source) ([]connectors.Finding, error) {
	api, err := connectors.NewAPIClient(src, src.Metrics)
	if err != nil {
		return nil, err
	}
	if !src.Config.Poll.Enabled {
		return connectors.CheckAPI(ctx, api, "/api/v2/users/me.json", nil, "X-Rate-Limit-Remaining", "X-Rate-Limit"), nil
	}
	q := url.Values{
		"start_time": {strconv.FormatInt(time.Now().Add(-2*excludedWindow).Unix(), 10)},
		"per_page":   {"1"},
	}
	return connectors.CheckAPI(ctx, api, exportPath, q, "X-Rate-Limit-Remaining", "X-Rate-Limit"), nil
}
