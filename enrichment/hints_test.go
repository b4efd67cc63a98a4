package enrichment

import (
	"slices"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestDefaultHints(t *testing.T) {
	hints := DefaultHints()
	for _, name := range ticket.ProfileNames {
		t.Run(string(name)+" has complete and valid hints", func(t *testing.T) {
			h, ok := hints[name]
			if !ok {
				t.Fatalf("DefaultHints()[%s] missing", name)
			}
			if h.CommunicationStyle == "" || len(h.Do) == 0 || len(h.Avoid) == 0 || len(h.PreferredChannels) == 0 {
				t.Errorf("DefaultHints()[%s] = %+v, want style, channels, do and avoid", name, h)
			}
			if !slices.Contains(languages, h.Language) {
				t.Errorf("DefaultHints()[%s].Language = %q, want one of %q", name, h.Language, languages)
			}
			if !slices.Contains(virtualAgents, h.VirtualAgent) {
				t.Errorf("DefaultHints()[%s].VirtualAgent = %q, want one of %q", name, h.VirtualAgent, virtualAgents)
			}
			for _, c := range h.PreferredChannels {
				if !c.Valid() {
					t.Errorf("DefaultHints()[%s] has channel %q", name, c)
				}
			}
			if d, err := time.ParseDuration(h.StatusUpdateEvery); err != nil || d <= 0 || d > 8*time.Hour {
				t.Errorf("DefaultHints()[%s].StatusUpdateEvery = %q, want a duration in (0, 8h]", name, h.StatusUpdateEvery)
			}
		})
	}
	// The domain, DESIGN.md §1: the differences the hints must encode.
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"doers get technical language and knowledge links",
			hints[ticket.Doer].Language == LanguageTechnical && hints[ticket.Doer].VirtualAgent == AgentKnowledgeLinks},
		{"doers are served first on the self-service portal", hints[ticket.Doer].PreferredChannels[0] == ticket.ChannelPortal},
		{"prioritizers are solved in the session, first by phone",
			hints[ticket.Prioritizer].VirtualAgent == AgentSolveInSession && hints[ticket.Prioritizer].PreferredChannels[0] == ticket.ChannelPhone},
		{"triers get plain guided steps by email or portal",
			hints[ticket.Trier].Language == LanguagePlain && hints[ticket.Trier].VirtualAgent == AgentGuidedSteps &&
				slices.Equal(hints[ticket.Trier].PreferredChannels, []ticket.Channel{ticket.ChannelEmail, ticket.ChannelPortal})},
		{"supported callers get plain language and a person, by phone or on site",
			hints[ticket.Supported].Language == LanguagePlain && hints[ticket.Supported].VirtualAgent == AgentHandoffToHuman &&
				!slices.Contains(hints[ticket.Supported].PreferredChannels, ticket.ChannelPortal)},
		{"prioritizers and supported callers hear news more often than doers",
			dur(hints[ticket.Prioritizer].StatusUpdateEvery) < dur(hints[ticket.Doer].StatusUpdateEvery) &&
				dur(hints[ticket.Supported].StatusUpdateEvery) < dur(hints[ticket.Doer].StatusUpdateEvery)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("DefaultHints() does not hold: %s", tt.name)
			}
		})
	}
	t.Run("each call returns a fresh copy", func(t *testing.T) {
		a := DefaultHints()
		a[ticket.Doer].Do[0] = "changed"
		if DefaultHints()[ticket.Doer].Do[0] == "changed" {
			t.Error("changing DefaultHints() changed the next call's result")
		}
	})
}

func dur(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

func TestHints(t *testing.T) {
	t.Run("no overrides gives the defaults", func(t *testing.T) {
		h, err := Hints(nil)
		if err != nil || len(h) != len(ticket.ProfileNames) {
			t.Fatalf("Hints(nil) = %d profiles, %v, want %d", len(h), err, len(ticket.ProfileNames))
		}
	})
	t.Run("overrides replace only the fields they set", func(t *testing.T) {
		h, err := Hints(map[string]config.ProfileHints{
			"Doer":      {Language: "Plain", PreferredChannels: []string{"chat", "Virtual-Agent"}, StatusUpdateEvery: "90m"},
			"supported": {Do: []string{"Call them back."}, VirtualAgent: "guided_steps"},
		})
		if err != nil {
			t.Fatalf("Hints = %v", err)
		}
		def := DefaultHints()
		d := h[ticket.Doer]
		if d.Language != LanguagePlain || !slices.Equal(d.PreferredChannels, []ticket.Channel{ticket.ChannelChat, ticket.ChannelVirtualAgent}) ||
			d.StatusUpdateEvery != "90m" {
			t.Errorf("Hints()[doer] = %+v, want plain, chat+virtual_agent, 90m", d)
		}
		if d.CommunicationStyle != def[ticket.Doer].CommunicationStyle || !slices.Equal(d.Do, def[ticket.Doer].Do) {
			t.Errorf("Hints()[doer] lost the fields it did not override: %+v", d)
		}
		s := h[ticket.Supported]
		if !slices.Equal(s.Do, []string{"Call them back."}) || s.VirtualAgent != AgentGuidedSteps || !slices.Equal(s.Avoid, def[ticket.Supported].Avoid) {
			t.Errorf("Hints()[supported] = %+v", s)
		}
	})
	for _, tt := range []struct {
		name      string
		overrides map[string]config.ProfileHints
		wantPaths []string
	}{
		{"an unknown profile name is reported at its key",
			map[string]config.ProfileHints{"wizard": {Language: "plain"}},
			[]string{"profiles.hints.wizard"}},
		{"a bad language is reported",
			map[string]config.ProfileHints{"trier": {Language: "jargon"}},
			[]string{"profiles.hints.trier.language"}},
		{"a bad channel is reported with its index",
			map[string]config.ProfileHints{"doer": {PreferredChannels: []string{"portal", "pigeon"}}},
			[]string{"profiles.hints.doer.preferred_channels[1]"}},
		{"a cadence that is not a duration is reported",
			map[string]config.ProfileHints{"doer": {StatusUpdateEvery: "daily"}},
			[]string{"profiles.hints.doer.status_update_every"}},
		{"a cadence of zero is reported",
			map[string]config.ProfileHints{"doer": {StatusUpdateEvery: "0s"}},
			[]string{"profiles.hints.doer.status_update_every"}},
		{"a bad virtual-agent behaviour is reported",
			map[string]config.ProfileHints{"unknown": {VirtualAgent: "chatbot"}},
			[]string{"profiles.hints.unknown.virtual_agent"}},
		{"every problem of every profile is reported",
			map[string]config.ProfileHints{
				"trier":  {Language: "x", VirtualAgent: "y"},
				"doer":   {StatusUpdateEvery: "-1h"},
				"wizard": {},
			},
			[]string{"profiles.hints.doer.status_update_every", "profiles.hints.trier.language",
				"profiles.hints.trier.virtual_agent", "profiles.hints.wizard"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Hints(tt.overrides)
			if h != nil {
				t.Errorf("Hints returned hints with an error")
			}
			es := config.AsErrors(err)
			es.Sort()
			var paths []string
			for _, e := range es {
				paths = append(paths, e.Path)
			}
			if !slices.Equal(paths, tt.wantPaths) {
				t.Errorf("Hints error paths = %q, want %q\n%v", paths, tt.wantPaths, err)
			}
		})
	}
}
