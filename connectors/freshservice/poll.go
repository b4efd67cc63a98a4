package freshservice

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

// ticketsPath is the list endpoint, relative to api.base_url.
const ticketsPath = "/api/v2/tickets"

// DefaultMaxSeen bounds the ids a cursor remembers from the overlap (see
// [cursor]); beyond it, re-read records are dropped by JetStream's
// Nats-Msg-Id de-duplication alone.
const DefaultMaxSeen = 5000

// How the poller walks Freshservice, and why.
//
// Freshservice documents GET /api/v2/tickets with updated_since (ISO 8601
// UTC, whole seconds), page (1-based), per_page (at most 100), a Link
// rel="next" header that is absent on the last page, and order_type
// asc|desc (default desc). It does not document which field the list is
// sorted by, so the poller cannot treat the last record of a page as a
// watermark, nor move updated_since forward between pages. Instead it
// walks: every page of one updated_since window is fetched in turn (the
// page number is in the cursor, so a restart resumes the walk), and only
// when the last page (no Link rel="next") is stored does updated_since
// move forward, to the vendor's clock when the walk began (the Date header
// of page 1), minus an overlap.
//
// Why that cannot skip a record:
//   - A record updated before the walk began, and visible then, matches the
//     window for the whole walk (updated_at only grows) and sits on one of
//     its pages. With order_type=desc, whether the list is sorted by
//     created_at, id or updated_at, a record created or updated during the
//     walk can only move to the front of the list, pushing others to later
//     pages: they are read twice, never skipped. (With asc, an update would
//     move a record to the end and could pull an unread record onto a page
//     already read.) A ticket deleted during a walk is the exception: it
//     pulls the records after it one place forward, and one of them can
//     cross into a page already read; it is read at its next update.
//   - A record updated after the walk began has updated_at at or after the
//     horizon, so the next window (which starts before the horizon) holds
//     it.
//   - The overlap (default 2m) covers a record written just before the
//     horizon but not yet visible to the list, and a horizon taken from this
//     host's clock when the vendor sent no Date header.
//
// Why nothing is stored twice:
//   - A record read twice in one walk or re-read after a crash has the same
//     updated_at, so the same Nats-Msg-Id (source:id:updated_at), and
//     JetStream keeps it once (24h window by default).
//   - Records of the overlap are re-read by the next walk, possibly hours
//     later when the source is quiet. The cursor keeps their ids and update
//     times (Next, then Seen), and the next walk leaves out a record whose
//     updated_at did not change: no reliance on the duplicate window.
//
// A page is returned with More only while the rate-limit headers leave
// room for another call (X-RateLimit-Remaining ≥ the cost of this call,
// X-RateLimit-Used-CurrentRequest); otherwise the runner waits
// poll.interval, which by default is Freshservice's one-minute window. A
// 429 carries Retry-After, which connectors.APIClient honours; Freshservice
// sends no reset header that could say more.

// cursor is the poll position, stored by the runner after every page.
type cursor struct {
	V int `json:"v"`
	// Since is the updated_since of the current walk.
	Since time.Time `json:"since"`
	// Page is the next page of the walk to fetch; 1 starts a walk.
	Page int `json:"page"`
	// Horizon is the vendor's clock when page 1 of this walk was served.
	Horizon time.Time `json:"horizon,omitzero"`
	// Seen holds the records of the previous walk's overlap, id → updated_at
	// (Unix seconds): they were stored and are left out when unchanged.
	Seen map[string]int64 `json:"seen,omitempty"`
	// Next collects the records of this walk at or after Horizon − overlap:
	// the next walk's Seen.
	Next map[string]int64 `json:"next,omitempty"`
}

const cursorVersion = 1

type poller struct {
	source    string
	api       *connectors.APIClient
	log       *zap.Logger
	tables    *tables
	pageSize  int
	start     string
	overlap   time.Duration
	include   bool
	workspace int
	maxSeen   int
	now       func() time.Time
}

func newPoller(src connectors.Source) (connectors.Poller, error) {
	return buildPoller(src, nil)
}

// buildPoller builds the poller of src; rt replaces the network transport
// when not nil (tests).
func buildPoller(src connectors.Source, rt http.RoundTripper) (*poller, error) {
	var errs config.Errors
	o, err := decodeOptions(src)
	errs = append(errs, config.AsErrors(err)...)
	n, err := pageSize(src)
	errs = append(errs, config.AsErrors(err)...)
	if len(src.Config.Poll.Fields) > 0 {
		errs = append(errs, config.Errorf(src.Path("poll.fields"), "Freshservice's ticket list returns whole tickets and has no field selection; remove poll.fields"))
	}
	start := cmp.Or(src.Config.Poll.Start, config.DefaultPoll.Start)
	if _, err := config.ParseStart(start, time.Now()); err != nil {
		errs = append(errs, config.Errorf(src.Path("poll.start"), "%v", err))
	}
	api, err := newAPIClient(src, rt)
	errs = append(errs, config.AsErrors(err)...)
	if len(errs) > 0 {
		return nil, errs
	}
	log := src.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &poller{
		source: src.Name, api: api, log: log, tables: o.tables,
		pageSize: n, start: start, overlap: o.overlap,
		include: o.includeRequester, workspace: o.workspaceID,
		maxSeen: DefaultMaxSeen, now: time.Now,
	}, nil
}

// Poll fetches the page of the current walk that cur points to.
func (p *poller) Poll(ctx context.Context, raw []byte) (connectors.Page, error) {
	cur, err := p.loadCursor(raw)
	if err != nil {
		return connectors.Page{}, err
	}
	q := url.Values{}
	q.Set("updated_since", cur.Since.UTC().Format(time.RFC3339))
	q.Set("per_page", strconv.Itoa(p.pageSize))
	q.Set("page", strconv.Itoa(cur.Page))
	q.Set("order_type", "desc") // see the comment above cursor
	if p.include {
		q.Set("include", "requester") // requester email and name; costs one more API credit per call
	}
	if p.workspace > 0 {
		q.Set("workspace_id", strconv.Itoa(p.workspace))
	}
	resp, body, err := p.api.Get(ctx, ticketsPath, q)
	if err != nil {
		return connectors.Page{}, errorf("list tickets updated since %s, page %d: %w", q.Get("updated_since"), cur.Page, err)
	}
	list := gjson.GetBytes(body, "tickets")
	if !gjson.ValidBytes(body) || !list.IsArray() {
		return connectors.Page{}, errorf("list tickets page %d: answer is not {\"tickets\": [...]}", cur.Page)
	}
	if cur.Page == 1 {
		cur.Horizon = vendorNow(resp.Header, p.now)
		cur.Next = nil
	}
	if cur.Next == nil {
		cur.Next = map[string]int64{}
	}
	edge := cur.Horizon.Add(-p.overlap)

	var page connectors.Page
	for _, rec := range list.Array() {
		t, err := p.tables.decodeRecord(rec, []byte(rec.Raw))
		if err == nil && t.UpdatedAt.IsZero() {
			err = connectors.Inputf("updated_at", "is missing")
		}
		if err != nil {
			id, _, _ := recordID(rec)
			page.Rejects = append(page.Rejects, connectors.Reject{ID: id, Err: recordError(id, err), Payload: []byte(rec.Raw)})
			continue
		}
		at := t.UpdatedAt.Unix()
		stored := false
		if v, ok := cur.Seen[t.ID]; ok && v == at {
			stored = true // stored by the previous walk, unchanged since
		}
		if v, ok := cur.Next[t.ID]; ok && v == at {
			stored = true // stored by an earlier page of this walk
		}
		if !t.UpdatedAt.Before(edge) {
			if _, ok := cur.Next[t.ID]; ok || len(cur.Next) < p.maxSeen {
				cur.Next[t.ID] = at
			}
		}
		if !stored {
			page.Tickets = append(page.Tickets, t)
		}
	}

	if next, ok := nextPage(resp.Header); ok {
		cur.Page = max(next, cur.Page+1)
		page.More = headroom(resp.Header)
		if !page.More {
			p.log.Debug("rate limit reached, waiting for the next window", zap.Int("page", cur.Page))
		}
	} else {
		// The walk is complete: move the window to the horizon − overlap,
		// never backwards, and keep the overlap's records as Seen.
		since := edge.Truncate(time.Second)
		if since.Before(cur.Since) {
			since = cur.Since
		}
		seen := map[string]int64{}
		for id, at := range cur.Next {
			if at >= since.Unix() {
				seen[id] = at
			}
		}
		if len(seen) >= p.maxSeen {
			p.log.Warn("more records in the poll overlap than the cursor keeps; re-reads rely on JetStream de-duplication", zap.Int("kept", len(seen)))
		}
		cur = cursor{V: cursorVersion, Since: since, Page: 1, Seen: seen}
	}
	page.Watermark = cur.Since
	if page.Cursor, err = json.Marshal(cur); err != nil {
		return connectors.Page{}, errorf("encode cursor: %w", err)
	}
	return page, nil
}

// loadCursor decodes a stored cursor; nil starts at poll.start.
func (p *poller) loadCursor(raw []byte) (cursor, error) {
	if raw == nil {
		s, err := config.ParseStart(p.start, p.now())
		if err != nil {
			return cursor{}, errorf("poll.start: %w", err)
		}
		return cursor{V: cursorVersion, Since: s.UTC().Truncate(time.Second), Page: 1}, nil
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil || c.V != cursorVersion || c.Page < 1 || c.Since.IsZero() {
		return cursor{}, errorf("stored cursor of source %q is not a freshservice cursor (v%d); delete key %q from the cursors bucket to restart at poll.start", p.source, cursorVersion, p.source)
	}
	return c, nil
}

// vendorNow is the vendor's clock from the Date header, or this host's
// clock when there is none, in whole seconds.
func vendorNow(h http.Header, now func() time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t.UTC()
	}
	return now().UTC().Truncate(time.Second)
}

// headroom reports whether the rate-limit headers leave room for another
// call like this one. Without the headers it says yes.
func headroom(h http.Header) bool {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	if err != nil {
		return true
	}
	cost, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Used-CurrentRequest")))
	if err != nil || cost < 1 {
		cost = 1
	}
	return rem >= cost
}

// nextPage returns the page number of the Link rel="next" target, and
// whether there is one. The link is read, not followed: the next request
// is built on api.base_url (Freshservice's links name the
// *.freshservice.com host, which may differ from a configured one). A
// next link without a page parameter returns 0, true.
func nextPage(h http.Header) (int, bool) {
	for _, v := range h.Values("Link") {
		for link := range parseLinks(v) {
			if link.next {
				u, err := url.Parse(link.url)
				if err != nil {
					return 0, true
				}
				n, _ := strconv.Atoi(u.Query().Get("page"))
				return n, true
			}
		}
	}
	return 0, false
}

type link struct {
	url  string
	next bool
}

// parseLinks yields the links of an RFC 8288 Link header value:
// <url>; rel="next", <url>; rel="prev".
func parseLinks(v string) func(func(link) bool) {
	return func(yield func(link) bool) {
		for {
			i := strings.IndexByte(v, '<')
			if i < 0 {
				return
			}
			j := strings.IndexByte(v[i:], '>')
			if j < 0 {
				return
			}
			l := link{url: v[i+1 : i+j]}
			v = v[i+j+1:]
			params := v
			if k := strings.IndexByte(v, '<'); k >= 0 {
				params, v = v[:k], v[k:]
			} else {
				v = ""
			}
			for p := range strings.SplitSeq(params, ";") {
				key, val, ok := strings.Cut(strings.Trim(p, " ,\t"), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(key), "rel") {
					continue
				}
				for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						l.next = true
					}
				}
			}
			if !yield(l) {
				return
			}
		}
	}
}
