package connectors

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestWriteAccepted checks the hand-appended 202 body against
// encoding/json, byte strings a ticket can carry included: the msg id
// takes the ticket's version, which need not be valid UTF-8.
func TestWriteAccepted(t *testing.T) {
	for _, tt := range []struct{ name, id, source, msgID string }{
		{"plain", "INC1", "generic", "generic:INC1:2024-05-13T10:15:42Z"},
		{"quotes and backslashes", `INC"1\2`, "generic", `generic:INC"1\2:x`},
		{"html and line separators", "INC<1>&", "snow", "snow:INC\u2028:\u2029"},
		{"control characters", "INC\t1", "generic", "generic:INC\x01:\x1f"},
		{"non-ASCII", "INCé✓", "generic", "generic:INCé✓:v"},
		{"invalid UTF-8", "INC1", "generic", "generic:INC1:2024-05-13T10:15:42Z:\xff\xfe"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeAccepted(rec, tt.id, tt.source, tt.msgID)
			body := rec.Body.Bytes()
			var got Accepted
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("answer %q is not JSON: %v", body, err)
			}
			want := Accepted{Status: "accepted", ID: tt.id, Source: tt.source, MsgID: tt.msgID}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil { // invalid UTF-8 → U+FFFD, as the answer has it
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("answer %q decodes to %+v, want %+v", body, got, want)
			}
			h := rec.Header()
			if rec.Code != 202 || h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" || body[len(body)-1] != '\n' {
				t.Errorf("answer %d %v %q, want 202, application/json, nosniff and a final newline", rec.Code, h, body)
			}
		})
	}
}
