package enrichment

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestStatic(t *testing.T) {
	q := defaultQuadrant(t)
	entries, err := ParseFile("good.csv", fixture.Read(t, "testdata", "good.csv"), q)
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, Entry{UserID: "bad", Profile: "wizard"}, Entry{UserID: "far", Competence: ptr(20), Attitude: ptr(1)})
	s := NewStatic(entries, q)
	if s.Name() != SourceFile {
		t.Errorf("Name() = %q, want %q", s.Name(), SourceFile)
	}
	for _, tt := range []struct {
		name   string
		caller ticket.Caller
		want   string
	}{
		{"a caller is found by id", ticket.Caller{ID: "u-001"}, "doer"},
		{"a caller is found by email whatever its case", ticket.Caller{Email: "PRIO@example.com"}, "prioritizer"},
		{"the id wins over the email", ticket.Caller{ID: "u-003", Email: "doer@example.com"}, "trier c=0.2 a=0.8"},
		{"an entry without a valid profile is left out", ticket.Caller{ID: "bad"}, "miss"},
		{"an entry with scores off the scale is left out", ticket.Caller{ID: "far"}, "miss"},
		{"an empty caller is a miss", ticket.Caller{}, "miss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ok, err := s.Lookup(context.Background(), tt.caller)
			got := "miss"
			switch {
			case err != nil:
				got = "error: " + err.Error()
			case ok && p.Source != SourceFile:
				got = "source " + p.Source
			case ok && p.Competence != nil:
				got = fmt.Sprintf("%s c=%g a=%g", p.Name, *p.Competence, *p.Attitude)
			case ok:
				got = string(p.Name)
			}
			if got != tt.want {
				t.Errorf("Lookup(%+v) = %s, want %s", tt.caller, got, tt.want)
			}
		})
	}
}

// BenchmarkStaticGC measures a full garbage collection with 50,000
// callers (100,000 keys) in a Static source's maps of ticket.Profile
// values, the layout the Directory had before its profileStore: what such
// maps cost a collection, without a KV bucket.
func BenchmarkStaticGC(b *testing.B) {
	for _, people := range []int{0, 50000} {
		b.Run(fmt.Sprintf("callers=%d", people), func(b *testing.B) {
			entries := make([]Entry, people)
			for i := range entries {
				entries[i] = Entry{Email: fmt.Sprintf("caller%d@example.com", i), UserID: fmt.Sprintf("u%d", i), Profile: ticket.Doer}
				if i%10 == 9 {
					entries[i] = Entry{Email: entries[i].Email, UserID: entries[i].UserID, Competence: ptr(float64(i % 11)), Attitude: ptr(float64(i % 7))}
				}
			}
			s := NewStatic(entries, defaultQuadrant(b))
			entries = nil
			runtime.GC()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(s)
		})
	}
}
