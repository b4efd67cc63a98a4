package servicenow

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/jsonpick"
	"github.com/deskrelay/deskrelay/ticket"
)

// TimeLayout is the format of ServiceNow date-time database values
// (sys_updated_on, opened_at …): no zone marker, always UTC, one-second
// precision (Table API docs; see testdata/SOURCES.md).
const TimeLayout = "2006-01-02 15:04:05"

// defaultFields maps each ticket field to the record fields it is read
// from, first present non-empty value wins. The names are the Table API's
// (task and incident tables); "x.y" is a dot-walked field, which the Table
// API returns as a key "x.y" when sysparm_fields asks for it, and which a
// webhook may also send nested ({"x": {"y": …}}).
func defaultFields(table string) map[string][]string {
	caller := []string{"opened_by"} // task tables other than the two below
	switch table {
	case "incident":
		caller = []string{"caller_id"}
	case "sc_req_item", "sc_request":
		caller = []string{"requested_for"}
	}
	callerEmail, callerName := []string{}, []string{}
	for _, c := range caller {
		callerEmail = append(callerEmail, c+".email")
		callerName = append(callerName, c+".name")
	}
	return map[string][]string{
		"id":                 {"sys_id"},
		"number":             {"number"},
		"title":              {"short_description"},
		"description":        {"description"},
		"caller.id":          caller,
		"caller.email":       callerEmail,
		"caller.name":        callerName,
		"channel":            {"contact_type"},
		"category":           {"category"},
		"subcategory":        {"subcategory"},
		"impact":             {"impact"},
		"urgency":            {"urgency"},
		"priority":           {"priority"},
		"state":              {"state"},
		"assignment_group":   {"assignment_group.name", "assignment_group"},
		"assigned_to":        {"assigned_to.name", "assigned_to"},
		"configuration_item": {"cmdb_ci.name", "cmdb_ci"},
		"opened_at":          {"opened_at"},
		"updated_at":         {"sys_updated_on"},
		// sys_mod_count tells apart two saves within one second of
		// sys_updated_on (it is part of the de-duplication key).
		"version": {"sys_mod_count"},
	}
}

// nameFields prefer a reference's display_value (with
// sysparm_display_value=all) over its sys_id: people read them in routing
// rules. Every other field takes the database value.
var nameFields = []string{"caller.name", "assignment_group", "assigned_to", "configuration_item"}

// Default code tables of the base system's incident table (see
// testdata/SOURCES.md; instances can change choice lists, and the codes
// option overrides or extends these per entry).
var (
	defaultChannel = map[string]string{
		"email": "email", "phone": "phone", "self-service": "portal", "walk-in": "walk_in",
		"chat": "chat", "virtual_agent": "virtual_agent", "virtual agent": "virtual_agent",
	}
	defaultLevel    = map[string]string{"1": "1", "2": "2", "3": "3"}
	defaultPriority = map[string]string{"1": "1", "2": "2", "3": "3", "4": "4", "5": "5"}
	defaultState    = map[string]string{
		"1": "new", "2": "in_progress", "3": "on_hold", "6": "resolved", "7": "closed", "8": "canceled",
	}
)

// codeNames are the keys of the codes option.
var codeNames = []string{"channel", "impact", "urgency", "priority", "state"}

// mapper turns a ServiceNow record into a ticket. It is immutable after
// newMapper and safe for concurrent use.
type mapper struct {
	paths map[string][]string          // ticket field → record paths
	codes map[string]map[string]string // code name → lower-case vendor value → normalised
	plan  *plan
}

func newMapper(src connectors.Source, table string, fields map[string]any, codes map[string]map[string]any) (*mapper, config.Errors) {
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(src.Path(key), format, args...))
	}
	m := &mapper{paths: defaultFields(table), codes: map[string]map[string]string{}}
	flat := map[string]any{}
	flatten("", fields, flat)
	for _, field := range sortedKeys(flat) {
		key := "fields." + field
		if !slices.Contains(ticket.MappableFields, field) {
			bad(key, "unknown ticket field %q; fields are %s", field, strings.Join(ticket.MappableFields, ", "))
			continue
		}
		var paths []string
		switch v := flat[field].(type) {
		case string:
			if v != "" { // "" switches the field off
				paths = []string{v}
			}
		case []any:
			for _, p := range v {
				s, ok := p.(string)
				if !ok || s == "" {
					bad(key, "must be a record field name or a list of them")
					continue
				}
				paths = append(paths, s)
			}
		default:
			bad(key, "must be a record field name (sys_id, caller_id.email) or a list of them")
			continue
		}
		for _, p := range paths {
			if !fieldRE.MatchString(p) {
				bad(key, "%q is not a record field name such as short_description or caller_id.email", p)
			}
		}
		m.paths[field] = paths
	}
	for _, req := range []string{"id", "updated_at"} {
		if len(m.paths[req]) == 0 {
			bad("fields."+req, "cannot be switched off: every ticket needs it")
		}
	}
	m.plan = newPlan(m.paths)

	defaults := map[string]map[string]string{
		"channel": defaultChannel, "impact": defaultLevel, "urgency": defaultLevel,
		"priority": defaultPriority, "state": defaultState,
	}
	for _, name := range codeNames {
		t := map[string]string{}
		for k, v := range defaults[name] {
			t[k] = v
		}
		m.codes[name] = t
	}
	for _, name := range sortedKeys(codes) {
		table, ok := m.codes[name]
		if !ok {
			bad("codes."+name, "unknown code table %q; tables are %s", name, strings.Join(codeNames, ", "))
			continue
		}
		for _, from := range sortedKeys(codes[name]) {
			to := strings.TrimSpace(fmt.Sprint(codes[name][from]))
			if err := checkCode(name, to); err != nil {
				bad("codes."+name+"."+from, "%v", err)
				continue
			}
			if name == "channel" {
				c, _ := ticket.ParseChannel(to)
				to = string(c)
			}
			table[strings.ToLower(strings.TrimSpace(from))] = to
		}
	}
	return m, errs
}

// checkCode checks a code table's target value.
func checkCode(name, v string) error {
	switch name {
	case "channel":
		_, err := ticket.ParseChannel(v)
		return err
	case "impact", "urgency":
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 3 {
			return fmt.Errorf("%q is not an %s; use 1 (high) to 3 (low)", v, name)
		}
	case "priority":
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 5 {
			return fmt.Errorf("%q is not a priority; use 1 (critical) to 5 (planning)", v)
		}
	case "state":
		if v == "" {
			return fmt.Errorf("a state must not be empty")
		}
	}
	return nil
}

// recordFields lists the record fields the mapping reads, for
// sysparm_fields.
func (m *mapper) recordFields() []string {
	var out []string
	for _, paths := range m.paths {
		out = append(out, paths...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lookup finds path in rec: first as a literal key (the Table API's
// dot-walked "caller_id.email"), then as nested objects. A reference
// object or a {display_value, value} pair yields its value (its
// display_value when display is true and it has one); JSON null and
// absent fields yield ok == false.
func lookup(rec gjson.Result, path string, display bool) (s string, ok bool, err error) {
	res := rec.Get(gjson.Escape(path))
	if !res.Exists() && strings.Contains(path, ".") {
		res = rec.Get(path)
	}
	return value(res, display)
}

// value is what [lookup] makes of the result it found.
func value(res gjson.Result, display bool) (s string, ok bool, err error) {
	switch res.Type {
	case gjson.Null:
		return "", false, nil
	case gjson.String:
		return res.Str, res.Str != "", nil
	case gjson.Number, gjson.True, gjson.False:
		return res.Raw, true, nil
	case gjson.JSON:
		if res.IsObject() {
			if dv := res.Get("display_value"); display && dv.Type == gjson.String && dv.Str != "" {
				return dv.Str, true, nil
			}
			if v := res.Get("value"); v.Exists() {
				return scalar(v)
			}
			if v := res.Get("sys_id"); v.Exists() { // a record object a script built
				return scalar(v)
			}
			return "", false, fmt.Errorf("is an object without value or sys_id")
		}
		return "", false, fmt.Errorf("is a list, not a value")
	}
	return "", false, nil
}

func scalar(v gjson.Result) (string, bool, error) {
	switch v.Type {
	case gjson.Null:
		return "", false, nil
	case gjson.String:
		return v.Str, v.Str != "", nil
	case gjson.Number, gjson.True, gjson.False:
		return v.Raw, true, nil
	}
	return "", false, fmt.Errorf("holds a %s where a value was expected", v.Type)
}

// ticket maps one record. Problems the sender can fix are
// *connectors.InputError naming the ticket field. It does not validate
// the ticket (the ingress and the poller do, with the source set).
func (m *mapper) ticket(rec gjson.Result) (ticket.Ticket, error) {
	if !rec.IsObject() {
		return ticket.Ticket{}, connectors.Inputf("", "a record must be a JSON object")
	}
	var buf [planStack]jsonpick.Hit
	hits := m.plan.pick.Read(rec, buf[:0])
	var t ticket.Ticket
	for _, f := range m.plan.fields {
		s, path, err := f.get(hits)
		if err != nil {
			return ticket.Ticket{}, connectors.Inputf(f.name, "record field %q %v", path, err)
		}
		if s == "" {
			continue
		}
		if err := m.set(&t, f.name, s); err != nil {
			return ticket.Ticket{}, connectors.Inputf(f.name, "record field %q: %v", path, err)
		}
	}
	if t.ID == "" {
		return ticket.Ticket{}, connectors.Inputf("id", "record field %q is missing or empty", strings.Join(m.paths["id"], " or "))
	}
	if t.Title == "" {
		// short_description is not mandatory in ServiceNow; a record
		// without it is still a ticket someone must handle.
		t.Title = t.Number
	}
	if t.Title == "" {
		return ticket.Ticket{}, connectors.Inputf("title", "record fields %q and number are missing or empty", strings.Join(m.paths["title"], " or "))
	}
	return t, nil
}

func (m *mapper) set(t *ticket.Ticket, field, s string) error {
	var err error
	switch field {
	case "channel":
		t.Channel = ticket.Channel(m.code("channel", s, string(ticket.ChannelOther)))
	case "impact":
		t.Impact, _ = strconv.Atoi(m.code("impact", s, "0"))
	case "urgency":
		t.Urgency, _ = strconv.Atoi(m.code("urgency", s, "0"))
	case "priority":
		t.Priority, _ = strconv.Atoi(m.code("priority", s, "0"))
	case "state":
		t.State = m.code("state", s, s)
	case "opened_at":
		t.OpenedAt, err = parseTime(s)
	case "updated_at":
		t.UpdatedAt, err = parseTime(s)
	case "tags":
		for tag := range strings.SplitSeq(s, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				t.Tags = append(t.Tags, tag)
			}
		}
	default:
		if f := t.TextField(field); f != nil {
			*f = s
		}
	}
	return err
}

// code translates a vendor code through its table. A display value such
// as "2 - Medium" is looked up by its leading number. Unknown codes give
// def: other for channels, 0 (not given) for levels, the code itself for
// states.
func (m *mapper) code(name, s, def string) string {
	t := m.codes[name]
	k := strings.ToLower(strings.TrimSpace(s))
	if v, ok := t[k]; ok {
		return v
	}
	if num, _, ok := strings.Cut(k, " - "); ok {
		if v, ok := t[num]; ok {
			return v
		}
	}
	return def
}

// parseTime reads a date-time database value, which is UTC without a zone
// marker (Table API docs). RFC 3339 is accepted too, for payloads a Flow
// Designer step formats itself.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(TimeLayout, s, time.UTC); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a ServiceNow date-time; send the database value (yyyy-MM-dd HH:mm:ss, UTC), not the display value", s)
}
