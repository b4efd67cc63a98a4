package enrichment

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// Values of [ticket.Hints.Language].
const (
	LanguageTechnical = "technical"
	LanguagePlain     = "plain"
)

// Values of [ticket.Hints.VirtualAgent].
const (
	AgentKnowledgeLinks = "knowledge_links"
	AgentSolveInSession = "solve_in_session"
	AgentGuidedSteps    = "guided_steps"
	AgentHandoffToHuman = "handoff_to_human"
)

var (
	languages     = []string{LanguageTechnical, LanguagePlain}
	virtualAgents = []string{AgentKnowledgeLinks, AgentSolveInSession, AgentGuidedSteps, AgentHandoffToHuman}
)

// The status-update cadences. Not hearing about progress is what callers of
// every profile complain about most, so no profile waits longer than half a
// working day. Prioritizers want news without having to chase it, and
// Supported callers tend not to ask at all, so both hear from us more often.
const (
	cadenceDoer        = "4h"
	cadencePrioritizer = "2h"
	cadenceTrier       = "4h"
	cadenceSupported   = "2h"
	cadenceUnknown     = "4h"
)

// DefaultHints returns the built-in hints of every profile in
// [ticket.ProfileNames], unknown included. The map and its slices are new on
// every call: the caller may modify them.
func DefaultHints() map[ticket.ProfileName]ticket.Hints {
	return map[ticket.ProfileName]ticket.Hints{
		ticket.Doer: {
			CommunicationStyle: "Talk to them as a colleague: precise IT terms, no basics, " +
				"and start from what they have already checked.",
			Language:          LanguageTechnical,
			PreferredChannels: []ticket.Channel{ticket.ChannelPortal, ticket.ChannelChat, ticket.ChannelEmail},
			Do: []string{
				"Use exact technical vocabulary: error codes, versions, log excerpts.",
				"Link the knowledge article that covers the problem, and invite them to add their own fix to it.",
				"Give them a link where they can track the ticket's status themselves.",
				"Put them in touch with second-level support directly once the first-line checks are done.",
				"Ask what they have already tried and build on it.",
			},
			Avoid: []string{
				"Scripted first-line checks such as \"have you restarted it?\": they did that before calling.",
				"First-line remote-control sessions.",
				"Handing them to an agent who knows less about the problem than they do.",
				"Simplified explanations that hide the technical cause.",
			},
			StatusUpdateEvery: cadenceDoer,
			VirtualAgent:      AgentKnowledgeLinks,
		},
		ticket.Prioritizer: {
			CommunicationStyle: "Short and to the point: technical terms are fine, " +
				"but ask for as little of their time as possible and aim to finish in one contact.",
			Language:          LanguageTechnical,
			PreferredChannels: []ticket.Channel{ticket.ChannelPhone, ticket.ChannelChat, ticket.ChannelPortal},
			Do: []string{
				"Solve it within one session, bringing second-level help into that session if needed.",
				"Keep their part to a minimum and book any follow-up at a time they choose.",
				"Handle all their open problems together in the same contact.",
				"Send short status updates without waiting to be asked.",
				"Read the ticket and what they already tried before contacting them.",
			},
			Avoid: []string{
				"Calls or requests for their time that were not agreed beforehand.",
				"Long remote-control sessions.",
				"Repeating steps they have already taken.",
				"Asking them to describe the problem again.",
			},
			StatusUpdateEvery: cadencePrioritizer,
			VirtualAgent:      AgentSolveInSession,
		},
		ticket.Trier: {
			CommunicationStyle: "Calm, friendly and plain: one step at a time in everyday words, " +
				"and say who to reach if a step does not work.",
			Language:          LanguagePlain,
			PreferredChannels: []ticket.Channel{ticket.ChannelEmail, ticket.ChannelPortal},
			Do: []string{
				"Give complete step-by-step instructions, all in one place.",
				"Use everyday words, and explain any technical term you cannot avoid.",
				"Name the person or team to contact if they get stuck.",
				"Explain why each step helps, so they can solve it themselves next time.",
				"Point out tips for problems that are common right now, before they run into them.",
				"Listen to their idea of the cause, then check it and gently correct it if it is wrong.",
			},
			Avoid: []string{
				"Spreading one fix over several documents or pages.",
				"IT jargon and unexplained abbreviations.",
				"Fixing it for them without showing what was done.",
				"Taking their diagnosis for granted.",
			},
			StatusUpdateEvery: cadenceTrier,
			VirtualAgent:      AgentGuidedSteps,
		},
		ticket.Supported: {
			CommunicationStyle: "Patient and warm, in everyday language: talk them through it or do it for them, " +
				"and never ask them to describe it twice.",
			Language:          LanguagePlain,
			PreferredChannels: []ticket.Channel{ticket.ChannelPhone, ticket.ChannelWalkIn},
			Do: []string{
				"Offer a phone call or a visit at their desk.",
				"Where possible, send someone who already knows them, their work and their usual problems.",
				"Share the screen or send a short recording instead of describing the steps.",
				"Take the time they need.",
				"Use plain everyday words.",
				"Hand them to a person early rather than keep them in self-service.",
			},
			Avoid: []string{
				"Written instructions full of IT terms.",
				"Making them explain the problem more than once.",
				"Sending them to the self-service portal to help themselves.",
				"Rushing them.",
			},
			StatusUpdateEvery: cadenceSupported,
			VirtualAgent:      AgentHandoffToHuman,
		},
		ticket.Unknown: {
			CommunicationStyle: "Neutral and courteous: plain words, and technical terms only once the caller uses them.",
			Language:           LanguagePlain,
			PreferredChannels:  []ticket.Channel{ticket.ChannelPortal, ticket.ChannelEmail, ticket.ChannelPhone},
			Do: []string{
				"Ask briefly what they have already tried.",
				"Keep them informed of progress.",
			},
			Avoid: []string{
				"Asking for information the ticket already holds.",
			},
			StatusUpdateEvery: cadenceUnknown,
			VirtualAgent:      AgentGuidedSteps,
		},
	}
}

// Hints returns [DefaultHints] with overrides applied. A key of overrides
// is a profile name (case-insensitive); an empty field keeps the built-in
// value and a non-empty list replaces the built-in list. Every problem is
// reported, as [config.Errors] with paths profiles.hints.<name>[.<field>]:
// an unknown profile, a language other than technical or plain, an unknown
// channel, a status cadence that is not a positive Go duration, or an
// unknown virtual-agent behaviour. On error the returned map is nil.
func Hints(overrides map[string]config.ProfileHints) (map[ticket.ProfileName]ticket.Hints, error) {
	hints := DefaultHints()
	var errs config.Errors
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		path := "profiles.hints." + key
		name, err := ticket.ParseProfileName(key)
		if err != nil {
			errs = append(errs, config.Errorf(path, "%v", err))
			continue
		}
		h, es := applyHints(hints[name], overrides[key], path)
		errs = append(errs, es...)
		hints[name] = h
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return hints, nil
}

func applyHints(h ticket.Hints, o config.ProfileHints, path string) (ticket.Hints, config.Errors) {
	var errs config.Errors
	if s := strings.TrimSpace(o.CommunicationStyle); s != "" {
		h.CommunicationStyle = s
	}
	if o.Language != "" {
		l := strings.ToLower(strings.TrimSpace(o.Language))
		if slices.Contains(languages, l) {
			h.Language = l
		} else {
			errs = append(errs, config.Errorf(path+".language",
				"%q is not a language; use %s", o.Language, strings.Join(languages, " or ")))
		}
	}
	if len(o.PreferredChannels) > 0 {
		chans := make([]ticket.Channel, 0, len(o.PreferredChannels))
		for i, s := range o.PreferredChannels {
			c, err := ticket.ParseChannel(s)
			if err != nil {
				errs = append(errs, config.Errorf(fmt.Sprintf("%s.preferred_channels[%d]", path, i), "%v", err))
				continue
			}
			chans = append(chans, c)
		}
		h.PreferredChannels = chans
	}
	if len(o.Do) > 0 {
		h.Do = slices.Clone(o.Do)
	}
	if len(o.Avoid) > 0 {
		h.Avoid = slices.Clone(o.Avoid)
	}
	if o.StatusUpdateEvery != "" {
		s := strings.TrimSpace(o.StatusUpdateEvery)
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			errs = append(errs, config.Errorf(path+".status_update_every",
				"%q is not a duration; write it like \"2h\" or \"30m\"", o.StatusUpdateEvery))
		case d <= 0:
			errs = append(errs, config.Errorf(path+".status_update_every",
				"%q must be greater than zero", o.StatusUpdateEvery))
		default:
			h.StatusUpdateEvery = s
		}
	}
	if o.VirtualAgent != "" {
		a := strings.ToLower(strings.TrimSpace(o.VirtualAgent))
		if slices.Contains(virtualAgents, a) {
			h.VirtualAgent = a
		} else {
			errs = append(errs, config.Errorf(path+".virtual_agent",
				"%q is not a virtual-agent behaviour; use one of %s", o.VirtualAgent, strings.Join(virtualAgents, ", ")))
		}
	}
	return h, errs
}
