package ticket

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "write the contract golden of a new schema version (never overwrites one)")

func TestValidate(t *testing.T) {
	ok := Ticket{ID: "INC1", Source: "snow", Title: "Laptop"}
	for _, tt := range []struct {
		name   string
		modify func(*Ticket)
		want   string // "" = valid
	}{
		{"a minimal ticket is valid", func(*Ticket) {}, ""},
		{"every required field missing is reported", func(t *Ticket) { *t = Ticket{} }, "invalid ticket: id: is required; source: is required; title: is required"},
		{"an id with surrounding spaces", func(t *Ticket) { t.ID = " INC1" }, `id: " INC1" has leading or trailing spaces`},
		{"an id with a line break", func(t *Ticket) { t.ID = "INC\r\n1" }, "id: \"INC\\r\\n1\" holds control characters"},
		{"an id with invalid UTF-8", func(t *Ticket) { t.ID = "INC\xff" }, "holds control characters or invalid UTF-8"},
		{"an unknown channel", func(t *Ticket) { t.Channel = "fax" }, `channel: "fax" is not a channel`},
		{"impact out of range", func(t *Ticket) { t.Impact = 4 }, "impact: 4 is out of range; use 1 (high) to 3 (low)"},
		{"priority out of range", func(t *Ticket) { t.Priority = 6 }, "priority: 6 is out of range"},
		{"a time that cannot be encoded", func(t *Ticket) { t.UpdatedAt = time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC) }, "updated_at: -0005-01-01T00:00:00Z is not a plausible time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk := ok
			tt.modify(&tk)
			err := tk.Validate()
			var ve *ValidationError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			case tt.want != "" && !errors.As(err, &ve):
				t.Errorf("Validate error %T is not a *ValidationError", err)
			}
		})
	}
}

func TestMsgID(t *testing.T) {
	at := time.Date(2024, 5, 13, 10, 15, 42, 0, time.FixedZone("CEST", 2*3600))
	base := Ticket{ID: "INC1", Source: "snow", Title: "Laptop", UpdatedAt: at, Raw: json.RawMessage(`{"envelope":1}`)}
	other := base
	other.Raw = json.RawMessage(`{"envelope":2}`)
	versioned := base
	versioned.Version = "4"
	noTime := base
	noTime.UpdatedAt = time.Time{}
	noTimeOtherEnvelope := noTime
	noTimeOtherEnvelope.Raw = json.RawMessage(`{"envelope":3}`)
	noTimeOtherTitle := noTime
	noTimeOtherTitle.Title = "Laptop (again)"
	for _, tt := range []struct {
		name string
		a, b Ticket
		same bool
	}{
		{"the update time is part of the key, in UTC", base, base, true},
		{"a different raw envelope of the same version is the same version", base, other, true},
		{"a revision counter tells versions of one second apart", base, versioned, false},
		{"without an update time the normalised fields decide, not the envelope", noTime, noTimeOtherEnvelope, true},
		{"without an update time a changed field is a new version", noTime, noTimeOtherTitle, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a.MsgID(), tt.b.MsgID()
			if (a == b) != tt.same {
				t.Errorf("MsgID = %q and %q; same = %v, want %v", a, b, a == b, tt.same)
			}
		})
	}
	if got, want := base.MsgID(), "snow:INC1:2024-05-13T08:15:42Z"; got != want {
		t.Errorf("MsgID = %q, want %q", got, want)
	}
}

// TestRoutedContract pins the routed message's JSON. It may change only
// together with RoutedSchema: -update writes the golden of a schema version
// that has none yet, and never rewrites an existing one.
func TestRoutedContract(t *testing.T) {
	c, a := 0.9, 0.8
	msg := Routed{
		Schema: RoutedSchema,
		Ticket: Ticket{
			ID: "59a60bfcb9e24a4ba04482e650fb4efd", Source: "snow", Number: "INC0010236", Title: "Printer shows paper jam",
			Description: "Tray 2 is empty.", Caller: Caller{ID: "ed3b7c29", Email: "trina.trier@example.com", Name: "Trina Trier"},
			Channel: ChannelEmail, Category: "hardware", Subcategory: "printer", Impact: 3, Urgency: 3, Priority: 5,
			State: "1", AssignmentGroup: "Service Desk", ConfigurationItem: "PRN-3F-02",
			OpenedAt: time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC), UpdatedAt: time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC),
			Version: "0", Tags: []string{"printer"}, Raw: json.RawMessage(`{"sys_id":"59a60bfcb9e24a4ba04482e650fb4efd"}`),
		},
		Profile: Profile{Name: Trier, Source: "directory", Confidence: 1, Competence: &c, Attitude: &a},
		Routing: Routing{
			Tier: TierL1, Channel: ChannelEmail, Priority: 5, Rules: []string{"root", "trier"},
			Hints: Hints{
				CommunicationStyle: "calm and plain", Language: "plain", PreferredChannels: []Channel{ChannelEmail, ChannelPortal},
				Do: []string{"give steps in one place"}, Avoid: []string{"jargon"}, StatusUpdateEvery: "4h",
				VirtualAgent: "guided_steps", Extra: map[string]string{"vip": "true"},
			},
		},
		RoutedAt: time.Date(2024, 5, 13, 10, 15, 43, 0, time.UTC),
	}
	got, err := json.MarshalIndent(msg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", strings.ReplaceAll(RoutedSchema, "/", "-")+".golden.json")
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) && *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%v (a new schema version? go test ./ticket -update writes its golden)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the routed message changed without a schema version bump: bump RoutedSchema (and document the change), then go test ./ticket -update\n--- %s\n%s\n--- now\n%s", path, want, got)
	}
}

// TestTextField checks that every mappable field is either a text field
// that TextField reaches, or one of the few that need parsing, and that
// the pointer is the field of that JSON name.
func TestTextField(t *testing.T) {
	parsed := map[string]bool{"channel": true, "impact": true, "urgency": true, "priority": true, "opened_at": true, "updated_at": true, "tags": true}
	for _, name := range MappableFields {
		var tk Ticket
		f := tk.TextField(name)
		if parsed[name] {
			if f != nil {
				t.Errorf("TextField(%q) = a text field, want nil (it needs parsing)", name)
			}
			continue
		}
		if f == nil {
			t.Errorf("TextField(%q) = nil, want its field", name)
			continue
		}
		*f = "x"
		b, err := json.Marshal(&tk)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var got any = m[name]
		if k, sub, ok := strings.Cut(name, "."); ok {
			got = m[k].(map[string]any)[sub]
		}
		if got != "x" {
			t.Errorf("TextField(%q) set a field that encodes as %s", name, b)
		}
	}
	if (&Ticket{}).TextField("source") != nil || (&Ticket{}).TextField("nope") != nil {
		t.Error("TextField of source or an unknown name is not nil")
	}
}
