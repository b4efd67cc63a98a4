package enrichment

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestNewQuadrant(t *testing.T) {
	for _, tt := range []struct {
		name      string
		cfg       config.Profiles
		want      Quadrant
		wantPaths []string
	}{
		{"an empty config gives scale 10 split in the middle", config.Profiles{},
			Quadrant{10, 5, 5}, nil},
		{"thresholds default to half of a configured scale", config.Profiles{Scale: 5},
			Quadrant{5, 2.5, 2.5}, nil},
		{"thresholds may sit on the top of the scale", config.Profiles{Scale: 100, CompetenceThreshold: 100, AttitudeThreshold: 1},
			Quadrant{100, 100, 1}, nil},
		{"a negative scale is refused", config.Profiles{Scale: -1},
			Quadrant{}, []string{"profiles.scale"}},
		{"a scale that is not a number is refused", config.Profiles{Scale: math.NaN()},
			Quadrant{}, []string{"profiles.scale"}},
		{"an infinite scale is refused", config.Profiles{Scale: math.Inf(1)},
			Quadrant{}, []string{"profiles.scale"}},
		{"thresholds beyond the scale or below zero are both reported", config.Profiles{Scale: 10, CompetenceThreshold: 11, AttitudeThreshold: -2},
			Quadrant{}, []string{"profiles.competence_threshold", "profiles.attitude_threshold"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, err := NewQuadrant(tt.cfg)
			var paths []string
			for _, e := range config.AsErrors(err) {
				paths = append(paths, e.Path)
			}
			if !slices.Equal(paths, tt.wantPaths) {
				t.Fatalf("NewQuadrant(%+v) error paths = %q, want %q (%v)", tt.cfg, paths, tt.wantPaths, err)
			}
			if err != nil {
				if _, ok := errors.AsType[config.Errors](err); !ok {
					t.Errorf("NewQuadrant(%+v) error is %T, want config.Errors", tt.cfg, err)
				}
			}
			if q != tt.want {
				t.Errorf("NewQuadrant(%+v) = %+v, want %+v", tt.cfg, q, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	q := defaultQuadrant(t)
	for _, tt := range []struct {
		name                 string
		competence, attitude float64
		want                 ticket.ProfileName
	}{
		{"high competence and fixing it myself is a doer", 8, 9, ticket.Doer},
		{"high competence and someone else should is a prioritizer", 8, 2, ticket.Prioritizer},
		{"low competence and fixing it myself is a trier", 2, 9, ticket.Trier},
		{"low competence and someone else should is supported", 2, 2, ticket.Supported},
		{"scores on both thresholds count as high: doer", 5, 5, ticket.Doer},
		{"competence just under its threshold is low: trier", 4.999, 5, ticket.Trier},
		{"attitude just under its threshold is someone else: prioritizer", 5, 4.999, ticket.Prioritizer},
		{"the bottom of the scale is supported", 0, 0, ticket.Supported},
		{"the top of the scale is a doer", 10, 10, ticket.Doer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.Classify(tt.competence, tt.attitude)
			if err != nil || got != tt.want {
				t.Errorf("Classify(%v, %v) = %q, %v, want %q", tt.competence, tt.attitude, got, err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name                 string
		competence, attitude float64
	}{
		{"a competence above the scale is refused", 10.5, 5},
		{"a negative attitude is refused", 5, -0.1},
		{"a competence that is not a number is refused", math.NaN(), 5},
		{"an infinite attitude is refused", 5, math.Inf(1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.Classify(tt.competence, tt.attitude)
			if !errors.Is(err, ErrScore) {
				t.Errorf("Classify(%v, %v) = %q, %v, want ErrScore", tt.competence, tt.attitude, got, err)
			}
		})
	}
	t.Run("a profile from scores carries them normalised to 0…1", func(t *testing.T) {
		q := Quadrant{Scale: 4, CompetenceThreshold: 2, AttitudeThreshold: 2}
		p, err := q.profile(3, 1, SourceDirectory)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != ticket.Prioritizer || *p.Competence != 0.75 || *p.Attitude != 0.25 || p.Confidence != 1 || p.Source != SourceDirectory {
			t.Errorf("profile(3, 1) = %+v (competence %v, attitude %v), want prioritizer 0.75/0.25 confidence 1",
				p, *p.Competence, *p.Attitude)
		}
	})
}
