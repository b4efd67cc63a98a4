// Package jsm is the Jira Service Management (Jira Cloud) connector: admin
// webhooks signed with X-Hub-Signature, and polling with the JQL search
// endpoint (/rest/api/3/search/jql, nextPageToken paging).
//
// It owns the Jira formats (issue JSON in REST API v2 and v3 renderings,
// Atlassian Document Format), the signature check, the code tables that
// turn Jira priorities, JSM Impact/Urgency options, request types and
// statuses into the normalised ticket fields, and the poll cursor. It
// stores nothing itself: the ingress and [connectors.PollRunner] hand its
// tickets to the Sink. The vendor facts it relies on are cited next to the
// code that uses them; the operator's page is docs/connectors/jsm.md.
package jsm

import (
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/jsonpick"
	"github.com/deskrelay/deskrelay/ticket"
)

func init() {
	connectors.Register(connectors.Spec{
		Type:       "jsm",
		Summary:    "Jira Service Management (Jira Cloud): signed admin webhooks and JQL search polling",
		Options:    optionKeys,
		NewWebhook: newWebhook,
		NewPoller:  newPoller,
		Check:      check,
		Sign:       sign,
	})
}

var (
	_ connectors.Webhook  = (*webhook)(nil)
	_ connectors.Verifier = (*webhook)(nil)
	_ connectors.Poller   = (*poller)(nil)
)

// optionKeys are the Jira-specific keys of a connector block.
var optionKeys = []string{
	"jql", "time_zone", "overlap",
	"impact_field", "urgency_field", "request_type_field",
	"priority", "impact", "urgency", "channel", "default_channel", "state",
}

// pollKeys are the options only the poller reads; their errors are
// reported by newPoller, the others by newWebhook (Build calls both for a
// polled source, and each problem must be listed once).
var pollKeys = map[string]bool{"jql": true, "time_zone": true, "overlap": true}

// DefaultOverlap is how far before the newest stored update a new search
// starts. JQL compares dates to the minute ("yyyy-MM-dd HH:mm"), and search
// results can lag recent writes (SOURCES.md, Jira "Search"); one minute of
// overlap is the least that covers both.
const DefaultOverlap = time.Minute

// Default code tables. Keys are compared folded (lower case, spaces
// collapsed); config entries are merged over these.
var (
	// defaultPriority maps Jira's default priorities, by name and by id
	// (1 Highest … 5 Lowest, SOURCES.md "Priority defaults"), onto
	// priority 1 (critical) … 5 (planning). Sites can rename or add
	// priorities: add them in the priority table.
	defaultPriority = map[string]int{
		"highest": 1, "high": 2, "medium": 3, "low": 4, "lowest": 5,
		"1": 1, "2": 2, "3": 3, "4": 4, "5": 5,
	}

	// defaultImpact maps the four options of the JSM Impact field onto the
	// three ITIL levels: the extremes stay extremes, the middle two share
	// medium. A value "A / B" is also looked up by "A" alone.
	defaultImpact = map[string]int{
		"extensive / widespread": 1, "significant / large": 2,
		"moderate / limited": 2, "minor / localized": 3,
	}

	// defaultUrgency does the same for the JSM Urgency options.
	defaultUrgency = map[string]int{"critical": 1, "high": 2, "medium": 2, "low": 3}

	// defaultChannel maps request type names to channels. JSM gives every
	// customer request a request type: the form picked in the portal, or
	// the one the email channel is set to use ("Emailed request" on a new
	// site). Request types not listed get default_channel.
	defaultChannel = map[string]ticket.Channel{"emailed request": ticket.ChannelEmail}

	// defaultState maps the statuses of the JSM IT service workflows onto
	// deskrelay's state words. A status not listed falls back on its
	// status category (see categoryState), then on its own name.
	defaultState = map[string]string{
		"open": "new", "waiting for support": "new", "new": "new", "to do": "new",
		"in progress": "in_progress", "work in progress": "in_progress", "escalated": "in_progress",
		"pending": "on_hold", "waiting for customer": "on_hold", "on hold": "on_hold",
		"resolved": "resolved", "done": "resolved",
		"closed": "closed", "canceled": "canceled", "cancelled": "canceled", "declined": "canceled",
	}

	// categoryState maps Jira's three status category keys.
	categoryState = map[string]string{"new": "new", "indeterminate": "in_progress", "done": "resolved"}
)

// options are the vendor keys as written in the config.
type options struct {
	JQL              string            `mapstructure:"jql"`
	TimeZone         string            `mapstructure:"time_zone"`
	Overlap          time.Duration     `mapstructure:"overlap"`
	ImpactField      string            `mapstructure:"impact_field"`
	UrgencyField     string            `mapstructure:"urgency_field"`
	RequestTypeField string            `mapstructure:"request_type_field"`
	Priority         map[string]int    `mapstructure:"priority"`
	Impact           map[string]int    `mapstructure:"impact"`
	Urgency          map[string]int    `mapstructure:"urgency"`
	Channel          map[string]string `mapstructure:"channel"`
	DefaultChannel   string            `mapstructure:"default_channel"`
	State            map[string]string `mapstructure:"state"`
}

// settings are the checked options, with defaults applied.
type settings struct {
	jql              string
	loc              *time.Location
	overlap          time.Duration
	impactField      string
	urgencyField     string
	requestTypeField string
	priority         map[string]int
	impact           map[string]int
	urgency          map[string]int
	channel          map[string]ticket.Channel
	defaultChannel   ticket.Channel
	state            map[string]string

	// fields picks the issue fields normalize reads out of an issue's
	// fields object; slot is each one's index into what it returns.
	fields jsonpick.Plan
	slot   map[string]int
}

// fieldID is a Jira field id as used in issue JSON and the fields
// parameter: customfield_10004, or a system field such as duedate.
var fieldID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// orderBy finds an ORDER BY clause, which the poller adds itself.
var orderBy = regexp.MustCompile(`(?i)\border\s+by\b`)

// parseOptions decodes and checks src's vendor keys. It returns the
// settings (bad entries left at their defaults) and the problems, split
// into those of the shared keys and those of the poll-only keys.
func parseOptions(src connectors.Source) (*settings, config.Errors, config.Errors) {
	var o options
	var shared, poll config.Errors
	bad := func(key, format string, args ...any) {
		e := config.Errorf(src.Path(key), format, args...)
		if pollKeys[strings.SplitN(key, ".", 2)[0]] {
			poll = append(poll, e)
		} else {
			shared = append(shared, e)
		}
	}
	// Decode key by key, so that a bad value is reported at its own path.
	for _, k := range optionKeys {
		v, ok := src.Config.Options[k]
		if !ok {
			continue
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
			WeaklyTypedInput: true,
			Result:           &o,
		})
		if err != nil {
			panic(err) // a constant config: a programming error
		}
		if err := dec.Decode(map[string]any{k: v}); err != nil {
			bad(k, "%s", decodeMsg(err))
		}
	}
	s := &settings{
		jql:              strings.TrimSpace(o.JQL),
		loc:              time.UTC,
		overlap:          DefaultOverlap,
		impactField:      o.ImpactField,
		urgencyField:     o.UrgencyField,
		requestTypeField: o.RequestTypeField,
		priority:         maps.Clone(defaultPriority),
		impact:           maps.Clone(defaultImpact),
		urgency:          maps.Clone(defaultUrgency),
		channel:          maps.Clone(defaultChannel),
		defaultChannel:   ticket.ChannelPortal,
		state:            maps.Clone(defaultState),
	}
	if s.jql != "" && orderBy.MatchString(s.jql) {
		bad("jql", "must not contain ORDER BY: deskrelay appends its own (ORDER BY updated ASC, key ASC)")
	}
	if o.TimeZone != "" {
		loc, err := time.LoadLocation(o.TimeZone)
		if err != nil || o.TimeZone == "Local" {
			bad("time_zone", "%q is not an IANA time zone such as UTC or Europe/Berlin; use the time zone of the API user's Jira profile", o.TimeZone)
		} else {
			s.loc = loc
		}
	}
	if _, ok := src.Config.Options["overlap"]; ok {
		if o.Overlap < time.Minute {
			bad("overlap", "must be at least 1m: JQL compares times to the minute, got %s", o.Overlap)
		} else {
			s.overlap = o.Overlap
		}
	}
	for key, id := range map[string]string{"impact_field": o.ImpactField, "urgency_field": o.UrgencyField, "request_type_field": o.RequestTypeField} {
		if id != "" && !fieldID.MatchString(id) {
			bad(key, "%q is not a Jira field id such as customfield_10004 (see GET /rest/api/3/field)", id)
		}
	}
	for name, tab := range map[string]struct {
		in   map[string]int
		out  map[string]int
		max  int
		what string
	}{
		"priority": {o.Priority, s.priority, 5, "1 (critical) to 5 (planning)"},
		"impact":   {o.Impact, s.impact, 3, "1 (high) to 3 (low)"},
		"urgency":  {o.Urgency, s.urgency, 3, "1 (high) to 3 (low)"},
	} {
		for from, to := range tab.in {
			if to < 1 || to > tab.max {
				bad(name+"."+from, "%d is not a %s; use %s", to, name, tab.what)
				continue
			}
			tab.out[fold(from)] = to
		}
	}
	for from, to := range o.Channel {
		c, err := ticket.ParseChannel(to)
		if err != nil {
			bad("channel."+from, "%v", err)
			continue
		}
		s.channel[fold(from)] = c
	}
	if o.DefaultChannel != "" {
		c, err := ticket.ParseChannel(o.DefaultChannel)
		if err != nil {
			bad("default_channel", "%v", err)
		} else {
			s.defaultChannel = c
		}
	}
	for from, to := range o.State {
		if strings.TrimSpace(to) == "" {
			bad("state."+from, "must name a state, such as in_progress")
			continue
		}
		s.state[fold(from)] = to
	}
	shared.Sort()
	poll.Sort()
	s.planFields()
	return s, shared, poll
}

// decodeMsg shortens a mapstructure error to its message.
func decodeMsg(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error(s) decoding:\n\n* "); i >= 0 {
		msg = msg[i+len("error(s) decoding:\n\n* "):]
	}
	return strings.TrimSpace(msg)
}

// fold is the key form of a table entry or a looked-up value.
func fold(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// lookup finds v in a table, then, for a JSM option such as
// "Significant / Large", its part before the slash.
func lookup[V any](table map[string]V, v string) (V, bool) {
	if r, ok := table[fold(v)]; ok {
		return r, true
	}
	if head, _, ok := strings.Cut(v, "/"); ok {
		r, ok := table[fold(head)]
		return r, ok
	}
	var zero V
	return zero, false
}

// errorsOrNil returns es as an error, or nil.
func errorsOrNil(es config.Errors) error {
	if len(es) == 0 {
		return nil
	}
	return es
}
