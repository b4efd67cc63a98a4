package freshservice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// decodeRecord turns one Freshservice ticket object into a normalised
// ticket; raw becomes its Raw. It reads both shapes deskrelay meets:
//
//   - the API's ticket resource (GET /api/v2/tickets): numeric id and
//     codes, requester_id, group_id, created_at/updated_at in ISO 8601
//     UTC, and with include=requester a requester object;
//   - the body an admin writes for a Workflow Automator webhook (our
//     template in docs/connectors/freshservice.md): the same keys, but
//     values rendered by placeholders, so ids and codes are strings and
//     codes are often labels ("Urgent"), the group is a name, and the
//     requester is an object with name and email.
//
// Errors are *connectors.InputError naming the field.
func (tb *tables) decodeRecord(rec gjson.Result, raw []byte) (ticket.Ticket, error) {
	if !rec.IsObject() {
		return ticket.Ticket{}, connectors.Inputf("ticket", "must be a JSON object")
	}
	t := ticket.Ticket{Raw: json.RawMessage(bytes.Clone(raw))}
	id, number, err := recordID(rec)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.ID, t.Number = id, number
	if d := str(rec.Get("display_id")); d != "" {
		t.Number = d
	}
	if t.Title = str(rec.Get("subject")); t.Title == "" {
		return ticket.Ticket{}, connectors.Inputf("subject", "is required (the ticket's subject, {{ticket.subject}})")
	}
	t.Description = str(rec.Get("description_text"))
	if t.Description == "" {
		t.Description = str(rec.Get("description"))
	}

	// Caller: requester_id is the id of the Freshservice requester; the
	// email comes from include=requester (API) or the template's
	// requester object.
	t.Caller.ID = str(rec.Get("requester_id"))
	if t.Caller.ID == "" {
		t.Caller.ID = str(rec.Get("requester.id"))
	}
	t.Caller.Email = firstStr(rec, "requester.email", "requester_email", "email")
	t.Caller.Name = firstStr(rec, "requester.name", "requester_name")

	if v := str(rec.Get("source")); v != "" {
		if c, ok := tb.source[tableKey(v)]; ok {
			t.Channel = c
		} else {
			t.Channel = ticket.ChannelOther // custom sources can be added in Freshservice
		}
	}
	if v := str(rec.Get("status")); v != "" {
		if s, ok := tb.status[tableKey(v)]; ok {
			t.State = s
		} else {
			t.State = tableKey(v) // a custom status
		}
	}
	for _, c := range []struct {
		field string
		table map[string]int
		dst   *int
	}{
		{"priority", tb.priority, &t.Priority},
		{"urgency", tb.urgency, &t.Urgency},
		{"impact", tb.impact, &t.Impact},
	} {
		v := str(rec.Get(c.field))
		if v == "" {
			continue
		}
		n, ok := c.table[tableKey(v)]
		if !ok {
			return ticket.Ticket{}, connectors.Inputf(c.field, "%q is not a Freshservice %s; add it to the %s table of this connector", truncate(v, 40), c.field, c.field)
		}
		*c.dst = n
	}
	t.Category = str(rec.Get("category"))
	t.Subcategory = str(rec.Get("sub_category"))
	t.AssignmentGroup = str(rec.Get("group"))
	if t.AssignmentGroup == "" {
		t.AssignmentGroup = str(rec.Get("group_id"))
	}
	t.AssignedTo = str(rec.Get("responder_id")) // the agent, by id
	t.Tags = tags(rec.Get("tags"))
	if t.OpenedAt, err = parseTime(rec, "created_at"); err != nil {
		return ticket.Ticket{}, err
	}
	if t.UpdatedAt, err = parseTime(rec, "updated_at"); err != nil {
		return ticket.Ticket{}, err
	}
	return t, nil
}

// recordID reads the ticket id. The API gives a number; a webhook template
// should send {{ticket.id_numeric}}, but a display id such as "INC-203" or
// "#SR-17" is accepted too: its number is the ticket id in Freshservice,
// so a ticket keeps one id whether it came by webhook or by polling. The
// display form is returned as the ticket number.
func recordID(rec gjson.Result) (id, number string, err error) {
	v := rec.Get("id")
	switch v.Type {
	case gjson.Number:
		id = v.Raw
		if strings.ContainsAny(id, ".eE-+") {
			return "", "", connectors.Inputf("id", "%s is not a ticket id (a whole number)", truncate(id, 40))
		}
	case gjson.String:
		id = strings.TrimSpace(v.Str)
	}
	if id == "" {
		return "", "", connectors.Inputf("id", "is required (the numeric ticket id, {{ticket.id_numeric}})")
	}
	if allDigits(id) {
		return id, "", nil
	}
	disp := strings.TrimPrefix(id, "#")
	if prefix, n, ok := strings.Cut(disp, "-"); ok && prefix != "" && allLetters(prefix) && allDigits(n) {
		return n, disp, nil
	}
	return "", "", connectors.Inputf("id", "%q is not a Freshservice ticket id; send the number ({{ticket.id_numeric}})", truncate(id, 40))
}

// parseTime reads an ISO 8601 time. The API documents UTC with a Z
// ("2024-05-13T10:15:42Z"); any RFC 3339 offset is accepted and converted.
func parseTime(rec gjson.Result, field string) (time.Time, error) {
	s := str(rec.Get(field))
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, connectors.Inputf(field, "%q is not an ISO 8601 time such as 2024-05-13T10:15:42Z", truncate(s, 40))
	}
	return t.UTC(), nil
}

// str returns a scalar as a trimmed string: numbers as written, true and
// false as words, null, objects and arrays as "".
func str(r gjson.Result) string {
	switch r.Type {
	case gjson.String:
		return strings.TrimSpace(r.Str)
	case gjson.Number:
		return r.Raw
	case gjson.True, gjson.False:
		return r.Raw
	}
	return ""
}

func firstStr(rec gjson.Result, paths ...string) string {
	for _, p := range paths {
		if s := str(rec.Get(p)); s != "" {
			return s
		}
	}
	return ""
}

// tags reads an array of strings, or a comma-separated string as a
// placeholder renders it.
func tags(r gjson.Result) []string {
	var out []string
	if r.IsArray() {
		for _, v := range r.Array() {
			if s := str(v); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	for s := range strings.SplitSeq(str(r), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func allDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allLetters(s string) bool {
	for i := range len(s) {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// recordError wraps a decoding error of the record with the given id.
func recordError(id string, err error) error {
	if id == "" {
		return fmt.Errorf("freshservice record: %w", err)
	}
	return fmt.Errorf("freshservice ticket %s: %w", id, err)
}
