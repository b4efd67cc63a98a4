package enrichment

import (
	"context"
	"strings"

	"github.com/deskrelay/deskrelay/ticket"
)

// SourceFile is the name of the [Static] source and the Source of the
// profiles it returns.
const SourceFile = "file"

// Static is a [Source] over a fixed list of entries, such as those
// [ParseFile] read from profiles.file: for commands that run without NATS
// (deskrelay route) and for tests. It is safe for concurrent use.
type Static struct {
	byID    map[string]ticket.Profile
	byEmail map[string]ticket.Profile
}

// NewStatic returns a source over entries; scores are classified with q.
// Entries that give neither a valid profile nor valid scores are left out;
// when two entries share an email or id, the later one wins.
func NewStatic(entries []Entry, q Quadrant) *Static {
	s := &Static{byID: make(map[string]ticket.Profile), byEmail: make(map[string]ticket.Profile)}
	for _, e := range entries {
		p, ok := entryProfile(e, q, SourceFile)
		if !ok {
			continue
		}
		if e.UserID != "" {
			s.byID[e.UserID] = p
		}
		if e.Email != "" {
			s.byEmail[strings.ToLower(e.Email)] = p
		}
	}
	return s
}

// Name returns "file".
func (s *Static) Name() string { return SourceFile }

// Lookup returns the caller's profile by id, else by lower-cased email.
func (s *Static) Lookup(_ context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	if p, ok := s.byID[c.ID]; ok && c.ID != "" {
		return p, true, nil
	}
	if p, ok := s.byEmail[strings.ToLower(c.Email)]; ok && c.Email != "" {
		return p, true, nil
	}
	return ticket.Profile{}, false, nil
}

// entryProfile turns an entry into the profile a source returns.
func entryProfile(e Entry, q Quadrant, source string) (ticket.Profile, bool) {
	if e.Competence != nil && e.Attitude != nil {
		p, err := q.profile(*e.Competence, *e.Attitude, source)
		return p, err == nil
	}
	name, err := ticket.ParseProfileName(string(e.Profile))
	if err != nil || name == ticket.Unknown {
		return ticket.Profile{}, false
	}
	return ticket.Profile{Name: name, Source: source, Confidence: 1}, true
}

// Local returns true: the entries are in memory (see [Local]).
func (s *Static) Local() bool { return true }
