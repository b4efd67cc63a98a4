package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// poller reads changed records of one table through the Table API. It
// keeps no state between calls beyond its caller cache: where to go on is
// in the cursor.
//
// How it pages, and why (facts from the Table API docs, see
// testdata/SOURCES.md):
//   - sys_updated_on has one-second precision and many records can share
//     a second, so "> last time" would skip records and ">= last time"
//     alone would not move past a second holding more records than a page.
//     Records are ordered by sys_updated_on then sys_id, and a page starts
//     after the last stored (sys_updated_on, sys_id) pair:
//     sys_updated_on>=T^sys_updated_on>T^ORsys_id>I, which reads
//     (updated >= T) AND (updated > T OR sys_id > I) because ^OR binds to
//     the condition before it. The query overlaps the watermark second
//     (>=); the sys_id tie-break keeps what was stored out of the page.
//   - Rows updated while we page move to a later time: offset paging would
//     then skip rows ("prefer restarting from the watermark over long
//     offset walks"); restarting the query after the last row cannot. The
//     Link header only tells us that more rows exist. sysparm_offset is
//     used only to step over a page the ACLs emptied (the limit is applied
//     before ACL evaluation).
//   - A poll reads only records updated before now minus the settle
//     option (sys_updated_on<U): a second the cursor has moved into can
//     then receive no further records, and a record is never read again
//     once its page was stored, however quiet the source (a re-read would
//     be stored twice once JetStream's duplicate window has passed).
//   - After a crash the runner resumes from the cursor of the last stored
//     page: the tickets of the page that was being stored are fetched
//     again and dropped by Nats-Msg-Id (source, sys_id, sys_updated_on).
//   - Date-time literals in a web-service query are UTC, like the stored
//     values; we never use gs.dateGenerate, which is in the API user's
//     time zone.
type poller struct {
	client  *connectors.APIClient
	m       *mapper
	table   string
	query   string // the query option, ANDed to ours
	display string
	fields  string
	limit   int
	start   time.Time
	settle  time.Duration
	callers *callers
	name    string
	now     func() time.Time
	log     *zap.Logger
}

func newPoller(src connectors.Source) (connectors.Poller, error) {
	return buildPoller(src, time.Now)
}

func buildPoller(src connectors.Source, now func() time.Time) (*poller, error) {
	o, err := decodeOptions(src)
	if err != nil {
		return nil, err
	}
	pc := src.Config.Poll
	var errs config.Errors
	start, err := config.ParseStart(orDefault(pc.Start, config.DefaultPoll.Start), now())
	if err != nil {
		errs = append(errs, config.Errorf(src.Path("poll.start"), "%v", err))
	}
	fields := pc.Fields
	if len(fields) == 0 {
		fields = o.mapper.recordFields()
	}
	for i, f := range fields {
		if !fieldRE.MatchString(f) {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s[%d]", src.Path("poll.fields"), i), "%q is not a field name such as short_description or caller_id.email", f))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The cursor needs both, whatever else is asked for.
	fields = append(slices.Clone(fields), "sys_id", "sys_updated_on")
	slices.Sort(fields)
	fields = slices.Compact(fields)

	client, err := newClient(src)
	if err != nil {
		return nil, err
	}
	p := &poller{
		client:  client,
		m:       o.mapper,
		table:   o.table,
		query:   o.query,
		display: o.display,
		fields:  strings.Join(fields, ","),
		limit:   orDefault(pc.PageSize, config.DefaultPoll.PageSize),
		start:   start.UTC().Truncate(time.Second),
		settle:  o.settle,
		name:    src.Name,
		now:     now,
		log:     logger(src),
	}
	if o.lookup {
		p.callers = newCallers(client, o.cacheTTL, o.cacheSize, now)
	}
	return p, nil
}

// cursor is where the next poll starts. It is stored (as JSON) only after
// every ticket of the page was stored.
type cursor struct {
	// V is the format version.
	V int `json:"v"`
	// UpdatedOn is the watermark: sys_updated_on of the last stored record
	// (UTC, TimeLayout).
	UpdatedOn string `json:"sys_updated_on"`
	// SysID is the sys_id of that record while a sweep goes on; empty when
	// the next poll starts a new sweep at the watermark second.
	SysID string `json:"sys_id,omitempty"`
	// Offset skips rows of the same query: only after a page that the
	// ACLs emptied.
	Offset int `json:"offset,omitempty"`
}

const cursorVersion = 1

// cursorIDRE bounds what a cursor's sys_id may hold: it goes into a query.
var cursorIDRE = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

func decodeCursor(b []byte) (cursor, error) {
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return cursor{}, err
	}
	if c.V != cursorVersion {
		return cursor{}, fmt.Errorf("version %d, want %d", c.V, cursorVersion)
	}
	if _, err := time.Parse(TimeLayout, c.UpdatedOn); err != nil {
		return cursor{}, fmt.Errorf("sys_updated_on %q is not a ServiceNow date-time", c.UpdatedOn)
	}
	if c.SysID != "" && !cursorIDRE.MatchString(c.SysID) {
		return cursor{}, fmt.Errorf("sys_id %q is not a sys_id", c.SysID)
	}
	if c.Offset < 0 {
		return cursor{}, fmt.Errorf("negative offset %d", c.Offset)
	}
	return c, nil
}

// encodedQuery is the sysparm_query of a poll from c that reads records
// updated before until.
func (p *poller) encodedQuery(c cursor, until time.Time) string {
	var parts []string
	if p.query != "" {
		parts = append(parts, p.query)
	}
	parts = append(parts, "sys_updated_on>="+c.UpdatedOn)
	if c.SysID != "" {
		parts = append(parts, "sys_updated_on>"+c.UpdatedOn+"^ORsys_id>"+c.SysID)
	}
	parts = append(parts, "sys_updated_on<"+until.Format(TimeLayout), "ORDERBYsys_updated_on", "ORDERBYsys_id")
	return strings.Join(parts, "^")
}

// Poll fetches the page after cur (nil: from poll.start).
func (p *poller) Poll(ctx context.Context, cur []byte) (connectors.Page, error) {
	c := cursor{V: cursorVersion, UpdatedOn: p.start.Format(TimeLayout)}
	if cur != nil {
		var err error
		if c, err = decodeCursor(cur); err != nil {
			return connectors.Page{}, fmt.Errorf("servicenow: stored cursor %q is unreadable (%v); delete source %q from the cursors bucket to restart at poll.start", cur, err, p.name)
		}
	}
	q := url.Values{}
	until := p.now().UTC().Add(-p.settle).Truncate(time.Second)
	q.Set("sysparm_query", p.encodedQuery(c, until))
	q.Set("sysparm_limit", strconv.Itoa(p.limit))
	q.Set("sysparm_offset", strconv.Itoa(c.Offset))
	q.Set("sysparm_fields", p.fields)
	q.Set("sysparm_exclude_reference_link", "true")
	if p.display != "" {
		q.Set("sysparm_display_value", p.display)
	}
	resp, body, err := p.client.Get(ctx, "/api/now/table/"+p.table, q)
	if err != nil {
		var ve *connectors.VendorError
		if errors.As(err, &ve) && ve.Status == http.StatusTooManyRequests && resp != nil {
			// The rule counts per hour; X-RateLimit-Reset (Unix time) says
			// when the window starts again. Wait for the later of the two.
			if d := resetWait(resp.Header, p.now()); d > ve.RetryAfter {
				ve.RetryAfter = d
			}
		}
		return connectors.Page{}, fmt.Errorf("servicenow: fetch %s changed since %s: %w", p.table, c.UpdatedOn, err)
	}
	if !gjson.ValidBytes(body) {
		return connectors.Page{}, fmt.Errorf("servicenow: %s answered with a body that is not JSON", p.table)
	}
	res := gjson.GetBytes(body, "result")
	if !res.IsArray() {
		return connectors.Page{}, fmt.Errorf("servicenow: %s answered without a result list", p.table)
	}
	rows := res.Array()

	page := connectors.Page{}
	last := c
	for i, row := range rows {
		id, _, _ := lookup(row, "sys_id", false)
		upd, _, _ := lookup(row, "sys_updated_on", false)
		if _, err := time.Parse(TimeLayout, upd); err != nil || !cursorIDRE.MatchString(id) {
			return connectors.Page{}, fmt.Errorf("servicenow: row %d of %s has no readable sys_id and sys_updated_on; the API user needs read access to both", c.Offset+i, p.table)
		}
		if c.SysID != "" && (upd < c.UpdatedOn || upd == c.UpdatedOn && id <= c.SysID) {
			return connectors.Page{}, fmt.Errorf("servicenow: %s returned %s/%s, which is not after the cursor %s/%s: the instance ignored part of the query (is glide.invalid_query.returns_no_rows off and a field name in the query option wrong?)", p.table, upd, id, c.UpdatedOn, c.SysID)
		}
		last = cursor{V: cursorVersion, UpdatedOn: upd, SysID: id}
		t, err := p.normalize(row)
		if err != nil {
			page.Rejects = append(page.Rejects, connectors.Reject{ID: id, Err: err, Payload: []byte(row.Raw)})
			continue
		}
		page.Tickets = append(page.Tickets, t)
	}
	if err := p.lookupCallers(ctx, page.Tickets); err != nil {
		return connectors.Page{}, err
	}

	next := last
	hasNext := linkHasNext(resp.Header.Get("Link"))
	page.More = hasNext || len(rows) >= p.limit
	if len(rows) == 0 && hasNext {
		// A page the ACLs emptied: step over it. This is the one offset
		// step; it can miss a row only if hidden rows change meanwhile.
		next.Offset = c.Offset + p.limit
		p.log.Warn("the API user may not read a whole page of records; stepping over it (grant it read access to every row)", zap.String("table", p.table), zap.Int("offset", c.Offset))
	} else if len(rows) == 0 {
		next.Offset = 0
	}
	page.Cursor, _ = json.Marshal(next)
	page.Watermark, _ = time.Parse(TimeLayout, next.UpdatedOn)
	return page, nil
}

// normalize maps one polled record; a panic on a strange record becomes a
// reject rather than a dead poller.
func (p *poller) normalize(row gjson.Result) (t ticket.Ticket, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("servicenow: normalising the record panicked: %v", r)
		}
	}()
	t, err = p.m.ticket(row)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.Source = p.name
	t.Raw = json.RawMessage(row.Raw)
	if err := t.Validate(); err != nil {
		return ticket.Ticket{}, err
	}
	return t, nil
}

// lookupCallers fills the callers' emails from sys_user when configured.
// A failure the vendor may get over (429, 5xx, network) fails the page, so
// that it is fetched again rather than stored without the email.
func (p *poller) lookupCallers(ctx context.Context, ts []ticket.Ticket) error {
	if p.callers == nil {
		return nil
	}
	for i := range ts {
		t := &ts[i]
		if t.Caller.Email != "" || t.Caller.ID == "" {
			continue
		}
		u, err := p.callers.get(ctx, t.Caller.ID)
		if err != nil {
			return err
		}
		t.Caller.Email = u.email
		if t.Caller.Name == "" {
			t.Caller.Name = u.name
		}
	}
	return nil
}

// resetWait reads X-RateLimit-Reset, the Unix time at which the rate-limit
// window starts again, as a wait from now.
func resetWait(h http.Header, now time.Time) time.Duration {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil {
		return 0
	}
	if d := time.Unix(v, 0).Sub(now); d > 0 {
		return d
	}
	return 0
}

// linkHasNext reports whether a Link header has a rel="next" entry. The
// Table API joins entries with "," and no spaces; we do not follow the
// URL (an offset walk), only learn that more rows exist.
func linkHasNext(link string) bool {
	for part := range strings.SplitSeq(link, ",") {
		for param := range strings.SplitSeq(part, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
				return true
			}
		}
	}
	return false
}

// check makes one cheap authenticated read of the table (one row, two
// fields, no count query), and of sys_user when callers are looked up.
func check(ctx context.Context, src connectors.Source) ([]connectors.Finding, error) {
	o, err := decodeOptions(src)
	if err != nil {
		return nil, err
	}
	c, err := newClient(src)
	if err != nil {
		return nil, err
	}
	q := url.Values{
		"sysparm_limit":                  {"1"},
		"sysparm_fields":                 {"sys_id,sys_updated_on"},
		"sysparm_no_count":               {"true"},
		"sysparm_exclude_reference_link": {"true"},
	}
	if o.query != "" {
		q.Set("sysparm_query", o.query)
	}
	// ServiceNow sends X-RateLimit-Limit (requests per hour) only when a
	// rate-limit rule applies to the user, and no remaining count.
	fs := connectors.CheckAPI(ctx, c, "/api/now/table/"+o.table, q, "", "X-RateLimit-Limit")
	if o.lookup {
		uq := url.Values{"sysparm_limit": {"1"}, "sysparm_fields": {"sys_id,email"}, "sysparm_no_count": {"true"}}
		for _, f := range connectors.CheckAPI(ctx, c, "/api/now/table/sys_user", uq, "", "X-RateLimit-Limit") {
			if f.Name == "permission" {
				f.Name = "caller lookup"
				fs = append(fs, f)
			}
		}
	}
	return fs, nil
}
