package freshservice

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// tables map Freshservice codes to deskrelay's fields. Keys are the
// vendor's number ("4") or its label in lower case ("urgent"): the API
// sends numbers, a hand-written webhook body usually renders labels.
type tables struct {
	priority map[string]int
	urgency  map[string]int
	impact   map[string]int
	source   map[string]ticket.Channel
	status   map[string]string
}

// defaultTables returns the built-in tables. The vendor codes are those of
// the Freshservice API reference (ticket attributes: Source, Status,
// Priority) and, for urgency and impact, of the SDKs (1 Low … 3 High);
// see testdata/codes.json.
//
//   - priority: Freshservice 1 Low … 4 Urgent (higher is more urgent);
//     deskrelay 1 critical … 5 planning. 4 Urgent→1, 3 High→2, 2 Medium→3,
//     1 Low→4; 5 (planning) has no Freshservice counterpart.
//   - urgency, impact: Freshservice 1 Low … 3 High; deskrelay 1 high …
//     3 low, so the scale is inverted.
//   - source → channel: the service-desk channel the ticket came through;
//     bots, alerting tools and HR workflows are mapped to the nearest
//     channel (documented in docs/connectors/freshservice.md). A custom
//     source not in the table becomes "other".
//   - status → state: lower-case labels; a custom status not in the table
//     keeps its number (or label) as the state.
func defaultTables() *tables {
	return &tables{
		priority: map[string]int{"4": 1, "urgent": 1, "3": 2, "high": 2, "2": 3, "medium": 3, "1": 4, "low": 4},
		urgency:  map[string]int{"3": 1, "high": 1, "2": 2, "medium": 2, "1": 3, "low": 3},
		impact:   map[string]int{"3": 1, "high": 1, "2": 2, "medium": 2, "1": 3, "low": 3},
		source: map[string]ticket.Channel{
			"1": ticket.ChannelEmail, "email": ticket.ChannelEmail,
			"2": ticket.ChannelPortal, "portal": ticket.ChannelPortal,
			"3": ticket.ChannelPhone, "phone": ticket.ChannelPhone,
			"4": ticket.ChannelChat, "chat": ticket.ChannelChat,
			"5": ticket.ChannelPortal, "feedback widget": ticket.ChannelPortal,
			"6": ticket.ChannelChat, "yammer": ticket.ChannelChat,
			"7": ticket.ChannelOther, "aws cloudwatch": ticket.ChannelOther,
			"8": ticket.ChannelOther, "pagerduty": ticket.ChannelOther,
			"9": ticket.ChannelWalkIn, "walkup": ticket.ChannelWalkIn,
			"10": ticket.ChannelChat, "slack": ticket.ChannelChat,
			"11": ticket.ChannelVirtualAgent, "chatbot": ticket.ChannelVirtualAgent,
			"12": ticket.ChannelChat, "workplace": ticket.ChannelChat,
			"13": ticket.ChannelPortal, "employee onboarding": ticket.ChannelPortal,
			"14": ticket.ChannelOther, "alerts": ticket.ChannelOther,
			"15": ticket.ChannelChat, "ms teams": ticket.ChannelChat,
			"18": ticket.ChannelPortal, "employee offboarding": ticket.ChannelPortal,
		},
		status: map[string]string{
			"2": "open", "open": "open",
			"3": "pending", "pending": "pending",
			"4": "resolved", "resolved": "resolved",
			"5": "closed", "closed": "closed",
		},
	}
}

// tableKey is how a vendor value is looked up: trimmed, lower case.
func tableKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// newTables returns the default tables with the overrides of a config
// applied: over[field][vendor code or label] = deskrelay value. path makes
// a config key path.
func newTables(over map[string]map[string]string, path func(string) string) (*tables, config.Errors) {
	t := defaultTables()
	var errs config.Errors
	for _, field := range slices.Sorted(maps.Keys(over)) {
		for _, from := range slices.Sorted(maps.Keys(over[field])) {
			to, key := strings.TrimSpace(over[field][from]), tableKey(from)
			p := path(field + "." + from)
			if key == "" {
				errs = append(errs, config.Errorf(path(field), "has an empty Freshservice code; use the number (4) or the label (Urgent)"))
				continue
			}
			var err error
			switch field {
			case "priority":
				err = setInt(t.priority, key, to, 5, "a priority; use 1 (critical) to 5 (planning)")
			case "urgency":
				err = setInt(t.urgency, key, to, 3, "an urgency; use 1 (high) to 3 (low)")
			case "impact":
				err = setInt(t.impact, key, to, 3, "an impact; use 1 (high) to 3 (low)")
			case "source":
				var c ticket.Channel
				if c, err = ticket.ParseChannel(to); err == nil {
					t.source[key] = c
				}
			case "status":
				if to == "" {
					err = fmt.Errorf("must name a state, such as open")
				} else {
					t.status[key] = to
				}
			}
			if err != nil {
				errs = append(errs, config.Errorf(p, "%v", err))
			}
		}
	}
	return t, errs
}

func setInt(m map[string]int, key, to string, top int, what string) error {
	n, err := strconv.Atoi(to)
	if err != nil || n < 1 || n > top {
		return fmt.Errorf("%q is not %s", to, what)
	}
	m[key] = n
	return nil
}
