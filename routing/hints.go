package routing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// Hint keys a route may set that map onto the structured fields of
// [ticket.Hints]. Any other key goes into Hints.Extra.
const (
	HintCommunicationStyle = "communication_style"
	HintLanguage           = "language"
	HintVirtualAgent       = "virtual_agent"
	HintStatusUpdateEvery  = "status_update_every"
	HintPreferredChannels  = "preferred_channels"
	HintDo                 = "do"
	HintAvoid              = "avoid"
)

// Languages a route or base hints may set.
const (
	LanguageTechnical = "technical"
	LanguagePlain     = "plain"
)

// hintPatch is a route's hints, compiled: scalar fields override, do and
// avoid append, extra keys override one by one.
type hintPatch struct {
	set      hintFields
	style    string
	language string
	agent    string
	every    string
	channels []ticket.Channel
	do       []string
	avoid    []string
	extra    []kv // sorted by key
}

type hintFields uint8

const (
	setStyle hintFields = 1 << iota
	setLanguage
	setAgent
	setEvery
	setChannels
)

type kv struct{ k, v string }

// compileHints checks a route's hints; problems are reported under
// path.<key>, in key order.
func compileHints(h map[string]string, path string, errs *config.Errors) hintPatch {
	var p hintPatch
	for _, k := range slices.Sorted(maps.Keys(h)) {
		v := h[k]
		kpath := path + "." + k
		switch k {
		case HintCommunicationStyle:
			p.set |= setStyle
			p.style = v
		case HintLanguage:
			if err := checkLanguage(v); err != nil {
				*errs = append(*errs, config.Errorf(kpath, "%v", err))
				continue
			}
			p.set |= setLanguage
			p.language = v
		case HintVirtualAgent:
			p.set |= setAgent
			p.agent = v
		case HintStatusUpdateEvery:
			if err := checkEvery(v); err != nil {
				*errs = append(*errs, config.Errorf(kpath, "%v", err))
				continue
			}
			p.set |= setEvery
			p.every = strings.TrimSpace(v)
		case HintPreferredChannels:
			chans, err := parseChannels(v)
			if err != nil {
				*errs = append(*errs, config.Errorf(kpath, "%v", err))
				continue
			}
			p.set |= setChannels
			p.channels = chans
		case HintDo, HintAvoid:
			items := splitItems(v)
			if len(items) == 0 {
				*errs = append(*errs, config.Errorf(kpath, "no items; separate items with \"|\""))
				continue
			}
			if k == HintDo {
				p.do = items
			} else {
				p.avoid = items
			}
		default:
			p.extra = append(p.extra, kv{k, v})
		}
	}
	return p
}

func checkLanguage(v string) error {
	if v != LanguageTechnical && v != LanguagePlain {
		return fmt.Errorf("%q is not a language; use %q or %q", v, LanguageTechnical, LanguagePlain)
	}
	return nil
}

func checkEvery(v string) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration; write it like \"4h\" or \"90m\"", v)
	}
	return nil
}

// parseChannels reads a comma-separated list of channel names.
func parseChannels(v string) ([]ticket.Channel, error) {
	var chans []ticket.Channel
	for s := range strings.SplitSeq(v, ",") {
		c, err := ticket.ParseChannel(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		chans = append(chans, c)
	}
	return chans, nil
}

// splitItems splits a "|"-separated list, dropping blank items.
func splitItems(v string) []string {
	var items []string
	for s := range strings.SplitSeq(v, "|") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	return items
}

// profileSlot indexes the per-profile base hints; names that are not a
// known profile share the slot of [ticket.Unknown].
func profileSlot(n ticket.ProfileName) int {
	switch n {
	case ticket.Doer:
		return 0
	case ticket.Prioritizer:
		return 1
	case ticket.Trier:
		return 2
	case ticket.Supported:
		return 3
	}
	return 4
}

const numSlots = 5

// checkBaseHints validates base hints the way route hints are validated.
func checkBaseHints(h ticket.Hints) error {
	if h.Language != "" {
		if err := checkLanguage(h.Language); err != nil {
			return err
		}
	}
	if h.StatusUpdateEvery != "" {
		if err := checkEvery(h.StatusUpdateEvery); err != nil {
			return fmt.Errorf("status_update_every: %w", err)
		}
	}
	for _, c := range h.PreferredChannels {
		if !c.Valid() {
			return fmt.Errorf("preferred_channels: %q is not a channel", c)
		}
	}
	return nil
}

// cloneHints deep-copies h, so that neither side shares slices or maps.
func cloneHints(h ticket.Hints) ticket.Hints {
	h.PreferredChannels = slices.Clone(h.PreferredChannels)
	h.Do = slices.Clone(h.Do)
	h.Avoid = slices.Clone(h.Avoid)
	h.Extra = maps.Clone(h.Extra)
	return h
}

// buildHints starts from base and applies every matched route's hints in
// order. The result shares nothing with the tree: rules, do and avoid are
// carved out of one fresh backing array with their capacity capped, so an
// append to one never writes into another.
func buildHints(base *ticket.Hints, matched []*node) (rules []string, h ticket.Hints) {
	h.CommunicationStyle = base.CommunicationStyle
	h.Language = base.Language
	h.VirtualAgent = base.VirtualAgent
	h.StatusUpdateEvery = base.StatusUpdateEvery
	chans := base.PreferredChannels
	nDo, nAvoid, nExtra := len(base.Do), len(base.Avoid), len(base.Extra)
	for _, n := range matched {
		p := &n.hints
		if p.set&setStyle != 0 {
			h.CommunicationStyle = p.style
		}
		if p.set&setLanguage != 0 {
			h.Language = p.language
		}
		if p.set&setAgent != 0 {
			h.VirtualAgent = p.agent
		}
		if p.set&setEvery != 0 {
			h.StatusUpdateEvery = p.every
		}
		if p.set&setChannels != 0 {
			chans = p.channels
		}
		nDo += len(p.do)
		nAvoid += len(p.avoid)
		nExtra += len(p.extra)
	}

	buf := make([]string, 0, len(matched)+nDo+nAvoid)
	for _, n := range matched {
		buf = append(buf, n.name)
	}
	rules = buf[:len(buf):len(buf)]
	if nDo > 0 {
		start := len(buf)
		buf = append(buf, base.Do...)
		for _, n := range matched {
			buf = append(buf, n.hints.do...)
		}
		h.Do = buf[start:len(buf):len(buf)]
	}
	if nAvoid > 0 {
		start := len(buf)
		buf = append(buf, base.Avoid...)
		for _, n := range matched {
			buf = append(buf, n.hints.avoid...)
		}
		h.Avoid = buf[start:len(buf):len(buf)]
	}
	if len(chans) > 0 {
		h.PreferredChannels = slices.Clone(chans)
	}
	if nExtra > 0 {
		h.Extra = make(map[string]string, nExtra)
		maps.Copy(h.Extra, base.Extra)
		for _, n := range matched {
			for _, e := range n.hints.extra {
				h.Extra[e.k] = e.v
			}
		}
	}
	return rules, h
}

// hintLines renders the set fields of h as "key: value" lines in a fixed
// order, for Explain.
func hintLines(h ticket.Hints) []string {
	var lines []string
	add := func(k, v string) {
		if v != "" {
			lines = append(lines, k+": "+v)
		}
	}
	add(HintCommunicationStyle, h.CommunicationStyle)
	add(HintLanguage, h.Language)
	chans := make([]string, len(h.PreferredChannels))
	for i, c := range h.PreferredChannels {
		chans[i] = string(c)
	}
	add(HintPreferredChannels, strings.Join(chans, ", "))
	add(HintDo, strings.Join(h.Do, " | "))
	add(HintAvoid, strings.Join(h.Avoid, " | "))
	add(HintStatusUpdateEvery, h.StatusUpdateEvery)
	add(HintVirtualAgent, h.VirtualAgent)
	for _, k := range slices.Sorted(maps.Keys(h.Extra)) {
		lines = append(lines, "extra."+k+": "+h.Extra[k])
	}
	return lines
}
