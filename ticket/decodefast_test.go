package ticket

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

const fastTicket = `{"id":"INC0012345","source":"generic","number":"INC0012345","title":"Outlook keeps asking for my password",` +
	`"description":"Since this morning\nit \"comes back\" \u00e9 \ud83d\ude00 \/","caller":{"id":"u1234","email":"caller1234@bench.example.com","name":"Caller 1234"},` +
	`"channel":"email","category":"software","subcategory":"email","impact":2,"urgency":-3,"priority":0,"state":"new",` +
	`"assignment_group":"Service Desk","assigned_to":"Ann","configuration_item":"Outlook",` +
	`"opened_at":"2026-11-25T09:00:00Z","updated_at":"2026-11-25T09:00:01.123+01:00","version":"7","tags":["vip","é"]}`

// checkDecodeFast decodes data both ways: when decodeFast takes it, the
// reference decoders (encoding/json's semantics, and the generic
// identity's, which also refuses unknown members) must give the same
// ticket without error.
func checkDecodeFast(t *testing.T, data []byte) bool {
	t.Helper()
	var fast Ticket
	if !decodeFast(data, &fast) {
		return false
	}
	var ref, strict Ticket
	if err := jsonv1.Unmarshal(data, &ref); err != nil {
		t.Fatalf("decodeFast took %q, the reference refuses it: %v", data, err)
	}
	if err := jsonv2.Unmarshal(data, &strict, jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true)); err != nil {
		t.Fatalf("decodeFast took %q, the strict reference refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(fast, ref) || !reflect.DeepEqual(fast, strict) {
		t.Fatalf("decodeFast(%q) =\n%#v\nreference =\n%#v", data, fast, ref)
	}
	return true
}

func TestDecodeFast(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		fast bool // false: left to the full decoder
	}{
		{"every field, escapes, offsets", fastTicket, true},
		{"white space everywhere", " {\n\t\"id\" : \"A\" ,\r\n \"tags\" : [ \"x\" , \"y\" ] , \"caller\" : { } }\n", true},
		{"nulls", `{"id":"A","title":null,"caller":null,"tags":null,"impact":null,"opened_at":null}`, true},
		{"an empty tag list is not nil", `{"id":"A","tags":[]}`, true},
		{"an empty object", `{}`, true},
		{"another case", `{"ID":"A"}`, false},
		{"an unknown member", `{"id":"A","nope":1}`, false},
		{"an unknown caller member", `{"id":"A","caller":{"phone":"1"}}`, false},
		{"raw", `{"id":"A","raw": { "a" : [1, "x\u00e9"] } ,"title":"t"}`, true},
		{"raw null", `{"id":"A","raw":null}`, true},
		{"raw, duplicate names inside", `{"raw":{"a":1,"a":2}}`, true},
		{"raw, invalid", `{"raw":{"a":}}`, false},
		{"raw, invalid UTF-8 inside", "{\"raw\":\"caf\xe9\"}", true},
		{"a repeated member", `{"id":"A","id":"B"}`, false},
		{"a repeated caller member", `{"caller":{"id":"A","id":"B"}}`, false},
		{"caller id and ticket id are different members", `{"id":"A","caller":{"id":"B"}}`, true},
		{"a fraction", `{"impact":2.0}`, false},
		{"an exponent", `{"impact":2e0}`, false},
		{"a leading zero", `{"impact":02}`, false},
		{"an int too large", `{"impact":99999999999999999999}`, false},
		{"a string for a number", `{"impact":"2"}`, false},
		{"a number for a string", `{"id":2}`, false},
		{"a bad time", `{"updated_at":"yesterday"}`, false},
		{"an escaped time", `{"updated_at":"2026-11-25T09:00:00\u005a"}`, false},
		{"invalid UTF-8", "{\"title\":\"caf\xe9\"}", false},
		{"a lone surrogate escape", `{"title":"\ud800"}`, false},
		{"a control character", "{\"title\":\"a\tb\"}", false},
		{"null in tags", `{"tags":["a",null]}`, false},
		{"trailing data", `{"id":"A"} {}`, false},
		{"trailing comma", `{"id":"A",}`, false},
		{"not an object", `["id"]`, false},
		{"cut short", `{"id":"A"`, false},
		{"an escaped name", `{"i\u0064":"A"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkDecodeFast(t, []byte(tt.data)); got != tt.fast {
				t.Errorf("decodeFast took it: %v, want %v", got, tt.fast)
			}
		})
	}
}

// TestDecodeFastEveryByte decodes a ticket whose title is each string of
// everyByte (quoted skips a word at a time): what decodeFast takes must
// decode as the references decode it, and it must take every byte but
// the quote, the backslash, the control characters and the bytes that
// are not UTF-8.
func TestDecodeFastEveryByte(t *testing.T) {
	everyByte(func(title string, c byte, lead bool) {
		data := `{"id":"A","title":"` + title + `"}`
		took := checkDecodeFast(t, []byte(data))
		valid := c >= 0x20 && c != '"' && c != '\\' && utf8.ValidString(title)
		if !took && valid {
			t.Fatalf("decodeFast left %q to the full decoder", data)
		}
	})
}

// FuzzDecodeFast checks decodeFast against the reference decoders on
// arbitrary inputs and on tickets built from arbitrary strings.
//
//	go test -run='^$' -fuzz=FuzzDecodeFast ./ticket
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(fastTicket), "x", 1)
	f.Add([]byte(`{"id":"A","caller":{"id":"B"},"tags":[]}`), "\u2028", -1)
	f.Add([]byte(`{"impact":-0}`), `"\`, 0)
	f.Add([]byte(`{"updated_at":"2026-11-25T09:00:00.000000001-23:59"}`), "é", 99)
	f.Fuzz(func(t *testing.T, data []byte, s string, n int) {
		checkDecodeFast(t, data)
		var tk Ticket
		fill(t, reflect.ValueOf(&tk).Elem(), s)
		tk.Impact = n
		tk.Raw, _ = json.Marshal(map[string]any{"s": s, "n": n, "l": []string{s}})
		b, err := tk.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !checkDecodeFast(t, b) {
			t.Fatalf("decodeFast did not take the contract's own encoding %s", b)
		}
	})
}
