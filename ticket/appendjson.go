package ticket

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// AppendJSON appends the routed message r as JSON to b and returns the
// extended slice. Its bytes are those of the v2 engine with encoding/json's
// options (jsonv2.Marshal(r, jsonv1.DefaultOptionsV1())), what deskrelay
// published before this encoder: encoding/json.Marshal's, except that
// invalid UTF-8 becomes the character U+FFFD rather than the escape
// \ufffd (the same JSON value). It is written field by field, without
// reflection: every routed message is encoded once, and reflection was
// most of the cost. An error (a NaN score, a time outside years
// 0…9999, an invalid raw payload) leaves b's contents undefined.
//
// A field added to Ticket, Caller, Profile, Routing, Hints or Routed must
// be added here too: TestAppendJSONCoversEveryField fails until it is.
func (r *Routed) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"schema":`...)
	b = appendString(b, r.Schema)
	b = append(b, `,"ticket":`...)
	if b, err = r.Ticket.appendJSON(b, 2); err != nil {
		return b, err
	}
	b = append(b, `,"profile":`...)
	if b, err = r.Profile.appendJSON(b); err != nil {
		return b, err
	}
	b = append(b, `,"routing":`...)
	b = r.Routing.appendJSON(b)
	b = append(b, `,"routed_at":`...)
	if b, err = appendTime(b, r.RoutedAt); err != nil {
		return b, fmt.Errorf("routed_at: %w", err)
	}
	return append(b, '}'), nil
}

// AppendJSON appends the ticket t as JSON to b, with the bytes
// [Routed.AppendJSON] describes.
func (t *Ticket) AppendJSON(b []byte) ([]byte, error) { return t.appendJSON(b, 1) }

// maxDepth is the nesting the v2 engine, and with it ticket.Decode,
// accepts in one JSON value.
const maxDepth = 10000

// appendJSON appends t, which sits inside depth JSON containers (its own
// object included), so that its raw payload may nest maxDepth-depth deep.
func (t *Ticket) appendJSON(b []byte, depth int) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendString(b, t.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, t.Source)
	b = appendOptString(b, `,"number":`, t.Number)
	b = append(b, `,"title":`...)
	b = appendString(b, t.Title)
	b = appendOptString(b, `,"description":`, t.Description)
	b = append(b, `,"caller":{`...)
	n := len(b)
	b = appendOptString(b, `,"id":`, t.Caller.ID)
	b = appendOptString(b, `,"email":`, t.Caller.Email)
	b = appendOptString(b, `,"name":`, t.Caller.Name)
	if len(b) > n {
		b = slices.Delete(b, n, n+1) // the first member's comma
	}
	b = append(b, '}')
	b = appendOptString(b, `,"channel":`, string(t.Channel))
	b = appendOptString(b, `,"category":`, t.Category)
	b = appendOptString(b, `,"subcategory":`, t.Subcategory)
	b = appendOptInt(b, `,"impact":`, t.Impact)
	b = appendOptInt(b, `,"urgency":`, t.Urgency)
	b = appendOptInt(b, `,"priority":`, t.Priority)
	b = appendOptString(b, `,"state":`, t.State)
	b = appendOptString(b, `,"assignment_group":`, t.AssignmentGroup)
	b = appendOptString(b, `,"assigned_to":`, t.AssignedTo)
	b = appendOptString(b, `,"configuration_item":`, t.ConfigurationItem)
	if b, err = appendOptTime(b, "opened_at", t.OpenedAt); err != nil {
		return b, err
	}
	if b, err = appendOptTime(b, "updated_at", t.UpdatedAt); err != nil {
		return b, err
	}
	b = appendOptString(b, `,"version":`, t.Version)
	b = appendOptStrings(b, `,"tags":`, t.Tags)
	if len(t.Raw) > 0 {
		b = append(b, `,"raw":`...)
		// The vendor's payload, checked, compacted and escaped as the v2
		// engine does it: the same bytes as before, at its speed.
		start := len(b)
		if b, err = jsontext.AppendFormat(b, t.Raw, jsonv1.DefaultOptionsV1()); err != nil {
			return b, fmt.Errorf("raw: %w", err)
		}
		// AppendFormat checks the payload's depth as if it were the whole
		// message; inside the message it may nest less deep. n levels
		// take at least 2n bytes, so a short payload needs no look.
		room := maxDepth - depth
		if out := b[start:]; len(out) >= 2*(room+1) {
			if n := nesting(out); n > room {
				return b, fmt.Errorf("raw: nested %d levels deep inside %d of the message, over the %d levels JSON decoders accept", n, depth, maxDepth)
			}
		}
	}
	return append(b, '}'), nil
}

func (p *Profile) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"name":`...)
	b = appendString(b, string(p.Name))
	b = append(b, `,"source":`...)
	b = appendString(b, p.Source)
	b = append(b, `,"confidence":`...)
	if b, err = appendFloat(b, p.Confidence); err != nil {
		return b, fmt.Errorf("profile confidence: %w", err)
	}
	for _, f := range [...]struct {
		name string
		v    *float64
	}{{"competence", p.Competence}, {"attitude", p.Attitude}} {
		if f.v == nil {
			continue
		}
		b = append(append(append(b, `,"`...), f.name...), `":`...)
		if b, err = appendFloat(b, *f.v); err != nil {
			return b, fmt.Errorf("profile %s: %w", f.name, err)
		}
	}
	b = appendOptString(b, `,"reason":`, p.Reason)
	if b, err = appendOptTime(b, "at", p.At); err != nil {
		return b, fmt.Errorf("profile %w", err)
	}
	b = appendOptString(b, `,"familiar_group":`, p.FamiliarGroup)
	b = appendOptString(b, `,"familiar_agent":`, p.FamiliarAgent)
	return append(b, '}'), nil
}

func (r *Routing) appendJSON(b []byte) []byte {
	b = append(b, `{"tier":`...)
	b = appendString(b, string(r.Tier))
	b = append(b, `,"channel":`...)
	b = appendString(b, string(r.Channel))
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(r.Priority), 10)
	b = append(b, `,"rules":`...)
	if r.Rules == nil {
		b = append(b, "null"...)
	} else {
		b = appendStrings(b, r.Rules)
	}
	h := &r.Hints
	b = append(b, `,"hints":{`...)
	n := len(b)
	b = appendOptString(b, `,"communication_style":`, h.CommunicationStyle)
	b = appendOptString(b, `,"language":`, h.Language)
	b = appendOptStrings(b, `,"preferred_channels":`, h.PreferredChannels)
	b = appendOptStrings(b, `,"do":`, h.Do)
	b = appendOptStrings(b, `,"avoid":`, h.Avoid)
	b = appendOptString(b, `,"status_update_every":`, h.StatusUpdateEvery)
	b = appendOptString(b, `,"virtual_agent":`, h.VirtualAgent)
	if len(h.Extra) > 0 {
		// Collected by hand: slices.Sorted(maps.Keys(…)) allocates four
		// times where this does not (BenchmarkAppendJSON).
		keys := make([]string, 0, len(h.Extra))
		for k := range h.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json's order
		b = append(b, `,"extra":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, h.Extra[k])
		}
		b = append(b, '}')
	}
	if len(b) > n {
		b = slices.Delete(b, n, n+1) // the first member's comma
	}
	return append(b, "}}"...)
}

// appendOptString appends member (`,"name":`) and s unless s is empty
// (omitempty).
func appendOptString(b []byte, member, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, member...), s)
}

// appendOptInt appends member and n unless n is 0 (omitempty).
func appendOptInt(b []byte, member string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, member...), int64(n), 10)
}

// appendOptStrings appends member and ss unless ss is empty (omitempty).
func appendOptStrings[S ~string](b []byte, member string, ss []S) []byte {
	if len(ss) == 0 {
		return b
	}
	return appendStrings(append(b, member...), ss)
}

func appendStrings[S ~string](b []byte, ss []S) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(s))
	}
	return append(b, ']')
}

// appendOptTime appends the member name and t unless t is zero
// (omitzero); an error names the member.
func appendOptTime(b []byte, name string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return b, nil
	}
	n := len(b)
	b = append(append(append(b, `,"`...), name...), `":`...)
	out, err := appendTime(b, t)
	if err != nil {
		return b[:n], fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

var errNotFinite = errors.New("json: unsupported value: a number must be finite")

// appendFloat appends f as encoding/json does: the shortest decimal that
// reads back as f, in exponent form below 1e-6 and from 1e21, with a
// one-digit exponent where one suffices (1e-7, not 1e-07).
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errNotFinite
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// nesting returns the deepest nesting of arrays and objects in the
// valid, compact JSON value v.
func nesting(v []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inString && c == '\\':
			i++ // the escaped byte
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// appendTime appends t as time.Time's MarshalJSON does: RFC 3339 with
// sub-second digits as needed, an error outside years 0…9999 (b is then
// returned as it was).
func appendTime(b []byte, t time.Time) ([]byte, error) {
	out, err := t.AppendText(append(b, '"'))
	if err != nil {
		return b, err
	}
	return append(out, '"'), nil
}

const hexDigits = "0123456789abcdef"

// plainByte holds the bytes appendString copies as they are: ASCII but the
// control characters, '"', '\\', '<', '>' and '&'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Eight-byte masks for skipPlain: each byte 0x01, each byte 0x80.
const lsb, msb = 0x0101010101010101, 0x8080808080808080

// skipPlain returns the index of the first byte of s from i on that is not
// [plainByte], or len(s), looking at eight bytes at a time: a string's text
// is mostly plain, and this is where the encoder spent its time. A byte
// of w is
//   - not ASCII if its top bit is set;
//   - below 0x20 if subtracting 0x20 borrows into its top bit while its
//     own top bit was clear: (w - 0x20…) &^ w & 0x80…;
//   - equal to c if w ^ c… has a zero byte there, found the same way.
//
// Each test is exact for the word as a whole (a borrow only runs on past
// a byte that already matched), which is all skipPlain needs: it stops at
// the word and the byte loop finds the byte.
func skipPlain(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if (w|(w-0x20*lsb)&^w|zeroByte(w^'"'*lsb)|zeroByte(w^'\\'*lsb)|zeroByte(w^'<'*lsb)|zeroByte(w^'>'*lsb)|zeroByte(w^'&'*lsb))&msb != 0 {
			break
		}
	}
	for i < len(s) && plainByte[s[i]] {
		i++
	}
	return i
}

// zeroByte has the top bit set in (at least) the first zero byte of v,
// and in none if v has none.
func zeroByte(v uint64) uint64 { return (v - lsb) &^ v }

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it: the short escapes \b \f \n \r \t \" \\, \u00xx for the other
// control characters, \u003c \u003e \u0026 for < > & and \u2028 \u2029
// for the line and paragraph separators. Invalid UTF-8 becomes U+FFFD,
// written as the character.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = skipPlain(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf { // one to escape
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
