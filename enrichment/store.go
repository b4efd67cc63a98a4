package enrichment

import (
	"time"

	"github.com/deskrelay/deskrelay/ticket"
)

// profileStore holds the directory's profiles by key in a layout the
// garbage collector barely has to look at: a map from key to a record
// without pointers, the records' strings interned in a small table, their
// scores in one []float64. A map of ticket.Profile values (eight pointers
// each) made every collection scan about a million pointer words for a
// directory of 50,000 callers, which on a busy two-core machine stretched
// each mark phase by tens of milliseconds (docs/performance.md).
//
// Scores are never overwritten: a record that changes gets new ones at the
// end of scores, so a Competence or Attitude pointer handed out earlier
// keeps its value. Dead scores are dropped by a compaction once they
// outnumber the live ones.
//
// A profileStore is not safe for concurrent use; the Directory guards it.
type profileStore struct {
	recs   map[string]profileRec
	strs   []string          // interned strings; strs[0] is ""
	strIdx map[string]uint32 // index in strs
	scores []float64         // competence, attitude pairs
	dead   int               // scores no record refers to
}

// profileRec is a ticket.Profile without pointers.
type profileRec struct {
	name, source, reason, group, agent uint32 // in strs
	confidence                         float64
	scores                             int32 // competence at scores[i], attitude at [i+1]; -1: none
	atSec                              int64 // At as Unix seconds and nanoseconds; atSet false: zero
	atNsec                             int32
	atSet                              bool
}

func newProfileStore() *profileStore {
	return &profileStore{recs: map[string]profileRec{}, strs: []string{""}, strIdx: map[string]uint32{"": 0}}
}

func (s *profileStore) intern(v string) uint32 {
	if i, ok := s.strIdx[v]; ok {
		return i
	}
	s.strs = append(s.strs, v)
	i := uint32(len(s.strs) - 1)
	s.strIdx[v] = i
	return i
}

// put stores p under key, replacing what was there. A profile with only
// one of Competence and Attitude keeps neither (the directory never makes
// one).
func (s *profileStore) put(key string, p ticket.Profile) {
	s.delete(key)
	r := profileRec{
		name: s.intern(string(p.Name)), source: s.intern(p.Source), reason: s.intern(p.Reason),
		group: s.intern(p.FamiliarGroup), agent: s.intern(p.FamiliarAgent),
		confidence: p.Confidence, scores: -1,
	}
	if p.Competence != nil && p.Attitude != nil {
		r.scores = int32(len(s.scores))
		s.scores = append(s.scores, *p.Competence, *p.Attitude)
	}
	if !p.At.IsZero() {
		r.atSec, r.atNsec, r.atSet = p.At.Unix(), int32(p.At.Nanosecond()), true
	}
	s.recs[key] = r
	if s.dead > 1024 && s.dead > len(s.scores)/2 {
		s.compact()
	}
}

// delete removes key, if present.
func (s *profileStore) delete(key string) {
	if old, ok := s.recs[key]; ok {
		if old.scores >= 0 {
			s.dead += 2
		}
		delete(s.recs, key)
	}
}

// get returns the profile stored under key. Its At is in UTC; its
// Competence and Attitude point into the store and must not be modified.
func (s *profileStore) get(key string) (ticket.Profile, bool) {
	r, ok := s.recs[key]
	if !ok {
		return ticket.Profile{}, false
	}
	return s.profile(r), true
}

// profile makes the ticket.Profile of r (see get).
func (s *profileStore) profile(r profileRec) ticket.Profile {
	p := ticket.Profile{
		Name: ticket.ProfileName(s.strs[r.name]), Source: s.strs[r.source], Reason: s.strs[r.reason],
		FamiliarGroup: s.strs[r.group], FamiliarAgent: s.strs[r.agent], Confidence: r.confidence,
	}
	if r.scores >= 0 {
		p.Competence, p.Attitude = &s.scores[r.scores], &s.scores[r.scores+1]
	}
	if r.atSet {
		p.At = time.Unix(r.atSec, int64(r.atNsec)).UTC()
	}
	return p
}

// len returns the number of keys.
func (s *profileStore) len() int { return len(s.recs) }

// compact copies the live scores into a new slice; pointers handed out
// before keep the old one alive until they are dropped.
func (s *profileStore) compact() {
	live := make([]float64, 0, len(s.scores)-s.dead)
	for k, r := range s.recs {
		if r.scores < 0 {
			continue
		}
		i := r.scores
		r.scores = int32(len(live))
		live = append(live, s.scores[i], s.scores[i+1])
		s.recs[k] = r
	}
	s.scores, s.dead = live, 0
}
