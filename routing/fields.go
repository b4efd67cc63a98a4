package routing

import (
	"strings"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// fieldID names a field a matcher can test. Route reads fields through a
// switch on the id rather than through func values, so that the per-call
// state never escapes to the heap.
type fieldID uint8

const (
	fTicketID fieldID = iota + 1
	fTicketSource
	fTicketNumber
	fTicketTitle
	fTicketDescription
	fCallerID
	fCallerEmail
	fCallerName
	fTicketChannel
	fTicketCategory
	fTicketSubcategory
	fTicketImpact
	fTicketUrgency
	fTicketPriority
	fTicketState
	fTicketAssignmentGroup
	fTicketAssignedTo
	fTicketConfigurationItem
	fTicketTags
	fProfileName
	fProfileSource
	fProfileConfidence
	fProfileCompetence
	fProfileAttitude
	fProfileFamiliarGroup
	fProfileFamiliarAgent
)

// kind is what a field holds, which decides the operators it accepts.
type kind uint8

const (
	kindText   kind = iota + 1 // free text
	kindEnum                   // text from a closed set, checked at New
	kindNumber                 // compared as float64; may be absent
	kindList                   // list of text (tags)
)

// field describes one matcher field.
type field struct {
	name string
	id   fieldID
	kind kind
	// what says what the field holds, for error messages.
	what string
	// whole is set for numbers that are integers (impact, urgency, priority).
	whole bool
	// parse checks and normalises a wanted value of an enum field.
	parse func(string) (string, error)
}

// fields lists every matcher field in documentation order.
var fields = []*field{
	{name: "ticket.id", id: fTicketID, kind: kindText, what: "text"},
	{name: "ticket.source", id: fTicketSource, kind: kindText, what: "text"},
	{name: "ticket.number", id: fTicketNumber, kind: kindText, what: "text"},
	{name: "ticket.title", id: fTicketTitle, kind: kindText, what: "text"},
	{name: "ticket.description", id: fTicketDescription, kind: kindText, what: "text"},
	{name: "ticket.caller.id", id: fCallerID, kind: kindText, what: "text"},
	{name: "ticket.caller.email", id: fCallerEmail, kind: kindText, what: "text"},
	{name: "ticket.caller.name", id: fCallerName, kind: kindText, what: "text"},
	{name: "ticket.channel", id: fTicketChannel, kind: kindEnum, what: "a channel", parse: parseChannel},
	{name: "ticket.category", id: fTicketCategory, kind: kindText, what: "text"},
	{name: "ticket.subcategory", id: fTicketSubcategory, kind: kindText, what: "text"},
	{name: "ticket.impact", id: fTicketImpact, kind: kindNumber, what: "a number", whole: true},
	{name: "ticket.urgency", id: fTicketUrgency, kind: kindNumber, what: "a number", whole: true},
	{name: "ticket.priority", id: fTicketPriority, kind: kindNumber, what: "a number", whole: true},
	{name: "ticket.state", id: fTicketState, kind: kindText, what: "text"},
	{name: "ticket.assignment_group", id: fTicketAssignmentGroup, kind: kindText, what: "text"},
	{name: "ticket.assigned_to", id: fTicketAssignedTo, kind: kindText, what: "text"},
	{name: "ticket.configuration_item", id: fTicketConfigurationItem, kind: kindText, what: "text"},
	{name: "ticket.tags", id: fTicketTags, kind: kindList, what: "a list of tags"},
	{name: "profile.name", id: fProfileName, kind: kindEnum, what: "a profile name", parse: parseProfile},
	{name: "profile.source", id: fProfileSource, kind: kindText, what: "text"},
	{name: "profile.confidence", id: fProfileConfidence, kind: kindNumber, what: "a number"},
	{name: "profile.competence", id: fProfileCompetence, kind: kindNumber, what: "a number"},
	{name: "profile.attitude", id: fProfileAttitude, kind: kindNumber, what: "a number"},
	{name: "profile.familiar_group", id: fProfileFamiliarGroup, kind: kindText, what: "text"},
	{name: "profile.familiar_agent", id: fProfileFamiliarAgent, kind: kindText, what: "text"},
}

// fieldsByName indexes fields, plus the alias "profile" for profile.name.
var fieldsByName = func() map[string]*field {
	m := make(map[string]*field, len(fields)+1)
	for _, f := range fields {
		m[f.name] = f
	}
	m["profile"] = m["profile.name"]
	return m
}()

func parseChannel(s string) (string, error) {
	c, err := ticket.ParseChannel(s)
	return string(c), err
}

func parseProfile(s string) (string, error) {
	p, err := ticket.ParseProfileName(s)
	return string(p), err
}

// input is what one Route call matches against. It lives on the caller's
// stack; CEL gets its own activation (see when.go).
type input struct {
	tk   *ticket.Ticket
	p    *ticket.Profile
	prio int // effective priority before adjustments
	act  *activation
}

// text returns a text or enum field.
func (in *input) text(id fieldID) string {
	switch id {
	case fTicketID:
		return in.tk.ID
	case fTicketSource:
		return in.tk.Source
	case fTicketNumber:
		return in.tk.Number
	case fTicketTitle:
		return in.tk.Title
	case fTicketDescription:
		return in.tk.Description
	case fCallerID:
		return in.tk.Caller.ID
	case fCallerEmail:
		return in.tk.Caller.Email
	case fCallerName:
		return in.tk.Caller.Name
	case fTicketChannel:
		return string(in.tk.Channel)
	case fTicketCategory:
		return in.tk.Category
	case fTicketSubcategory:
		return in.tk.Subcategory
	case fTicketState:
		return in.tk.State
	case fTicketAssignmentGroup:
		return in.tk.AssignmentGroup
	case fTicketAssignedTo:
		return in.tk.AssignedTo
	case fTicketConfigurationItem:
		return in.tk.ConfigurationItem
	case fProfileName:
		return string(in.p.Name)
	case fProfileSource:
		return in.p.Source
	case fProfileFamiliarGroup:
		return in.p.FamiliarGroup
	case fProfileFamiliarAgent:
		return in.p.FamiliarAgent
	}
	return ""
}

// num returns a number field; ok is false when the ticket or profile does
// not have it (impact or urgency 0, no competence or attitude score).
func (in *input) num(id fieldID) (v float64, ok bool) {
	switch id {
	case fTicketImpact:
		return float64(in.tk.Impact), in.tk.Impact != 0
	case fTicketUrgency:
		return float64(in.tk.Urgency), in.tk.Urgency != 0
	case fTicketPriority:
		return float64(in.prio), true
	case fProfileConfidence:
		return in.p.Confidence, true
	case fProfileCompetence:
		if in.p.Competence == nil {
			return 0, false
		}
		return *in.p.Competence, true
	case fProfileAttitude:
		if in.p.Attitude == nil {
			return 0, false
		}
		return *in.p.Attitude, true
	}
	return 0, false
}

// list returns a list field.
func (in *input) list(id fieldID) []string {
	if id == fTicketTags {
		return in.tk.Tags
	}
	return nil
}

// suggest returns the known name closest to s, or "" when none is close.
// A bare ticket or profile field name ("category") suggests its full name.
func suggest(s string, names []string) string {
	for _, prefix := range []string{"ticket.", "profile."} {
		if !strings.HasPrefix(s, prefix) {
			for _, n := range names {
				if n == prefix+s {
					return n
				}
			}
		}
	}
	return config.Suggest(s, names)
}

func fieldNames() []string {
	names := make([]string, 0, len(fields)+1)
	for _, f := range fields {
		names = append(names, f.name)
	}
	return append(names, "profile")
}
