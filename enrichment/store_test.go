package enrichment

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/ticket"
)

func TestProfileStore(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	for _, p := range []ticket.Profile{
		{Name: ticket.Doer, Source: SourceDirectory, Confidence: 1},
		{Name: ticket.Trier, Source: SourceSurvey, Confidence: 0.75, Competence: ptr(0.2), Attitude: ptr(0.9), At: at},
		{Name: ticket.Supported, Source: "itsm", Confidence: 0.5, Reason: "why", FamiliarGroup: "Desk", FamiliarAgent: "Ann", At: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{Name: ticket.Unknown, Source: SourceNone},
	} {
		s := newProfileStore()
		s.put("k", p)
		got, ok := s.get("k")
		want := p
		if !want.At.IsZero() {
			want.At = want.At.UTC()
		}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("put then get =\n%+v\nwant\n%+v", got, want)
		}
	}
	t.Run("a change keeps the scores handed out before", func(t *testing.T) {
		s := newProfileStore()
		s.put("k", ticket.Profile{Name: ticket.Trier, Competence: ptr(0.1), Attitude: ptr(0.2)})
		before, _ := s.get("k")
		s.put("k", ticket.Profile{Name: ticket.Doer, Competence: ptr(0.8), Attitude: ptr(0.9)})
		after, _ := s.get("k")
		if *before.Competence != 0.1 || *before.Attitude != 0.2 {
			t.Errorf("earlier profile's scores changed to %v, %v", *before.Competence, *before.Attitude)
		}
		if *after.Competence != 0.8 || *after.Attitude != 0.9 {
			t.Errorf("new scores = %v, %v, want 0.8, 0.9", *after.Competence, *after.Attitude)
		}
	})
	t.Run("dead scores are compacted away and live ones kept", func(t *testing.T) {
		s := newProfileStore()
		for round := range 5 {
			for i := range 1000 {
				v := float64(round*1000 + i)
				s.put(fmt.Sprint("k", i), ticket.Profile{Name: ticket.Doer, Competence: &v, Attitude: &v})
			}
		}
		s.delete("k0")
		if n := len(s.scores); n > 4*1000+2*1024 {
			t.Errorf("scores holds %d values for 999 live profiles, want compaction", n)
		}
		for i := 1; i < 1000; i++ {
			p, ok := s.get(fmt.Sprint("k", i))
			if want := float64(4000 + i); !ok || *p.Competence != want || *p.Attitude != want {
				t.Fatalf("k%d = %v, %v; want scores %v", i, p, ok, want)
			}
		}
		if _, ok := s.get("k0"); ok || s.len() != 999 {
			t.Errorf("after delete: k0 found %v, len %d; want gone, 999", ok, s.len())
		}
		if len(s.strs) != 2 { // "" and "doer", however many profiles
			t.Errorf("interned strings = %q, want only \"\" and doer", s.strs)
		}
	})
}
