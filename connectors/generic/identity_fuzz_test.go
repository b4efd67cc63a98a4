package generic

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/deskrelay/deskrelay/ticket"
)

// FuzzIdentityAgreesWithEncodingJSON checks that the identity mapping,
// decoded by the encoding/json/v2 engine with v1 semantics, accepts and
// refuses exactly the bodies that encoding/json's strict decoder (unknown
// fields refused, one value only) does, and decodes the same ticket.
func FuzzIdentityAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		string(benchIdentityBody),
		`{"id":"1","title":"x"}`,
		`{"ID":"1","Title":"x","caller":{"EMAIL":"a@b"}}`,
		`{"id":"1","title":"x","colour":"red"}`,
		`{"id":"1","title":"x","id":"2"}`,
		`{"id":"1","title":"x\xff"}`,
		`{"id":"1","title":"x","impact":"2"}`,
		`{"id":"1","title":"x","raw":{"a":1}}`,
		`{"id":"1","title":"x","opened_at":"2024-05-13T10:15:42Z"}`,
		`{"id":"1","title":"x"} {}`, `{"id":"1","title":"x"}   `,
		`[1]`, `"x"`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := identity(body)
		var want ticket.Ticket
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		wantErr := dec.Decode(&want)
		if wantErr == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
			wantErr = errTrailing
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("identity(%q) error = %v; encoding/json: %v", body, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("identity(%q) =\n%#v\nencoding/json:\n%#v", body, got, want)
		}
	})
}

var errTrailing = &json.SyntaxError{}
