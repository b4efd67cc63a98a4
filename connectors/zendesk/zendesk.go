// Package zendesk is the Zendesk Support connector: signed webhooks (event
// subscriptions and trigger/automation webhooks) and polling of the
// cursor-based Incremental Ticket Export.
//
// It owns the Zendesk formats, the X-Zendesk-Webhook-Signature check, the
// code tables that turn Zendesk values into the normalised ticket fields,
// and the export cursor. It does not store anything: the ingress and
// [connectors.PollRunner] hand its tickets to the Sink. The vendor facts it
// relies on are cited next to the code that uses them; the operator's page
// is docs/connectors/zendesk.md.
package zendesk

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-viper/mapstructure/v2"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

func init() {
	connectors.Register(connectors.Spec{
		Type:       "zendesk",
		Summary:    "Zendesk Support: signed webhooks and incremental ticket export polling",
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

// optionKeys are the Zendesk-specific keys of a connector block.
var optionKeys = []string{
	"replay_window", "priority", "channel", "state", "impact", "urgency",
	"groups", "include_deleted", "sideload_users", "requests_per_minute",
}

// DefaultRequestsPerMinute paces the incremental export: Zendesk allows 10
// requests per minute on the incremental export endpoints
// (developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports,
// "Rate limits").
const DefaultRequestsPerMinute = 10

// Default code tables. Keys are compared after [key] folding, so "Web Form"
// (a trigger placeholder's rendering) and "web_form" (an event's
// via.channel) are the same entry. Config entries are merged over these.
var (
	// defaultPriority maps the REST ticket priorities (urgent, high,
	// normal, low; events send them upper-case) to priority 1…5.
	defaultPriority = map[string]int{"urgent": 1, "high": 2, "normal": 3, "low": 4}

	// defaultChannel maps via.channel values to channels; anything not
	// listed becomes "other".
	defaultChannel = map[string]ticket.Channel{
		"web": ticket.ChannelPortal, "web_form": ticket.ChannelPortal, "web_widget": ticket.ChannelPortal,
		"help_center": ticket.ChannelPortal, "mobile": ticket.ChannelPortal, "mobile_sdk": ticket.ChannelPortal,
		"email": ticket.ChannelEmail, "mail": ticket.ChannelEmail,
		"voice": ticket.ChannelPhone, "phone": ticket.ChannelPhone, "voicemail": ticket.ChannelPhone,
		"phone_call_inbound": ticket.ChannelPhone, "phone_call_incoming": ticket.ChannelPhone,
		"chat": ticket.ChannelChat, "chat_transcript": ticket.ChannelChat,
		"native_messaging": ticket.ChannelChat, "messaging": ticket.ChannelChat,
		"answer_bot": ticket.ChannelVirtualAgent, "ai_agent": ticket.ChannelVirtualAgent,
	}

	// defaultState keeps Zendesk's status names; a table renames them.
	defaultState = map[string]string{
		"new": "new", "open": "open", "pending": "pending", "hold": "hold",
		"solved": "solved", "closed": "closed", "deleted": "deleted",
	}
)

// options are the decoded vendor keys of one source.
type options struct {
	ReplayWindow      time.Duration
	Priority          map[string]int
	Channel           map[string]string
	State             map[string]string
	Impact            fieldTable
	Urgency           fieldTable
	Groups            map[string]string
	IncludeDeleted    bool
	SideloadUsers     bool
	RequestsPerMinute int
}

// fieldTable reads impact or urgency from a ticket custom field: Zendesk
// has neither natively.
type fieldTable struct {
	Field  int64          `mapstructure:"field"`
	Values map[string]int `mapstructure:"values"`
}

// codes are the merged code tables shared by the webhook and the poller.
type codes struct {
	priority map[string]int
	channel  map[string]ticket.Channel
	state    map[string]string
	impact   fieldTable
	urgency  fieldTable
	groups   map[string]string
}

// parseOptions decodes and checks the vendor keys of src; every problem is
// reported, by key path.
func parseOptions(src connectors.Source) (options, codes, error) {
	o := options{ReplayWindow: connectors.DefaultReplayWindow, SideloadUsers: true, RequestsPerMinute: DefaultRequestsPerMinute}
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(src.Path(key), format, args...))
	}
	decode := func(key string, out any) {
		v, ok := src.Config.Options[key]
		if !ok || v == nil {
			return
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
			WeaklyTypedInput: true,
			ErrorUnused:      true,
			Result:           out,
		})
		if err == nil {
			err = dec.Decode(v)
		}
		if err != nil {
			bad(key, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	decode("replay_window", &o.ReplayWindow)
	decode("priority", &o.Priority)
	decode("channel", &o.Channel)
	decode("state", &o.State)
	decode("impact", &o.Impact)
	decode("urgency", &o.Urgency)
	decode("groups", &o.Groups)
	decode("include_deleted", &o.IncludeDeleted)
	decode("sideload_users", &o.SideloadUsers)
	decode("requests_per_minute", &o.RequestsPerMinute)

	if o.ReplayWindow <= 0 {
		bad("replay_window", "must be positive, got %s", o.ReplayWindow)
	}
	if o.RequestsPerMinute < 0 {
		bad("requests_per_minute", "must be 0 (no pacing) or more, got %d", o.RequestsPerMinute)
	}
	c := codes{
		priority: maps.Clone(defaultPriority),
		channel:  maps.Clone(defaultChannel),
		state:    maps.Clone(defaultState),
		groups:   map[string]string{},
	}
	for _, k := range slices.Sorted(maps.Keys(o.Priority)) {
		v := o.Priority[k]
		if v < 1 || v > 5 {
			bad("priority."+k, "%d is not a priority; use 1 (critical) to 5 (planning)", v)
		}
		c.priority[key(k)] = v
	}
	for _, k := range slices.Sorted(maps.Keys(o.Channel)) {
		ch, err := ticket.ParseChannel(o.Channel[k])
		if err != nil {
			bad("channel."+k, "%v", err)
		}
		c.channel[key(k)] = ch
	}
	for _, k := range slices.Sorted(maps.Keys(o.State)) {
		if strings.TrimSpace(o.State[k]) == "" {
			bad("state."+k, "must name a state, not be empty")
		}
		c.state[key(k)] = o.State[k]
	}
	for _, k := range slices.Sorted(maps.Keys(o.Groups)) {
		if strings.TrimSpace(o.Groups[k]) == "" {
			bad("groups."+k, "must name the group, not be empty")
		}
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			bad("groups."+k, "%q is not a Zendesk group id (a number)", k)
		}
		c.groups[k] = o.Groups[k]
	}
	for name, ft := range map[string]*fieldTable{"impact": &o.Impact, "urgency": &o.Urgency} {
		if len(ft.Values) > 0 && ft.Field <= 0 {
			bad(name+".field", "is required with %s.values: the id of the ticket field that holds the %s", name, name)
		}
		if ft.Field > 0 && len(ft.Values) == 0 {
			bad(name+".values", "is required with %s.field: map each option value of the field to 1 (high) … 3 (low)", name)
		}
		folded := map[string]int{}
		for _, k := range slices.Sorted(maps.Keys(ft.Values)) {
			if v := ft.Values[k]; v < 1 || v > 3 {
				bad(name+".values."+k, "%d is out of range; use 1 (high) to 3 (low)", v)
			}
			folded[key(k)] = ft.Values[k]
		}
		ft.Values = folded
	}
	c.impact, c.urgency = o.Impact, o.Urgency
	if len(errs) > 0 {
		return o, c, errs
	}
	return o, c, nil
}

// key folds a Zendesk code for table lookup: lower case, and every run of
// characters other than letters and digits becomes one "_" ("Phone call
// (incoming)" → "phone_call_incoming").
func key(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		under = true
	}
	return b.String()
}

// priorityOf maps a Zendesk priority; an unknown or empty one is 0 (not
// given), so that routing falls back to its default.
func (c *codes) priorityOf(s string) int { return c.priority[key(s)] }

// channelOf maps a via channel; an unknown one is "other", an empty one
// is left empty.
func (c *codes) channelOf(s string) ticket.Channel {
	k := key(s)
	if k == "" {
		return ""
	}
	if ch, ok := c.channel[k]; ok {
		return ch
	}
	return ticket.ChannelOther
}

// stateOf maps a status through the state table, keeping unknown ones
// folded.
func (c *codes) stateOf(s string) string {
	k := key(s)
	if v, ok := c.state[k]; ok {
		return v
	}
	return k
}

// groupOf names a group id from the groups table, or keeps the id.
func (c *codes) groupOf(id string) string {
	if n, ok := c.groups[id]; ok {
		return n
	}
	return id
}

// title is the ticket title: Zendesk's subject, or (subjects are optional
// when the subject field is hidden) the first line of the description, or
// "Zendesk ticket <id>".
func title(subject, description, id string) string {
	if s := strings.TrimSpace(subject); s != "" {
		return s
	}
	line, _, _ := strings.Cut(strings.TrimSpace(description), "\n")
	if line = strings.TrimSpace(line); line != "" {
		if r := []rune(line); len(r) > 120 {
			line = string(r[:120]) + "…"
		}
		return line
	}
	return fmt.Sprintf("Zendesk ticket %s", id)
}
