package enrichment

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// The hints [Familiar.Hints] adds, for routing rules and agents.
const (
	HintFamiliarAgent = "familiar_agent"
	HintFamiliarGroup = "familiar_group"
)

// Resolution is one resolved ticket of a caller: who resolved it.
type Resolution struct {
	TicketID   string    `json:"ticket_id"`
	Agent      string    `json:"agent,omitempty"`
	Group      string    `json:"group,omitempty"`
	ResolvedAt time.Time `json:"resolved_at"`
}

// familiarHistory is the value under "familiar.<key>": newest first.
type familiarHistory struct {
	Resolved []Resolution `json:"resolved"`
}

// Known is who resolved a caller's earlier tickets: the agent and the
// group that resolved most of the kept ones (the most recent on a tie).
type Known struct {
	Agent, Group string
}

// Familiar remembers which agent and group resolved each caller's tickets
// (a bounded history per caller in the profiles bucket, under
// "familiar.<key>"), so that callers who value familiar people (Supported
// and Triers by default) can be served by them again. [Familiar.Remember]
// writes; the [Directory] (built [WithFamiliar]) mirrors the histories,
// so [Familiar.Lookup] and [Familiar.Hints] are map reads that see every
// replica's writes. It is safe for concurrent use.
type Familiar struct {
	kv       jetstream.KeyValue
	history  int
	states   []string // lower case
	profiles []ticket.ProfileName
	log      *zap.Logger
	m        *Metrics
	now      func() time.Time

	mu      sync.RWMutex
	byEmail map[string]Known
	byID    map[string]Known
}

// NewFamiliar returns the familiar-people memory over the profiles bucket
// kv. It returns [config.Errors] for a history below 1 or a profile name
// that does not exist. A disabled config gives nil, nil: every method of
// a nil *Familiar does nothing.
func NewFamiliar(kv jetstream.KeyValue, cfg config.Familiar, log *zap.Logger, m *Metrics) (*Familiar, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	var errs config.Errors
	if cfg.History < 1 {
		errs = append(errs, config.Errorf("profiles.familiar.history", "must be at least 1, got %d", cfg.History))
	}
	f := &Familiar{kv: kv, history: cfg.History, log: log.Named("enrichment.familiar"), m: m, now: time.Now,
		byEmail: map[string]Known{}, byID: map[string]Known{}}
	for i, p := range cfg.Profiles {
		name, err := ticket.ParseProfileName(p)
		if err != nil {
			errs = append(errs, config.Errorf(fmt.Sprintf("profiles.familiar.profiles[%d]", i), "%v", err))
			continue
		}
		f.profiles = append(f.profiles, name)
	}
	for _, s := range cfg.States {
		f.states = append(f.states, strings.ToLower(strings.TrimSpace(s)))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if f.m == nil {
		f.m = NewMetrics(nil)
	}
	return f, nil
}

// Remember records who resolved t when its state is one of the configured
// resolved states and it names an assignment group; other tickets are
// skipped (counted, nil error). Call it for every ticket update the
// pipeline sees; a ticket recorded before is updated, not added twice.
// The error means the bucket could not be written.
func (f *Familiar) Remember(ctx context.Context, t ticket.Ticket) error {
	if f == nil {
		return nil
	}
	if !slices.Contains(f.states, strings.ToLower(strings.TrimSpace(t.State))) || (t.AssignmentGroup == "" && t.AssignedTo == "") ||
		(t.Caller.Email == "" && t.Caller.ID == "") {
		f.m.familiar.WithLabelValues("skipped").Inc()
		return nil
	}
	at := t.UpdatedAt
	if at.IsZero() {
		at = f.now()
	}
	return f.Record(ctx, t.Caller, Resolution{TicketID: t.Source + ":" + t.ID, Group: t.AssignmentGroup, Agent: t.AssignedTo, ResolvedAt: at.UTC()})
}

// Record adds r to the caller's history under their email and id keys:
// newest first, one entry per ticket, at most the configured number.
func (f *Familiar) Record(ctx context.Context, c ticket.Caller, r Resolution) error {
	if f == nil {
		return nil
	}
	for _, key := range entryKeys(Entry{Email: c.Email, UserID: c.ID}) {
		if _, err := casUpdate(ctx, f.kv, familiarPrefix+key, func(old []byte) ([]byte, error) {
			var h familiarHistory
			if old != nil && json.Unmarshal(old, &h) != nil {
				h = familiarHistory{}
			}
			h.Resolved = slices.DeleteFunc(h.Resolved, func(o Resolution) bool { return o.TicketID == r.TicketID })
			h.Resolved = append(h.Resolved, r)
			slices.SortStableFunc(h.Resolved, func(a, b Resolution) int { return b.ResolvedAt.Compare(a.ResolvedAt) })
			if len(h.Resolved) > f.history {
				h.Resolved = h.Resolved[:f.history]
			}
			return json.Marshal(h)
		}); err != nil {
			f.m.familiar.WithLabelValues("failed").Inc()
			return fmt.Errorf("familiar people: %w", err)
		}
	}
	f.m.familiar.WithLabelValues("remembered").Inc()
	return nil
}

// apply mirrors one change of a "familiar." key; the Directory calls it.
func (f *Familiar) apply(e jetstream.KeyValueEntry) {
	prefix, id, err := parseKey(strings.TrimPrefix(e.Key(), familiarPrefix))
	if err != nil {
		f.log.Warn("ignoring key that is not a familiar-people key", zap.Uint64("revision", e.Revision()))
		return
	}
	m := f.byID
	if prefix == emailPrefix {
		m, id = f.byEmail, strings.ToLower(id)
	}
	var h familiarHistory
	del := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	if !del && json.Unmarshal(e.Value(), &h) != nil {
		f.log.Warn("ignoring bad familiar-people value", zap.Uint64("revision", e.Revision()))
		del = true
	}
	k := summarize(h.Resolved)
	f.mu.Lock()
	defer f.mu.Unlock()
	if del || k == (Known{}) {
		delete(m, id)
		return
	}
	m[id] = k
}

// summarize picks the agent and the group that resolved most tickets of
// rs (newest first), the most recent on a tie.
func summarize(rs []Resolution) Known {
	most := func(get func(Resolution) string) string {
		n := map[string]int{}
		best, bestN := "", 0
		for _, r := range rs {
			v := get(r)
			if v == "" {
				continue
			}
			n[v]++
			if n[v] > bestN { // strictly more: an earlier (newer) one keeps a tie
				best, bestN = v, n[v]
			}
		}
		return best
	}
	return Known{Agent: most(func(r Resolution) string { return r.Agent }), Group: most(func(r Resolution) string { return r.Group })}
}

// Lookup returns who resolved the caller's earlier tickets, by id, else by
// email.
func (f *Familiar) Lookup(c ticket.Caller) (Known, bool) {
	if f == nil {
		return Known{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if k, ok := f.byID[c.ID]; ok && c.ID != "" {
		return k, true
	}
	if k, ok := f.byEmail[strings.ToLower(c.Email)]; ok && c.Email != "" {
		return k, true
	}
	return Known{}, false
}

// Hints returns familiar_agent and familiar_group for a caller whose
// profile values familiar people (profiles.familiar.profiles) and who has
// resolved tickets on record, else nil.
func (f *Familiar) Hints(c ticket.Caller, p ticket.Profile) map[string]string {
	if f == nil || !slices.Contains(f.profiles, p.Name) {
		return nil
	}
	k, ok := f.Lookup(c)
	if !ok {
		return nil
	}
	h := make(map[string]string, 2)
	if k.Agent != "" {
		h[HintFamiliarAgent] = k.Agent
	}
	if k.Group != "" {
		h[HintFamiliarGroup] = k.Group
	}
	return h
}
