package enrichment

import (
	"errors"
	"fmt"
	"math"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// DefaultScale is the top of the score scale when none is configured.
const DefaultScale = 10

// ErrScore is returned, wrapped, for a competence or attitude score outside
// 0…Scale (or not a number).
var ErrScore = errors.New("score out of range")

// Quadrant maps two survey scores onto the four profiles. Scores run from 0
// to Scale. A competence at or above CompetenceThreshold is high; an
// attitude at or above AttitudeThreshold means "I fix it myself":
//
//	                      attitude < threshold     attitude ≥ threshold
//	                      (someone else should)    (I fix it myself)
//	competence ≥ thresh.  prioritizer              doer
//	competence < thresh.  supported                trier
//
// The zero Quadrant is not valid; use [NewQuadrant].
type Quadrant struct {
	Scale               float64
	CompetenceThreshold float64
	AttitudeThreshold   float64
}

// NewQuadrant builds the quadrant from the profiles config. A zero scale
// means [DefaultScale] and a zero threshold means half the scale. It returns
// [config.Errors] with the paths profiles.scale,
// profiles.competence_threshold and profiles.attitude_threshold when the
// scale is not positive or a threshold is not within (0, scale].
func NewQuadrant(cfg config.Profiles) (Quadrant, error) {
	q := Quadrant{Scale: cfg.Scale, CompetenceThreshold: cfg.CompetenceThreshold, AttitudeThreshold: cfg.AttitudeThreshold}
	if q.Scale == 0 {
		q.Scale = DefaultScale
	}
	var errs config.Errors
	if !(q.Scale > 0) || math.IsInf(q.Scale, 0) {
		errs = append(errs, config.Errorf("profiles.scale", "%v must be a number greater than 0", cfg.Scale))
		return Quadrant{}, errs
	}
	for _, t := range []struct {
		path string
		v    *float64
	}{
		{"profiles.competence_threshold", &q.CompetenceThreshold},
		{"profiles.attitude_threshold", &q.AttitudeThreshold},
	} {
		if *t.v == 0 {
			*t.v = q.Scale / 2
			continue
		}
		if !(*t.v > 0 && *t.v <= q.Scale) {
			errs = append(errs, config.Errorf(t.path, "%v is outside the scale; use a value above 0 and at most %v", *t.v, q.Scale))
		}
	}
	if len(errs) > 0 {
		return Quadrant{}, errs
	}
	return q, nil
}

// Classify returns the profile for a competence and an attitude score, or
// an error wrapping [ErrScore] when either is outside 0…Scale.
func (q Quadrant) Classify(competence, attitude float64) (ticket.ProfileName, error) {
	if err := q.check("competence", competence); err != nil {
		return "", err
	}
	if err := q.check("attitude", attitude); err != nil {
		return "", err
	}
	high := competence >= q.CompetenceThreshold
	myself := attitude >= q.AttitudeThreshold
	switch {
	case high && myself:
		return ticket.Doer, nil
	case high:
		return ticket.Prioritizer, nil
	case myself:
		return ticket.Trier, nil
	default:
		return ticket.Supported, nil
	}
}

func (q Quadrant) check(what string, v float64) error {
	if v >= 0 && v <= q.Scale { // false for NaN
		return nil
	}
	return fmt.Errorf("%w: %s %v is not within 0…%v", ErrScore, what, v, q.Scale)
}

// profile returns the directory profile for scores: the classified name and
// the scores normalised to 0…1.
func (q Quadrant) profile(competence, attitude float64, source string) (ticket.Profile, error) {
	name, err := q.Classify(competence, attitude)
	if err != nil {
		return ticket.Profile{}, err
	}
	c, a := competence/q.Scale, attitude/q.Scale
	return ticket.Profile{Name: name, Source: source, Confidence: 1, Competence: &c, Attitude: &a}, nil
}
