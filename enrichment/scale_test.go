package enrichment

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// TestScaleClassify is the survey mapping table: answers on the built-in
// scales and on a configured stricter Likert scale.
func TestScaleClassify(t *testing.T) {
	scales, err := NewScales(map[string]config.ScoreScale{
		"likert-agree": {Min: 1, Max: 5, CompetenceThreshold: 4, AttitudeThreshold: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		scale      string
		c, a       float64
		want       ticket.ProfileName
		wantC, wan float64
	}{
		{"0-10: high competence, fixes it myself is a doer", "0-10", 9, 8, ticket.Doer, 0.9, 0.8},
		{"0-10: high competence, someone else should is a prioritizer", "0-10", 8, 2, ticket.Prioritizer, 0.8, 0.2},
		{"0-10: low competence, fixes it myself is a trier", "0-10", 2, 7, ticket.Trier, 0.2, 0.7},
		{"0-10: low competence, someone else should is supported", "0-10", 1, 1, ticket.Supported, 0.1, 0.1},
		{"0-10: the threshold itself is high", "0-10", 5, 5, ticket.Doer, 0.5, 0.5},
		{"0-10: just below the threshold is low", "0-10", 4.9, 4.9, ticket.Supported, 0.49, 0.49},
		{"0-10: the ends of the scale are valid", "0-10", 0, 10, ticket.Trier, 0, 1},
		{"1-5: agree on both is a doer", "1-5", 5, 4, ticket.Doer, 1, 0.75},
		{"1-5: neutral counts as high", "1-5", 3, 3, ticket.Doer, 0.5, 0.5},
		{"1-5: disagree on both is supported", "1-5", 1, 2, ticket.Supported, 0, 0.25},
		{"1-5: competent, wants it done for them", "1-5", 4, 1, ticket.Prioritizer, 0.75, 0},
		{"configured 1-5: neutral is low", "likert-agree", 3, 3, ticket.Supported, 0.5, 0.5},
		{"configured 1-5: agree is high", "likert-agree", 4, 5, ticket.Doer, 0.75, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scales.Lookup(tt.scale)
			if err != nil {
				t.Fatal(err)
			}
			got, c, a, err := sc.Classify(tt.c, tt.a)
			if err != nil {
				t.Fatalf("Classify(%v, %v) = %v", tt.c, tt.a, err)
			}
			if got != tt.want || math.Abs(c-tt.wantC) > 1e-9 || math.Abs(a-tt.wan) > 1e-9 {
				t.Errorf("Classify(%v, %v) = %s (%v, %v), want %s (%v, %v)", tt.c, tt.a, got, c, a, tt.want, tt.wantC, tt.wan)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		scale string
		c, a  float64
		want  string
	}{
		{"0-10: above the top", "0-10", 11, 5, "competence 11 is not within 0…10"},
		{"0-10: negative", "0-10", 5, -1, "attitude -1 is not within 0…10"},
		{"1-5: zero is below a Likert scale", "1-5", 0, 3, "competence 0 is not within 1…5"},
		{"not a number", "1-5", math.NaN(), 3, "competence NaN"},
	} {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			sc, _ := scales.Lookup(tt.scale)
			if _, _, _, err := sc.Classify(tt.c, tt.a); !errors.Is(err, ErrScore) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Classify(%v, %v) = %v, want ErrScore saying %q", tt.c, tt.a, err, tt.want)
			}
		})
	}
}

func TestNewScalesErrors(t *testing.T) {
	_, err := NewScales(map[string]config.ScoreScale{
		"flat":  {Min: 3, Max: 3},
		"wrong": {Min: 1, Max: 5, CompetenceThreshold: 6},
	})
	got := err.Error()
	for _, want := range []string{
		"profiles.score_scales.flat.max: 3 must be above min 3",
		"profiles.score_scales.wrong.competence_threshold: 6 is outside the scale; use a value above 1 and at most 5",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("NewScales error = %q, want it to contain %q", got, want)
		}
	}
	scales, _ := NewScales(nil)
	if _, err := scales.Lookup("0-100"); err == nil || !strings.Contains(err.Error(), `unknown scale "0-100"; use one of 0-10, 1-5`) {
		t.Errorf("Lookup(0-100) = %v, want the known names", err)
	}
}
