package enrichment

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// Scale is a scale of competence and attitude scores, such as a survey's
// 0–10 or 1–5 Likert answers. A score at or above a threshold is high
// competence, or "I fix it myself":
//
//	                      attitude < threshold     attitude ≥ threshold
//	competence ≥ thresh.  prioritizer              doer
//	competence < thresh.  supported                trier
type Scale struct {
	Name                string
	Min, Max            float64
	CompetenceThreshold float64
	AttitudeThreshold   float64
}

// The built-in scales. Their thresholds are the midpoints, so that a
// neutral answer (5 of 0–10, 3 of 1–5) counts as high; set a threshold of
// 4 on "1-5" to count only agreement.
var builtinScales = map[string]Scale{
	"0-10": {Name: "0-10", Min: 0, Max: 10, CompetenceThreshold: 5, AttitudeThreshold: 5},
	"1-5":  {Name: "1-5", Min: 1, Max: 5, CompetenceThreshold: 3, AttitudeThreshold: 3},
}

// Scales are the score scales by name; build them with [NewScales].
type Scales map[string]Scale

// NewScales returns the built-in scales ("0-10", "1-5") with the
// configured ones added or overriding them. A configured threshold of 0
// means the midpoint. It returns [config.Errors] under
// profiles.score_scales for a scale whose max is not above its min or
// whose threshold lies outside it.
func NewScales(cfg map[string]config.ScoreScale) (Scales, error) {
	s := maps.Clone(builtinScales)
	var errs config.Errors
	for _, name := range slices.Sorted(maps.Keys(cfg)) {
		c := cfg[name]
		path := "profiles.score_scales." + name
		sc := Scale{Name: name, Min: c.Min, Max: c.Max, CompetenceThreshold: c.CompetenceThreshold, AttitudeThreshold: c.AttitudeThreshold}
		if !(sc.Max > sc.Min) || math.IsInf(sc.Max, 0) || math.IsInf(sc.Min, 0) {
			errs = append(errs, config.Errorf(path+".max", "%v must be above min %v", sc.Max, sc.Min))
			continue
		}
		mid := sc.Min + (sc.Max-sc.Min)/2
		for _, t := range []struct {
			key string
			v   *float64
		}{{"competence_threshold", &sc.CompetenceThreshold}, {"attitude_threshold", &sc.AttitudeThreshold}} {
			if *t.v == 0 {
				*t.v = mid
				continue
			}
			if !(*t.v > sc.Min && *t.v <= sc.Max) {
				errs = append(errs, config.Errorf(path+"."+t.key, "%v is outside the scale; use a value above %v and at most %v", *t.v, sc.Min, sc.Max))
			}
		}
		s[name] = sc
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// Lookup returns the scale called name, or an error listing the known
// names.
func (s Scales) Lookup(name string) (Scale, error) {
	if sc, ok := s[name]; ok {
		return sc, nil
	}
	return Scale{}, fmt.Errorf("unknown scale %q; use one of %s", name, strings.Join(slices.Sorted(maps.Keys(s)), ", "))
}

// Classify returns the profile for two scores on the scale, with the
// scores normalised to 0…1 (attitude 1 = "I fix it myself"), or an error
// wrapping [ErrScore] when either is outside Min…Max or not a number.
func (sc Scale) Classify(competence, attitude float64) (name ticket.ProfileName, c, a float64, err error) {
	for _, v := range []struct {
		what string
		v    float64
	}{{"competence", competence}, {"attitude", attitude}} {
		if !(v.v >= sc.Min && v.v <= sc.Max) { // also NaN
			return "", 0, 0, fmt.Errorf("%w: %s %v is not within %v…%v (scale %q)", ErrScore, v.what, v.v, sc.Min, sc.Max, sc.Name)
		}
	}
	high := competence >= sc.CompetenceThreshold
	myself := attitude >= sc.AttitudeThreshold
	switch {
	case high && myself:
		name = ticket.Doer
	case high:
		name = ticket.Prioritizer
	case myself:
		name = ticket.Trier
	default:
		name = ticket.Supported
	}
	span := sc.Max - sc.Min
	return name, (competence - sc.Min) / span, (attitude - sc.Min) / span, nil
}
