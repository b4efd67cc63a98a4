package ticket

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// FuzzDecodeAgreesWithEncodingJSON checks that Decode, which uses the
// faster encoding/json/v2 engine with v1 semantics, accepts and refuses
// exactly what encoding/json (v1) with Validate does, and decodes the same
// ticket: the ingest stream may hold tickets published by others.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	golden, err := os.ReadFile("testdata/deskrelay.routed-v1.golden.json")
	if err != nil {
		f.Fatal(err)
	}
	var r struct{ Ticket json.RawMessage }
	if err := json.Unmarshal(golden, &r); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(r.Ticket),
		`{"id":"1","source":"s","title":"t"}`,
		`{"ID":"1","Source":"s","TITLE":"t","caller":{"Email":"a@b"}}`,
		`{"id":"1","source":"s","title":"t","id":"2"}`,
		`{"id":"1","source":"s","title":"t\xff\xfe"}`,
		`{"id":"1","source":"s","title":"t","impact":2.0}`,
		`{"id":"1","source":"s","title":"t","impact":1e0}`,
		`{"id":"1","source":"s","title":"t","impact":null,"tags":null,"caller":null}`,
		`{"id":"1","source":"s","title":"t","opened_at":"2024-05-13T10:15:42+02:00"}`,
		`{"id":"1","source":"s","title":"t","raw":{"a":[1,{"b":null}]}}`,
		`{"id":"1","source":"s","title":"t","tags":["a","\u00e9\ud83d\ude00"]}`,
		`{"id":"1","source":"s","title":"t"} `,
		`{"id":"1","source":"s","title":"t"}{}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := Decode(data)
		var want Ticket
		wantErr := json.Unmarshal(data, &want)
		if wantErr == nil {
			wantErr = want.Validate()
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("Decode(%q) error = %v; encoding/json + Validate: %v", data, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		// Raw is kept as given by both; compare it compacted.
		gr, wr := compact(t, got.Raw), compact(t, want.Raw)
		got.Raw, want.Raw = nil, nil
		if !reflect.DeepEqual(got, want) || !bytes.Equal(gr, wr) {
			t.Fatalf("Decode(%q) =\n%#v\nencoding/json:\n%#v", data, got, want)
		}
	})
}

func compact(t *testing.T, b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("raw %q: %v", b, err)
	}
	return buf.Bytes()
}
