package enrichment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/ticket"
)

// kvTimeout bounds each Put of Import; exportTimeout bounds the whole of
// Export.
const (
	kvTimeout     = 5 * time.Second
	exportTimeout = time.Minute
)

// Value is the JSON value stored under a key of the profiles bucket: a
// profile name, or the two raw scores, which the [Directory] classifies
// with its [Quadrant]. When both are given the scores win.
//
//	{"profile":"doer","updated_at":"2026-01-02T15:04:05Z","origin":"file:profiles.csv"}
//	{"competence":8,"attitude":3}
type Value struct {
	Profile    ticket.ProfileName `json:"profile,omitempty"`
	Competence *float64           `json:"competence,omitempty"`
	Attitude   *float64           `json:"attitude,omitempty"`
	// UpdatedAt is when the value was written, Origin what wrote it
	// ("file:profiles.csv", "survey"); both are informational.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	Origin    string    `json:"origin,omitempty"`
	// Survey holds the answers a survey profile was mapped from (Origin
	// "survey", UpdatedAt the answer time); Profile is the mapping.
	Survey *SurveyScores `json:"survey,omitempty"`
}

// SurveyScores are the answers behind a survey profile: raw on their
// scale, and normalised to 0…1.
type SurveyScores struct {
	Scale                string  `json:"scale"`
	Competence           float64 `json:"competence"`
	Attitude             float64 `json:"attitude"`
	NormalizedCompetence float64 `json:"normalized_competence"`
	NormalizedAttitude   float64 `json:"normalized_attitude"`
}

// errValue describes a bad bucket value without repeating it.
var errValue = errors.New("not a profile value")

// decodeValue parses a bucket value and checks that it names a profile or
// holds both scores.
func decodeValue(data []byte) (Value, error) {
	var v Value
	if err := json.Unmarshal(data, &v); err != nil {
		return Value{}, fmt.Errorf("%w: invalid JSON", errValue)
	}
	switch {
	case v.Competence != nil && v.Attitude != nil:
		return v, nil
	case v.Competence != nil || v.Attitude != nil:
		return Value{}, fmt.Errorf("%w: competence and attitude must come together", errValue)
	case v.Profile == "":
		return Value{}, fmt.Errorf("%w: neither profile nor scores", errValue)
	}
	p, err := ticket.ParseProfileName(string(v.Profile))
	if err != nil {
		return Value{}, fmt.Errorf("%w: %w", errValue, err)
	}
	if p == ticket.Unknown {
		return Value{}, fmt.Errorf("%w: profile unknown is not stored; delete the key instead", errValue)
	}
	v.Profile = p
	return v, nil
}

// validate checks an entry before Import writes it and normalises its
// profile name.
func (e *Entry) validate() error {
	switch {
	case e.Competence != nil && e.Attitude != nil:
		if !(*e.Competence >= 0 && *e.Attitude >= 0) || math.IsInf(*e.Competence, 0) || math.IsInf(*e.Attitude, 0) {
			return errors.New("scores must be finite and not negative")
		}
	case e.Email == "" && e.UserID == "":
		return errors.New("neither email nor user id")
	case (e.Competence == nil) != (e.Attitude == nil):
		return errors.New("competence and attitude must come together")
	case e.Competence == nil && e.Profile == "":
		return errors.New("neither profile nor scores")
	case e.Competence == nil:
		p, err := ticket.ParseProfileName(string(e.Profile))
		if err != nil {
			return err
		}
		if p == ticket.Unknown {
			return errors.New("profile unknown is not stored")
		}
		e.Profile = p
	}
	return nil
}

// Import writes entries to the profiles bucket: under [EmailKey] when the
// entry has an email and under [UserIDKey] when it has an id, both when it
// has both, replacing what the keys held. An entry with scores is stored
// as scores (so that the directory classifies them with the quadrant in
// force), otherwise as its profile; origin is stored with it. Every entry
// is checked before the first write. Import returns the number of keys
// written, which on error is how many were written before it.
func Import(ctx context.Context, kv jetstream.KeyValue, entries []Entry, origin string) (int, error) {
	return write(ctx, kv, entries, origin, false)
}

// Seed is [Import] for the file that seeds the bucket at start-up: it
// writes only the keys that hold no value, so the profiles changed in the
// bucket since (by a put, an import or a survey) survive a restart. A key
// whose value was deleted holds none and is written again. Seed returns
// the number of keys it created.
func Seed(ctx context.Context, kv jetstream.KeyValue, entries []Entry, origin string) (int, error) {
	return write(ctx, kv, entries, origin, true)
}

func write(ctx context.Context, kv jetstream.KeyValue, entries []Entry, origin string, onlyNew bool) (int, error) {
	entries = slices.Clone(entries) // validate normalises; leave the caller's alone
	for i := range entries {
		if err := entries[i].validate(); err != nil {
			return 0, fmt.Errorf("import entry %d: %w", i, err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	n := 0
	for i, e := range entries {
		v := Value{UpdatedAt: now, Origin: origin}
		if e.Competence != nil {
			c, a := *e.Competence, *e.Attitude
			v.Competence, v.Attitude = &c, &a
		} else {
			v.Profile = e.Profile
		}
		data, err := json.Marshal(v)
		if err != nil {
			return n, fmt.Errorf("import entry %d: %w", i, err)
		}
		for _, key := range entryKeys(e) {
			created, err := put(ctx, kv, key, data, onlyNew)
			if err != nil {
				return n, fmt.Errorf("import entry %d: %w", i, err)
			}
			if created {
				n++
			}
		}
	}
	return n, nil
}

func entryKeys(e Entry) []string {
	keys := make([]string, 0, 2)
	if e.Email != "" {
		keys = append(keys, EmailKey(e.Email))
	}
	if e.UserID != "" {
		keys = append(keys, UserIDKey(e.UserID))
	}
	return keys
}

// put writes one key, or with onlyNew creates it when it holds no value.
// It reports whether it wrote.
func put(ctx context.Context, kv jetstream.KeyValue, key string, data []byte, onlyNew bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if !onlyNew {
		_, err := kv.Put(ctx, key, data)
		return err == nil, err
	}
	_, err := kv.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// ErrSkipped is returned, wrapped, by [Export] when some keys of the bucket
// are not profile keys or hold values that do not decode; the entries
// returned with it are the good ones.
var ErrSkipped = errors.New("skipped keys that are not profiles")

// Export reads every profile in the bucket: one Entry per key (survey and
// familiar-people histories are not profiles and are left out), so a person
// stored under an email and an id comes back as two entries, one with only
// Email and one with only UserID. Profile is empty for an entry stored as
// scores. Entries are sorted by key. A key that is not a profile key, or
// whose value does not decode, is left out and reported by revision (never
// by key, which holds an email) in an error wrapping [ErrSkipped], returned
// together with the good entries.
func Export(ctx context.Context, kv jetstream.KeyValue) ([]Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("export profiles: watch: %w", err)
	}
	defer w.Stop()
	type keyed struct {
		key string
		e   Entry
	}
	var (
		out     []keyed
		skipped []string
	)
	for {
		var kve jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("export profiles: %w", ctx.Err())
		case u, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("export profiles: watch closed")
			}
			kve = u
		}
		if kve == nil { // all current values delivered
			break
		}
		if k := kve.Key(); strings.HasPrefix(k, surveyPrefix) || strings.HasPrefix(k, familiarPrefix) {
			continue // histories, not profiles
		}
		prefix, id, err := parseKey(kve.Key())
		if err == nil {
			var v Value
			if v, err = decodeValue(kve.Value()); err == nil {
				out = append(out, keyed{kve.Key(), exportEntry(prefix, id, v)})
			}
		}
		if err != nil {
			skipped = append(skipped, strconv.FormatUint(kve.Revision(), 10))
		}
	}
	slices.SortFunc(out, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	entries := make([]Entry, len(out))
	for i, k := range out {
		entries[i] = k.e
	}
	if len(skipped) > 0 {
		return entries, fmt.Errorf("export profiles: %w: revisions %s", ErrSkipped, strings.Join(skipped, ", "))
	}
	return entries, nil
}

func exportEntry(prefix, id string, v Value) Entry {
	e := Entry{Profile: v.Profile, Competence: v.Competence, Attitude: v.Attitude}
	if v.Competence != nil {
		e.Profile = ""
	}
	if prefix == emailPrefix {
		e.Email = strings.ToLower(id)
	} else {
		e.UserID = id
	}
	return e
}
