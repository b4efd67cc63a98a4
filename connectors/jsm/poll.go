package jsm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

// SearchPath is Jira Cloud's JQL search with nextPageToken paging; the
// older /rest/api/3/search (startAt, total) is retired (SOURCES.md,
// "Search").
const SearchPath = "/rest/api/3/search/jql"

// tokenMaxAge is how long a stored nextPageToken is used. Jira's tokens
// expire after 7 days (SOURCES.md, "Search"); a cursor older than this
// restarts its search instead, which the seen set makes harmless.
const tokenMaxAge = 6 * 24 * time.Hour

// maxSeen caps the seen set kept in the cursor (about 30 bytes an entry).
// Past it the oldest entries are dropped and re-reads of them rely on
// JetStream's Nats-Msg-Id de-duplication alone.
const maxSeen = 20000

// defaultFields are asked for when poll.fields is empty: without fields
// the search returns ids only (SOURCES.md, "Search").
var defaultFields = []string{"summary", "description", "reporter", "priority", "status", "issuetype", "labels", "created", "updated"}

// requiredFields are always asked for: a ticket needs a title, and the
// cursor needs updated.
var requiredFields = []string{"summary", "updated"}

// poller reads changed issues with the JQL search. It keeps no state
// between calls; everything is in the cursor.
type poller struct {
	api      *connectors.APIClient
	set      *settings
	fields   string
	pageSize int
	start    string
	log      *zap.Logger
	now      func() time.Time
}

func newPoller(src connectors.Source) (connectors.Poller, error) {
	set, _, errs := parseOptions(src)
	if set.jql == "" {
		errs = append(errs, config.Errorf(src.Path("jql"), "is required for polling: a bounded JQL query such as project = ITS (deskrelay adds the updated condition and the order)"))
	}
	api, err := connectors.NewAPIClient(src, src.Metrics)
	if err != nil {
		errs = append(errs, config.AsErrors(err)...)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	fields := slices.Clone(src.Config.Poll.Fields)
	if len(fields) == 0 {
		fields = slices.Clone(defaultFields)
	}
	fields = append(fields, requiredFields...)
	for _, f := range []string{set.impactField, set.urgencyField, set.requestTypeField} {
		if f != "" {
			fields = append(fields, f)
		}
	}
	fields = uniq(fields)
	log := src.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &poller{
		api:      api,
		set:      set,
		fields:   strings.Join(fields, ","),
		pageSize: cmp.Or(src.Config.Poll.PageSize, config.DefaultPoll.PageSize),
		start:    cmp.Or(src.Config.Poll.Start, config.DefaultPoll.Start),
		log:      log,
		now:      time.Now,
	}, nil
}

// cursor is where the next poll starts, stored as JSON after each page.
//
// Since is the lower bound of the current search: `updated >= "<Since as
// yyyy-MM-dd HH:mm in time_zone>"`, always a whole minute, because JQL
// compares dates to the minute. Token (with the Query it belongs to and
// when it was issued) continues that search; it is kept only while pages
// stay inside Since's minute. Seen holds, for every issue stored whose
// update time is at or after the oldest bound a later search may use,
// the update time stored (Unix ms): a re-read of the same version is
// dropped here, before it reaches the Sink. HWM is the newest update time
// stored.
type cursor struct {
	V       int              `json:"v"`
	Since   time.Time        `json:"since"`
	Query   string           `json:"query,omitempty"`
	Token   string           `json:"token,omitempty"`
	TokenAt time.Time        `json:"token_at,omitzero"`
	HWM     time.Time        `json:"hwm,omitzero"`
	Seen    map[string]int64 `json:"seen,omitempty"`
}

// searchPage is the answer of GET /rest/api/3/search/jql
// (SearchAndReconcileResults: issues, nextPageToken, isLast).
type searchPage struct {
	Issues        []json.RawMessage `json:"issues"`
	NextPageToken string            `json:"nextPageToken"`
	IsLast        *bool             `json:"isLast"`
}

// Poll fetches one page after cur. How it cannot skip or double:
//
//   - Order: results come ORDER BY updated ASC, key ASC, so every issue
//     before the last one of a page (by update time) was on this page or
//     an earlier one of the same search.
//   - Keyset restarts: after a full page whose last issue lies in a later
//     minute than Since, the next poll starts a new search at that minute
//     instead of following the token. Issues in that minute are read again
//     and dropped by Seen; nothing earlier can be missed (they were all
//     before the page's last issue). An issue edited during the walk only
//     moves later, where the walk still finds it. Tokens, whose paging
//     Jira does not specify, are only followed inside one minute holding
//     more than a page of issues.
//   - End of the walk (isLast): the next search starts overlap (≥ 1 min)
//     before the newest update stored, so an issue whose update became
//     searchable late (results lag writes) is still found.
//   - Seen drops an issue version already stored, exactly, whatever the
//     JetStream duplicate window; issues with an equal update time are
//     told apart by id, never by position. The runner stores the cursor
//     only after the page's tickets: a crash re-reads the page and the
//     Sink's Nats-Msg-Id (source:id:updated) drops what was stored.
//   - A token that Jira refuses or that is older than 6 days (they expire
//     after 7) restarts the search at Since; Seen drops the re-reads.
func (p *poller) Poll(ctx context.Context, raw []byte) (connectors.Page, error) {
	now := p.now()
	var cur cursor
	if raw == nil {
		start, err := config.ParseStart(p.start, now)
		if err != nil {
			return connectors.Page{}, fmt.Errorf("jsm: poll.start: %w", err)
		}
		cur = cursor{V: 1, Since: floorMinute(start)}
	} else if err := json.Unmarshal(raw, &cur); err != nil || cur.V != 1 || cur.Since.IsZero() {
		return connectors.Page{}, fmt.Errorf("jsm: the stored poll cursor is not a jsm cursor (%.40q); delete this source's key in the cursors bucket to restart at poll.start", raw)
	}
	jql := p.jql(cur.Since)
	qh := queryHash(jql, p.fields)
	token := ""
	if cur.Token != "" && cur.Query == qh && now.Sub(cur.TokenAt) < tokenMaxAge {
		token = cur.Token
	}
	page, err := p.search(ctx, jql, token)
	refused := false
	if token != "" && connectors.IsVendorStatus(err, http.StatusBadRequest) {
		p.log.Warn("jira refused the page token; restarting the search at the cursor's minute", zap.Time("since", cur.Since), zap.Error(err))
		refused = true
		page, err = p.search(ctx, jql, "")
	}
	if err != nil {
		return connectors.Page{}, err
	}

	seen := maps.Clone(cur.Seen)
	if seen == nil {
		seen = map[string]int64{}
	}
	var out connectors.Page
	hwm := cur.HWM
	var last time.Time // newest update time on this page
	for i, b := range page.Issues {
		t, notes, err := p.set.normalize(b, fmt.Sprintf("issues[%d].", i), nil)
		if err == nil && t.UpdatedAt.IsZero() {
			err = connectors.Inputf(fmt.Sprintf("issues[%d].fields.updated", i), "is required to poll; add updated to poll.fields")
		}
		if err != nil {
			// Remember a rejected version too, when its id and update
			// time can be read, so that overlapping searches dead-letter
			// it once.
			id, upd := idOf(b)
			if !upd.IsZero() {
				last = later(last, upd)
				if id != "" {
					if v, ok := seen[id]; ok && v == upd.UnixMilli() {
						continue
					}
					seen[id] = upd.UnixMilli()
				}
			}
			out.Rejects = append(out.Rejects, connectors.Reject{ID: id, Err: err, Payload: b})
			continue
		}
		last = later(last, t.UpdatedAt)
		ms := t.UpdatedAt.UnixMilli()
		if v, ok := seen[t.ID]; ok && v == ms {
			continue // this version was stored by an earlier page
		}
		seen[t.ID] = ms
		if t.UpdatedAt.After(hwm) {
			hwm = t.UpdatedAt
		}
		for _, n := range notes {
			p.log.Warn("jira value not in the code table; field left empty", zap.String("ticket_id", t.ID), zap.String("field", n.Field), zap.String("value", truncate(n.Value, 64)))
		}
		t.Raw = json.RawMessage(b)
		out.Tickets = append(out.Tickets, t)
	}

	next := cursor{V: 1, HWM: hwm}
	isLast := page.IsLast == nil || *page.IsLast || page.NextPageToken == ""
	switch {
	case !isLast && floorMinute(last).After(cur.Since):
		next.Since = floorMinute(last) // keyset restart
		out.More = true
	case !isLast:
		// The whole page lies in Since's minute: page on with the token.
		next.Since, next.Query, next.Token, next.TokenAt = cur.Since, qh, page.NextPageToken, now
		// After a refused token, wait for the next interval rather than
		// loop on tokens Jira keeps refusing.
		out.More = !refused
	default:
		next.Since = cur.Since
		if !hwm.IsZero() {
			next.Since = floorMinute(hwm).Add(-p.set.overlap)
		}
	}
	next.Seen = prune(seen, next.Since, hwm, p.set.overlap)
	if len(next.Seen) < len(seen) && len(seen) > maxSeen {
		p.log.Warn("poll cursor's seen set is full; the oldest entries rely on JetStream de-duplication", zap.Int("entries", maxSeen))
	}
	if out.Cursor, err = json.Marshal(next); err != nil {
		return connectors.Page{}, fmt.Errorf("jsm: encode cursor: %w", err)
	}
	out.Watermark = hwm
	return out, nil
}

// prune keeps the seen entries a later search can return: those at or
// after min(since, floor(hwm) − overlap), the oldest bound used next.
func prune(seen map[string]int64, since, hwm time.Time, overlap time.Duration) map[string]int64 {
	cut := since
	if !hwm.IsZero() {
		if c := floorMinute(hwm).Add(-overlap); c.Before(cut) {
			cut = c
		}
	}
	cutMS := cut.UnixMilli()
	out := make(map[string]int64, len(seen))
	for id, ms := range seen {
		if ms >= cutMS {
			out[id] = ms
		}
	}
	if len(out) > maxSeen {
		ids := slices.Collect(maps.Keys(out))
		slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(out[a], out[b]) })
		for _, id := range ids[:len(out)-maxSeen] {
			delete(out, id)
		}
	}
	return out
}

// jql is the search for issues updated at or after since. JQL date
// literals have minute precision and are read in the API user's profile
// time zone (SOURCES.md, "Incremental polling"), hence time_zone.
func (p *poller) jql(since time.Time) string {
	return "(" + p.set.jql + `) AND updated >= "` + jqlTime(since, p.set.loc) + `" ORDER BY updated ASC, key ASC`
}

// jqlTime formats t as a JQL date literal in loc. Where a daylight-saving
// change repeats the local hour, the literal is ambiguous; it is then
// taken an hour earlier, so that either reading lies at or before t (an
// overlap, never a gap).
func jqlTime(t time.Time, loc *time.Location) string {
	const layout = "2006-01-02 15:04"
	s := t.In(loc).Format(layout)
	for _, d := range []time.Duration{30 * time.Minute, time.Hour} {
		if t.Add(d).In(loc).Format(layout) == s {
			return t.Add(-time.Hour).In(loc).Format(layout)
		}
	}
	return s
}

func (p *poller) search(ctx context.Context, jql, token string) (*searchPage, error) {
	q := url.Values{
		"jql":        {jql},
		"fields":     {p.fields},
		"maxResults": {strconv.Itoa(p.pageSize)},
	}
	if token != "" {
		q.Set("nextPageToken", token)
	}
	resp, body, err := p.api.Get(ctx, SearchPath, q)
	if err != nil {
		var ve *connectors.VendorError
		if errors.As(err, &ve) && resp != nil {
			ve.RetryAfter = max(ve.RetryAfter, rateLimitReset(resp.Header, p.now()))
		}
		return nil, fmt.Errorf("jsm: search: %w", err)
	}
	var page searchPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("jsm: search answer is not a search result: %w", err)
	}
	return &page, nil
}

// rateLimitReset reads X-RateLimit-Reset, which Jira sends with 429 (and
// some 503) answers as an ISO 8601 time to the minute, e.g.
// 2024-05-13T10:31Z: the request time plus Retry-After (SOURCES.md, "Rate
// limiting"). It returns how long until then, 0 if absent or past. The
// caller keeps the longer of this and Retry-After: retrying early earns
// an equal or longer wait.
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	v := h.Get("X-RateLimit-Reset")
	if v == "" {
		return 0
	}
	for _, l := range []string{"2006-01-02T15:04Z07:00", time.RFC3339} {
		if t, err := time.Parse(l, v); err == nil {
			return max(0, t.Sub(now))
		}
	}
	return 0
}

// floorMinute truncates t to its minute (time zones with whole-minute
// offsets, all current ones, agree on minute boundaries).
func floorMinute(t time.Time) time.Time { return t.UTC().Truncate(time.Minute) }

// queryHash ties a page token to the search it belongs to.
func queryHash(jql, fields string) string {
	h := sha256.Sum256([]byte(jql + "\x00" + fields))
	return hex.EncodeToString(h[:8])
}

// idOf returns the id and update time of an issue that could not be
// normalised, as far as they can be read.
func idOf(b []byte) (string, time.Time) {
	var is struct {
		ID     flexString `json:"id"`
		Fields struct {
			Updated string `json:"updated"`
		} `json:"fields"`
	}
	if json.Unmarshal(b, &is) != nil {
		var id struct {
			ID flexString `json:"id"`
		}
		_ = json.Unmarshal(b, &id)
		return string(id.ID), time.Time{}
	}
	t, _ := parseTime(is.Fields.Updated)
	return string(is.ID), t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
