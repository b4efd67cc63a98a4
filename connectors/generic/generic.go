// Package generic is the connector for any tool that can POST JSON. With
// mapping: identity (the default) the body is a normalised ticket as
// documented in the README; otherwise mapping names, for each ticket
// field, the path of its value in the payload (gjson syntax:
// "issue.fields.summary", "tags.0", "labels.#.name"), and values translates
// coded values (channel, impact, urgency, priority) through tables.
package generic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/go-viper/mapstructure/v2"
	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/jsonpick"
	"github.com/deskrelay/deskrelay/ticket"
)

func init() {
	connectors.Register(connectors.Spec{
		Type:       "generic",
		Summary:    "any tool that can POST JSON: the normalised ticket itself, or a field mapping",
		Options:    []string{"mapping", "values", "time_format"},
		NewWebhook: newWebhook,
	})
}

// coded are the fields whose values may be translated by a values table.
var coded = []string{"channel", "impact", "urgency", "priority", "state", "category"}

type options struct {
	Mapping    any                          `mapstructure:"mapping"`
	Values     map[string]map[string]string `mapstructure:"values"`
	TimeFormat string                       `mapstructure:"time_format"`
}

type webhook struct {
	identity   bool
	paths      map[string]string // ticket field → gjson path
	fields     []mapped          // the mapped fields, in ticket.MappableFields order
	pick       jsonpick.Plan     // the plain paths of fields
	values     map[string]map[string]string
	timeLayout []string
}

// mapped is one mapped ticket field.
type mapped struct {
	field, path string
	slot        int // into pick's hits; -1: a path only gjson can read
}

// plainPath is a path of plain keys (or array indexes after the first),
// which pick reads as gjson would; any other gjson syntax (#, *, ?, @,
// escapes) is asked of gjson.
var plainPath = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// pickStack is how many mapped fields Normalize reads into a buffer on
// the stack: all of them (ticket.MappableFields).
const pickStack = 32

// plan fills fields and pick from paths.
func (w *webhook) plan() {
	for _, field := range ticket.MappableFields {
		path, ok := w.paths[field]
		if !ok {
			continue
		}
		slot := -1
		if plainPath.MatchString(path) {
			key, rest, _ := strings.Cut(path, ".")
			slot = w.pick.Add(jsonpick.Path{Key: key, Rest: rest})
		}
		w.fields = append(w.fields, mapped{field: field, path: path, slot: slot})
	}
}

var _ connectors.Webhook = (*webhook)(nil)

func newWebhook(src connectors.Source) (connectors.Webhook, error) {
	var o options
	var errs config.Errors
	if err := mapstructure.Decode(src.Config.Options, &o); err != nil {
		return nil, config.Errorf(src.Path("mapping"), "%v", err)
	}
	w := &webhook{values: map[string]map[string]string{}}
	switch m := o.Mapping.(type) {
	case nil:
		w.identity = true
	case string:
		if m != "identity" {
			errs = append(errs, config.Errorf(src.Path("mapping"), "%q is not a mapping; use identity or a map of ticket field → payload path", m))
		}
		w.identity = true
	case map[string]any:
		w.paths = map[string]string{}
		for field, p := range m {
			path := src.Path("mapping." + field)
			ps, ok := p.(string)
			switch {
			case !slices.Contains(ticket.MappableFields, field):
				errs = append(errs, config.Errorf(path, "unknown ticket field %q; fields are %s", field, strings.Join(ticket.MappableFields, ", ")))
			case !ok || ps == "":
				errs = append(errs, config.Errorf(path, "must be a payload path such as \"sys_id\" or \"issue.fields.summary\""))
			default:
				w.paths[field] = ps
			}
		}
		for _, req := range []string{"id", "title"} {
			if _, ok := m[req]; !ok {
				errs = append(errs, config.Errorf(src.Path("mapping"), "maps no payload path to %q, which every ticket needs", req))
			}
		}
	default:
		errs = append(errs, config.Errorf(src.Path("mapping"), "must be identity or a map of ticket field → payload path"))
	}
	for field, table := range o.Values {
		path := src.Path("values." + field)
		if !slices.Contains(coded, field) {
			errs = append(errs, config.Errorf(path, "values can translate only %s", strings.Join(coded, ", ")))
			continue
		}
		if w.identity {
			errs = append(errs, config.Errorf(path, "values apply only to a field mapping, not to mapping: identity"))
			continue
		}
		t := map[string]string{}
		for from, to := range table {
			if err := checkCoded(field, to); err != nil {
				errs = append(errs, config.Errorf(path+"."+from, "%v", err))
			}
			t[strings.ToLower(from)] = to
		}
		w.values[field] = t
	}
	w.timeLayout = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"}
	if o.TimeFormat != "" {
		w.timeLayout = append([]string{o.TimeFormat}, w.timeLayout...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	w.plan()
	return w, nil
}

func checkCoded(field, v string) error {
	switch field {
	case "channel":
		_, err := ticket.ParseChannel(v)
		return err
	case "impact", "urgency":
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 3 {
			return fmt.Errorf("%q is not a %s; use 1 (high) to 3 (low)", v, field)
		}
	case "priority":
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 5 {
			return fmt.Errorf("%q is not a priority; use 1 (critical) to 5 (planning)", v)
		}
	}
	return nil
}

// Normalize decodes body into a ticket.
func (w *webhook) Normalize(_ context.Context, _ http.Header, body []byte) (ticket.Ticket, error) {
	if w.identity {
		return identity(body)
	}
	// encoding/json's check, not gjson's: it also refuses nesting deeper
	// than the ticket could later be encoded with.
	if !json.Valid(body) {
		return ticket.Ticket{}, connectors.Inputf("", "body is not valid JSON (or nested deeper than 10000 levels)")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return ticket.Ticket{}, connectors.Inputf("", "body must be a JSON object")
	}
	t := ticket.Ticket{Raw: json.RawMessage(bytes.Clone(body))}
	var buf [pickStack]jsonpick.Hit
	hits := w.pick.Read(root, buf[:0])
	for _, f := range w.fields {
		var res gjson.Result
		if f.slot >= 0 {
			res = hits[f.slot].Result
		} else {
			res = root.Get(f.path)
		}
		if !res.Exists() || res.Type == gjson.Null {
			continue
		}
		if err := w.set(&t, f.field, res); err != nil {
			return ticket.Ticket{}, connectors.Inputf(f.field, "payload path %q: %v", f.path, err)
		}
	}
	for _, req := range []string{"id", "title"} {
		if (req == "id" && t.ID == "") || (req == "title" && t.Title == "") {
			return ticket.Ticket{}, connectors.Inputf(req, "is required but payload path %q is missing or empty", w.paths[req])
		}
	}
	return t, nil
}

func (w *webhook) set(t *ticket.Ticket, field string, res gjson.Result) error {
	s := res.String()
	if table, ok := w.values[field]; ok {
		if to, ok := table[strings.ToLower(s)]; ok {
			s = to
		}
	}
	var err error
	switch field {
	case "channel":
		t.Channel, err = ticket.ParseChannel(s)
	case "impact":
		t.Impact, err = code(s)
	case "urgency":
		t.Urgency, err = code(s)
	case "priority":
		t.Priority, err = code(s)
	case "opened_at":
		t.OpenedAt, err = w.parseTime(res)
	case "updated_at":
		t.UpdatedAt, err = w.parseTime(res)
	case "tags":
		t.Tags = tags(res)
	default:
		if f := t.TextField(field); f != nil {
			*f = s
		}
	}
	return err
}

// code reads a small integer code such as an impact. ServiceNow sends
// "2 - Medium", so a leading number followed by text is accepted.
func code(s string) (int, error) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 || end > 2 {
		return 0, fmt.Errorf("%q is not a number (add a values table to translate it)", s)
	}
	n, _ := strconv.Atoi(s[:end])
	return n, nil
}

func (w *webhook) parseTime(res gjson.Result) (time.Time, error) {
	if res.Type == gjson.Number {
		f := res.Float()
		switch {
		case f > 1e14: // microseconds are not expected; treat as invalid
			return time.Time{}, fmt.Errorf("%v is not a Unix time in seconds or milliseconds", f)
		case f > 1e11:
			return time.UnixMilli(int64(f)).UTC(), nil
		default:
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		}
	}
	s := strings.TrimSpace(res.String())
	for _, l := range w.timeLayout {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time; send RFC 3339 (2024-05-13T10:15:44Z), Unix seconds, or set time_format", s)
}

func tags(res gjson.Result) []string {
	var out []string
	if res.IsArray() {
		for _, v := range res.Array() {
			if s := strings.TrimSpace(v.String()); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	for _, s := range strings.FieldsFunc(res.String(), func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, s)
	}
	return out
}

// identity decodes a normalised ticket. Unknown fields are refused, so a
// misspelt field is an error rather than silently dropped.
func identity(body []byte) (ticket.Ticket, error) {
	if t, ok := ticket.DecodeFast(body); ok { // the usual shape, without reflection
		return t, nil
	}
	var t ticket.Ticket
	// encoding/json's semantics (v1), on the faster v2 engine: a decoder
	// over the whole body, no stream buffer.
	if err := jsonv2.Unmarshal(body, &t, jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true)); err != nil {
		var se *jsonv1.SyntaxError
		var te *jsonv1.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &pe):
			// Neither decoder says which field held the time.
			return ticket.Ticket{}, connectors.Inputf("", "opened_at and updated_at must be RFC 3339 times such as 2024-05-13T10:15:42Z, not %q%s", pe.Value, pe.Message)
		case errors.As(err, &te) && te.Type == reflect.TypeFor[time.Time]():
			return ticket.Ticket{}, connectors.Inputf(te.Field, "must be an RFC 3339 time string such as 2024-05-13T10:15:42Z, not %s", te.Value)
		case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
			return ticket.Ticket{}, connectors.Inputf("", "body holds more than one JSON value")
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return ticket.Ticket{}, connectors.Inputf("", "body is not valid JSON: %v", err)
		case errors.As(err, &te) && te.Field == "":
			return ticket.Ticket{}, connectors.Inputf("", "body must be a JSON object (a ticket), not %s", te.Value)
		case errors.As(err, &te):
			return ticket.Ticket{}, connectors.Inputf(te.Field, "must be a JSON %s, not %s", jsonKind(te.Type.Kind()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json has no error type for this case.
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return ticket.Ticket{}, connectors.Inputf(f, "is not a ticket field (see the ticket format in the README)")
		default:
			return ticket.Ticket{}, connectors.Inputf("", "body is not a ticket: %v", err)
		}
	}
	return t, nil // the body is the ticket: no separate raw copy
}

// jsonKind names a Go kind as the JSON type a sender should use.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Bool:
		return "boolean"
	}
	return "string"
}
