package ticket

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// reference is what AppendJSON must produce: the v2 engine with
// encoding/json's options, through reflection.
func reference(v any) ([]byte, error) { return jsonv2.Marshal(v, jsonv1.DefaultOptionsV1()) }

func checkAppendJSON(t *testing.T, r *Routed) {
	t.Helper()
	want, werr := reference(r)
	got, gerr := r.AppendJSON(nil)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("reference error %v, AppendJSON error %v", werr, gerr)
	}
	if werr == nil && string(got) != string(want) {
		t.Fatalf("AppendJSON =\n%s\nreference =\n%s", got, want)
	}
	want, werr = reference(&r.Ticket)
	got, gerr = r.Ticket.AppendJSON([]byte("prefix"))
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("ticket: reference error %v, AppendJSON error %v", werr, gerr)
	}
	if werr == nil && string(got) != "prefix"+string(want) {
		t.Fatalf("Ticket.AppendJSON =\n%s\nreference =\nprefix%s", got, want)
	}
}

// fill sets every field reachable from v to a value that is not its zero
// value (strings that need escaping, pointers to values, one-element
// slices and maps), so that a field AppendJSON leaves out shows.
func fill(t *testing.T, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 7, 1, 2, 3, 4000, time.FixedZone("", 3600))))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.String:
		v.SetString(path + ` <"é"> `)
	case reflect.Int:
		v.SetInt(int64(len(path)))
	case reflect.Float64:
		v.SetFloat(float64(len(path)) / 7)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path)
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte(`{ "path" : "` + path + `", "n": [1, 2.50] }`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), path+"[0]")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, path+".key")
		fill(t, e, path+".value")
		v.SetMapIndex(k, e)
	default:
		t.Fatalf("%s: fill does not know %s; teach it, and AppendJSON the new field", path, v.Type())
	}
}

// TestAppendJSONCoversEveryField fails when a field of the routed message
// is missing from AppendJSON (or written differently): every field is set.
func TestAppendJSONCoversEveryField(t *testing.T) {
	var r Routed
	fill(t, reflect.ValueOf(&r).Elem(), "r")
	checkAppendJSON(t, &r)
}

func TestAppendJSON(t *testing.T) {
	half := 0.5
	at := time.Date(2026, 11, 25, 9, 0, 0, 120_000_000, time.UTC)
	full := Routed{
		Schema: RoutedSchema,
		Ticket: Ticket{ID: "INC1", Source: "snow", Title: "VPN", Caller: Caller{Email: "a@example.com"},
			Impact: 2, UpdatedAt: at, Tags: []string{"vip"}, Raw: json.RawMessage(`{"sys_id" : "1", "x": "<&>"}`)},
		Profile: Profile{Name: Doer, Source: "directory", Confidence: 1, Competence: &half, At: at},
		Routing: Routing{Tier: TierL2, Channel: ChannelPortal, Priority: 3, Rules: []string{"root", "doer"},
			Hints: Hints{PreferredChannels: []Channel{ChannelPortal, ChannelEmail}, Extra: map[string]string{"b": "2", "a": "1", "<": ">"}}},
		RoutedAt: at,
	}
	for _, tt := range []struct {
		name string
		edit func(*Routed)
	}{
		{"a full message", func(*Routed) {}},
		{"zero values", func(r *Routed) { *r = Routed{} }},
		{"no rules: null", func(r *Routed) { r.Routing.Rules = nil }},
		{"empty rules: []", func(r *Routed) { r.Routing.Rules = []string{} }},
		{"empty caller and hints", func(r *Routed) { r.Ticket.Caller, r.Routing.Hints = Caller{}, Hints{} }},
		{"only the last caller field", func(r *Routed) { r.Ticket.Caller = Caller{Name: "N"} }},
		{"only extra hints", func(r *Routed) { r.Routing.Hints = Hints{Extra: map[string]string{"k": "v"}} }},
		{"empty raw is left out", func(r *Routed) { r.Ticket.Raw = json.RawMessage{} }},
		{"raw null", func(r *Routed) { r.Ticket.Raw = json.RawMessage("null") }},
		{"invalid raw", func(r *Routed) { r.Ticket.Raw = json.RawMessage(`{"a":`) }},
		{"every control character", func(r *Routed) {
			s := make([]byte, 0, 40)
			for c := range 0x20 {
				s = append(s, byte(c))
			}
			r.Ticket.Title = string(s) + "\x7f\"\\/"
		}},
		{"separators, HTML and invalid UTF-8", func(r *Routed) {
			r.Ticket.Title, r.Ticket.Version = "a\u2028b\u2029c<d>e&f", "caf\xe9\xff\xfe"
		}},
		{"floats", func(r *Routed) {
			c, a := 3.4e-7, 1e21
			r.Profile.Confidence, r.Profile.Competence, r.Profile.Attitude = 0.000001, &c, &a
		}},
		{"negative zero and a tiny float", func(r *Routed) { c := 5e-324; r.Profile.Confidence, r.Profile.Competence = math.Copysign(0, -1), &c }},
		{"NaN", func(r *Routed) { r.Profile.Confidence = math.NaN() }},
		{"infinity", func(r *Routed) { r.Profile.Attitude = new(float64); *r.Profile.Attitude = math.Inf(-1) }},
		{"a year beyond 9999", func(r *Routed) { r.RoutedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"an offset", func(r *Routed) { r.Ticket.OpenedAt = at.In(time.FixedZone("", -(9*3600 + 30*60))) }},
		{"negative numbers", func(r *Routed) { r.Ticket.Impact, r.Routing.Priority = -1, math.MinInt64 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := full
			r.Routing.Rules = append([]string(nil), full.Routing.Rules...)
			tt.edit(&r)
			checkAppendJSON(t, &r)
		})
	}
}

// TestAppendJSONRawDepth checks the raw payload's nesting limit at its
// depth inside the message: JSON decoders accept 10,000 levels in all, so
// a payload may nest 9,999 deep in a ticket and 9,998 in a routed
// message. Brackets inside strings do not count.
func TestAppendJSONRawDepth(t *testing.T) {
	for _, n := range []int{9997, 9998, 9999, 10000} {
		for _, inner := range []string{"", `"[{\"[{"`} {
			raw := json.RawMessage(strings.Repeat("[", n) + inner + strings.Repeat("]", n))
			t.Run(fmt.Sprintf("%d levels, inner %q", n, inner), func(t *testing.T) {
				checkAppendJSON(t, &Routed{Ticket: Ticket{ID: "INC1", Raw: raw}})
				if _, err := (&Routed{Ticket: Ticket{Raw: raw}}).AppendJSON(nil); (err != nil) != (n > 9998) {
					t.Errorf("routed message: error %v, want one only past 9,998 levels", err)
				}
				if _, err := (&Ticket{Raw: raw}).AppendJSON(nil); (err != nil) != (n > 9999) {
					t.Errorf("ticket: error %v, want one only past 9,999 levels", err)
				}
			})
		}
	}
}

// TestAppendStringEveryByte compares appendString with the reference for
// every string of everyByte (appendString scans a word at a time).
func TestAppendStringEveryByte(t *testing.T) {
	everyByte(func(str string, _ byte, _ bool) {
		want, err := reference(str)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, str); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", str, got, want)
		}
	})
}

// everyByte calls f with strings of 1 to 17 bytes, across one and two
// eight-byte words, each 'a' but for one byte c at each position in
// turn, every value of it, alone and as the lead of a two-byte UTF-8
// sequence (then lead is true and c is followed by 0xa9, which makes
// 0xc2…0xdf a valid character).
func everyByte(f func(s string, c byte, lead bool)) {
	for n := 1; n < 18; n++ {
		for pos := range n {
			for c := range 256 {
				for _, lead := range []bool{false, true} {
					s := []byte(strings.Repeat("a", n))
					s[pos] = byte(c)
					if lead {
						s = slices.Insert(s, pos+1, 0xa9)
					}
					f(string(s), byte(c), lead)
				}
			}
		}
	}
}

// FuzzAppendJSON compares AppendJSON with the reference on messages built
// from arbitrary strings, raw payloads, numbers and times.
//
//	go test -run='^$' -fuzz=FuzzAppendJSON ./ticket
func FuzzAppendJSON(f *testing.F) {
	f.Add("<b>VPN</b> & mail down", "a@example.com", `{ "a" : [1, 2] }`, "vip", "true", 0.75, int64(400), 3)
	f.Add("caf\xe9 \u2028 line", "", `{"sys_id":"1","d":"<x> & \u00e9","n":1.50e3}`, "", "", 1.0, int64(-1), 0)
	f.Add("", "x", `[]`, "k", "\x00", -0.0, int64(0), -7)
	f.Add("t", "e", `{`, "a", "b", 1e21, int64(1), 1<<40)
	f.Add("t", "e", `"\ud800"`, "z", "y", 3.4e-7, int64(999999999), 5)
	f.Fuzz(func(t *testing.T, title, email, raw, key, val string, conf float64, nanos int64, n int) {
		tk := Ticket{
			ID: key, Source: val, Title: title, Description: title + "\n" + email, Number: val, State: key,
			Caller:    Caller{Email: email, Name: val, ID: key},
			Impact:    n,
			UpdatedAt: time.Unix(1764000000, nanos%1e9).In(time.FixedZone("", int(nanos%50_000))),
			Version:   key + val,
			Tags:      []string{key, val},
		}
		if raw != "" {
			tk.Raw = json.RawMessage(raw)
		}
		r := &Routed{
			Schema: RoutedSchema, Ticket: tk,
			Profile: Profile{Name: ProfileName(key), Source: val, Confidence: conf, Competence: &conf, Reason: title},
			Routing: Routing{Tier: Tier(key), Channel: Channel(val), Priority: n, Rules: []string{key, val},
				Hints: Hints{Do: []string{title}, Extra: map[string]string{key: val, val: key, "b": title}}},
			RoutedAt: time.Unix(0, nanos),
		}
		checkAppendJSON(t, r)
	})
}

// TestAppendJSONDoesNotAllocate: the encoder appends into the caller's
// buffer and allocates nothing of its own, which internal/bus relies on
// for every routed message.
func TestAppendJSONDoesNotAllocate(t *testing.T) {
	r := sampleRouted()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = r.AppendJSON(buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendJSON allocated %.0f times per message, want 0", n)
	}
}

// sampleRouted is a routed message of about 2 KB: a 1.3 KB ticket without a
// raw payload, a profile, and hints with every kind of member.
func sampleRouted() *Routed {
	half := 0.5
	at := time.Date(2026, 11, 25, 9, 0, 0, 120_000_000, time.UTC)
	return &Routed{
		Schema: RoutedSchema,
		Ticket: Ticket{ID: "BENCH1-123456", Source: "generic", Number: "INC0123456", Title: "Outlook keeps asking for my password",
			Description: fmt.Sprintf("%0900d", 0), Caller: Caller{ID: "u1234", Email: "caller1234@bench.example.com", Name: "Caller 1234"},
			Channel: ChannelEmail, Category: "software", Subcategory: "email", Impact: 2, Urgency: 2, Priority: 3,
			AssignmentGroup: "Service Desk", ConfigurationItem: "Outlook", OpenedAt: at, UpdatedAt: at, Tags: []string{"vip"}},
		Profile: Profile{Name: Doer, Source: "directory", Confidence: 1, Competence: &half, Attitude: &half, At: at},
		Routing: Routing{Tier: TierL2, Channel: ChannelPortal, Priority: 2, Rules: []string{"root", "vip", "doer"},
			Hints: Hints{CommunicationStyle: "technical", Language: "it", PreferredChannels: []Channel{ChannelPortal},
				Do: []string{"skip scripted first-level steps", "link the knowledge article"}, Avoid: []string{"asking for a restart"},
				StatusUpdateEvery: "1d", VirtualAgent: "knowledge_links", Extra: map[string]string{"vip": "true"}}},
		RoutedAt: at,
	}
}

// BenchmarkAppendJSON encodes a routed message of about 2 KB (a 1.3 KB
// ticket without a raw payload, a profile and hints), by AppendJSON and,
// for comparison in the same run, by the reference.
//
//	go test -run='^$' -bench=AppendJSON -benchmem ./ticket
func BenchmarkAppendJSON(b *testing.B) {
	r := sampleRouted()
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			var err error
			if buf, err = r.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reference(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
