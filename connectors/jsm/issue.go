package jsm

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"
	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/jsonpick"
	"github.com/deskrelay/deskrelay/ticket"
)

// Jira renders issue times as 2024-05-13T12:15:42.123+0200: milliseconds,
// and an offset without a colon (SOURCES.md, "Dates in issues"). The other
// layouts are accepted for JSM date objects (iso8601, no millis) and for
// payloads that went through another tool.
var timeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
}

// parseTime reads a Jira time and returns it in UTC.
func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a Jira time such as 2024-05-13T12:15:42.123+0200", s)
}

// flexString is an id that Jira sends as a string but that may arrive as a
// number from other tools.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be a string or a number")
	}
	*f = flexString(n.String())
	return nil
}

// user is a Jira user object. emailAddress is absent or null when the
// user's privacy settings hide it (SOURCES.md, "Webhook envelope").
type user struct {
	AccountID    string  `json:"accountId"`
	EmailAddress *string `json:"emailAddress"`
	DisplayName  string  `json:"displayName"`
}

// named is the shape shared by priority, status, issue type and select
// options: an id and a name (options call it value).
type named struct {
	ID             flexString `json:"id"`
	Name           string     `json:"name"`
	Value          string     `json:"value"`
	StatusCategory *struct {
		Key string `json:"key"`
	} `json:"statusCategory"`
}

// requestType is the JSM "Customer Request Type" field's value.
type requestType struct {
	RequestType *struct {
		ID   flexString `json:"id"`
		Name string     `json:"name"`
	} `json:"requestType"`
}

type comment struct {
	Author  *user           `json:"author"`
	Body    json.RawMessage `json:"body"`
	Created string          `json:"created"`
}

// issue is a Jira issue as found in a webhook's issue key and in search
// results. Fields are decoded one by one, since their set depends on the
// site and on the fields asked for.
type issue struct {
	ID     flexString      `json:"id"`
	Key    string          `json:"key"`
	Fields json.RawMessage `json:"fields"`
}

// issueFields are the fields normalize reads, besides the impact, urgency
// and request type fields a site configures.
var issueFields = []string{"summary", "description", "comment", "reporter", "assignee", "priority", "status", "issuetype", "labels", "created", "updated"}

// fieldStack is how many fields normalize picks into a buffer on the
// stack: issueFields and the three configured ones.
const fieldStack = 16

// planFields fills fields and slot. A site's issues have dozens to
// hundreds of fields, most of them custom and null; picking the few
// normalize reads in one pass spares decoding every one into a map.
func (s *settings) planFields() {
	s.slot = map[string]int{}
	for _, f := range append(slices.Clone(issueFields), s.impactField, s.urgencyField, s.requestTypeField) {
		if f != "" {
			s.slot[f] = s.fields.Add(jsonpick.Path{Key: f})
		}
	}
}

// unmapped is a coded value no table knows; the caller logs it.
type unmapped struct {
	Field string
	Value string
}

// normalize turns one issue (raw JSON) into a ticket. prefix is the path
// of the issue in the payload ("issue." in a webhook, "" in search
// results), for error messages. Errors are *connectors.InputError. The
// ticket's Source and Raw are left to the caller; UpdatedAt is zero when
// the issue has no updated field. eventComment is a comment webhook's
// top-level comment (nil elsewhere): it is added when the issue carries no
// comment field of its own.
func (s *settings) normalize(raw []byte, prefix string, eventComment []byte) (ticket.Ticket, []unmapped, error) {
	var is issue
	if err := json.Unmarshal(raw, &is); err != nil {
		return ticket.Ticket{}, nil, inputErr(prefix, err)
	}
	if strings.TrimSpace(string(is.ID)) == "" {
		return ticket.Ticket{}, nil, connectors.Inputf(prefix+"id", "is required: the issue's numeric id")
	}
	t := ticket.Ticket{ID: string(is.ID), Number: is.Key}
	fp := prefix + "fields."
	obj := gjson.ParseBytes(is.Fields)
	if obj.Exists() && obj.Type != gjson.Null && !obj.IsObject() {
		return ticket.Ticket{}, nil, connectors.Inputf(prefix+"fields", "must be a JSON object, not %s", kindOf(obj))
	}
	var buf [fieldStack]jsonpick.Hit
	hits := s.fields.Read(obj, buf[:0])
	// field returns the named field's JSON, nil when the issue lacks it.
	field := func(name string) []byte {
		var r gjson.Result
		if i, ok := s.slot[name]; ok {
			r = hits[i].Result
		} else {
			r = obj.Get(gjson.Escape(name)) // a name planFields did not plan
		}
		if !r.Exists() {
			return nil
		}
		return []byte(r.Raw)
	}
	get := func(name string, dst any) error {
		b := field(name)
		if b == nil || isNull(b) {
			return nil
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return connectors.Inputf(fp+name, "has an unexpected shape: %v", plain(err))
		}
		return nil
	}
	var notes []unmapped

	if err := get("summary", &t.Title); err != nil {
		return ticket.Ticket{}, nil, err
	}
	if strings.TrimSpace(t.Title) == "" {
		return ticket.Ticket{}, nil, connectors.Inputf(fp+"summary", "is required; add summary to the fields deskrelay asks for")
	}
	if b := field("description"); b != nil {
		d, err := richText(b)
		if err != nil {
			return ticket.Ticket{}, nil, connectors.Inputf(fp+"description", "%v", err)
		}
		t.Description = d
	}
	var cm struct {
		Comments []comment `json:"comments"`
	}
	if err := get("comment", &cm); err != nil {
		return ticket.Ticket{}, nil, err
	}
	if err := appendComments(&t, cm.Comments, fp+"comment.comments"); err != nil {
		return ticket.Ticket{}, nil, err
	}
	if field("comment") == nil && len(eventComment) > 0 && !isNull(eventComment) {
		var c comment
		if err := json.Unmarshal(eventComment, &c); err != nil {
			return ticket.Ticket{}, nil, connectors.Inputf("comment", "is not a Jira comment object: %v", plain(err))
		}
		if err := appendComments(&t, []comment{c}, "comment"); err != nil {
			return ticket.Ticket{}, nil, err
		}
	}

	// Caller: the reporter, the person the request is for. Only the
	// accountId is certain; the email may be hidden.
	var rep user
	if err := get("reporter", &rep); err != nil {
		return ticket.Ticket{}, nil, err
	}
	t.Caller = ticket.Caller{ID: rep.AccountID, Name: rep.DisplayName}
	if rep.EmailAddress != nil {
		t.Caller.Email = *rep.EmailAddress
	}
	var assignee user
	if err := get("assignee", &assignee); err != nil {
		return ticket.Ticket{}, nil, err
	}
	t.AssignedTo = cmp.Or(assignee.DisplayName, assignee.AccountID)

	var prio named
	if err := get("priority", &prio); err != nil {
		return ticket.Ticket{}, nil, err
	}
	if prio.Name != "" || prio.ID != "" {
		if p, ok := lookup(s.priority, prio.Name); ok {
			t.Priority = p
		} else if p, ok := lookup(s.priority, string(prio.ID)); ok {
			t.Priority = p
		} else {
			notes = append(notes, unmapped{"priority", cmpOr(prio.Name, string(prio.ID))})
		}
	}
	for _, f := range []struct {
		id, name string
		table    map[string]int
		dst      *int
	}{
		{s.impactField, "impact", s.impact, &t.Impact},
		{s.urgencyField, "urgency", s.urgency, &t.Urgency},
	} {
		if f.id == "" {
			continue
		}
		val, id, err := optionValue(field(f.id))
		if err != nil {
			return ticket.Ticket{}, nil, connectors.Inputf(fp+f.id, "%s field: %v", f.name, err)
		}
		if val == "" && id == "" {
			continue
		}
		if v, ok := lookup(f.table, val); ok {
			*f.dst = v
		} else if v, ok := lookup(f.table, id); ok && id != "" {
			*f.dst = v
		} else {
			notes = append(notes, unmapped{f.name, cmpOr(val, id)})
		}
	}

	var status named
	if err := get("status", &status); err != nil {
		return ticket.Ticket{}, nil, err
	}
	t.State = s.stateOf(status)

	var itype named
	if err := get("issuetype", &itype); err != nil {
		return ticket.Ticket{}, nil, err
	}
	t.Category = itype.Name
	if s.requestTypeField != "" {
		var rt requestType
		if b := field(s.requestTypeField); b != nil && !isNull(b) && json.Unmarshal(b, &rt) == nil && rt.RequestType != nil {
			t.Subcategory = rt.RequestType.Name
			if c, ok := lookup(s.channel, rt.RequestType.Name); ok {
				t.Channel = c
			} else if c, ok := lookup(s.channel, string(rt.RequestType.ID)); ok && rt.RequestType.ID != "" {
				t.Channel = c
			} else {
				t.Channel = s.defaultChannel
			}
		}
	}
	if err := get("labels", &t.Tags); err != nil {
		return ticket.Ticket{}, nil, err
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"created", &t.OpenedAt}, {"updated", &t.UpdatedAt}} {
		var v string
		if err := get(f.name, &v); err != nil {
			return ticket.Ticket{}, nil, err
		}
		if v == "" {
			continue
		}
		tm, err := parseTime(v)
		if err != nil {
			return ticket.Ticket{}, nil, connectors.Inputf(fp+f.name, "%v", err)
		}
		*f.dst = tm
	}
	if err := checkTicket(t); err != nil {
		return ticket.Ticket{}, nil, err
	}
	return t, notes, nil
}

// checkTicket applies the ticket's own rules (an id without control
// characters, plausible times, …) so that what cannot be stored is refused
// here, as input, and not by the store.
func checkTicket(t ticket.Ticket) error {
	t.Source = "-" // set by the ingress or the runner
	err := t.Validate()
	var ve *ticket.ValidationError
	if errors.As(err, &ve) && len(ve.Fields) > 0 {
		return connectors.Inputf(ve.Fields[0].Field, "%s", ve.Fields[0].Msg)
	}
	return err
}

// stateOf maps a status by name, then id, then category, and keeps an
// unknown status's own name (lower case, words joined by _).
func (s *settings) stateOf(st named) string {
	if st.Name == "" && st.ID == "" {
		return ""
	}
	if v, ok := lookup(s.state, st.Name); ok {
		return v
	}
	if v, ok := s.state[fold(string(st.ID))]; ok && st.ID != "" {
		return v
	}
	if st.StatusCategory != nil {
		if v, ok := categoryState[st.StatusCategory.Key]; ok {
			return v
		}
	}
	return strings.Join(strings.Fields(strings.ToLower(st.Name)), "_")
}

// optionValue reads a select field: an option object {value, id}, a plain
// string, or a list of options (the first counts).
func optionValue(b json.RawMessage) (value, id string, err error) {
	if len(b) == 0 || isNull(b) {
		return "", "", nil
	}
	switch b[0] {
	case '"':
		err = json.Unmarshal(b, &value)
		return value, "", err
	case '{':
		var o named
		if err := json.Unmarshal(b, &o); err != nil {
			return "", "", fmt.Errorf("must be a select option {value, id}: %v", plain(err))
		}
		return cmpOr(o.Value, o.Name), string(o.ID), nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(b, &list); err != nil || len(list) == 0 {
			return "", "", nil
		}
		return optionValue(list[0])
	}
	return "", "", fmt.Errorf("must be a select option {value, id}, not %s", truncate(string(b), 20))
}

// appendComments adds the comments' text after the description, oldest
// first, each headed by its author and time.
func appendComments(t *ticket.Ticket, cs []comment, path string) error {
	for i, c := range cs {
		text, err := richText(c.Body)
		if err != nil {
			return connectors.Inputf(fmt.Sprintf("%s.%d.body", path, i), "%v", err)
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		head := "Comment"
		if c.Author != nil && c.Author.DisplayName != "" {
			head += " by " + c.Author.DisplayName
		}
		if tm, err := parseTime(c.Created); err == nil {
			head += " at " + tm.Format("2006-01-02 15:04 UTC")
		}
		if t.Description != "" {
			t.Description += "\n\n"
		}
		t.Description += head + ":\n" + text
	}
	return nil
}

// richText turns a description or comment body into plain text: API v2
// (and webhooks) send wiki markup as a string, kept as it is; API v3 sends
// an Atlassian Document Format object, rendered by [adfText].
func richText(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || isNull(b) {
		return "", nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", err
		}
		return s, nil
	case '{':
		var doc adfNode
		if err := json.Unmarshal(b, &doc); err != nil {
			return "", fmt.Errorf("is not an Atlassian Document Format document: %v", plain(err))
		}
		return adfText(&doc), nil
	}
	return "", fmt.Errorf("must be a string (wiki markup) or an Atlassian Document Format object")
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// inputErr turns a JSON decoding error of the issue object into an
// *InputError.
func inputErr(prefix string, err error) error {
	field := strings.TrimSuffix(prefix, ".")
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		if te.Field != "" {
			field = prefix + te.Field
		}
		return connectors.Inputf(field, "must be a JSON %s, not %s", jsonKind(te.Type), te.Value)
	}
	return connectors.Inputf(field, "is not a Jira issue object: %v", plain(err))
}

// kindOf names the JSON type of a value.
func kindOf(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return "string"
	case gjson.Number:
		return "number"
	case gjson.True, gjson.False:
		return "boolean"
	case gjson.JSON:
		if v.IsArray() {
			return "array"
		}
		return "object"
	}
	return "null"
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "number"
}

// plain drops encoding/json's "json: " prefix.
func plain(err error) string { return strings.TrimPrefix(err.Error(), "json: ") }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// millis renders a Unix-milliseconds time.
func millis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
