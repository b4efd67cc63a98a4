package ticket

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Channel is the way a caller reaches, or is served by, the service desk.
type Channel string

// The channels deskrelay knows. A connector maps vendor codes onto these;
// anything it cannot map becomes [ChannelOther].
const (
	ChannelPortal       Channel = "portal"
	ChannelEmail        Channel = "email"
	ChannelPhone        Channel = "phone"
	ChannelChat         Channel = "chat"
	ChannelVirtualAgent Channel = "virtual_agent"
	ChannelWalkIn       Channel = "walk_in"
	ChannelOther        Channel = "other"
)

// Channels lists every valid channel, in documentation order.
var Channels = []Channel{ChannelPortal, ChannelEmail, ChannelPhone, ChannelChat, ChannelVirtualAgent, ChannelWalkIn, ChannelOther}

// Valid reports whether c is one of [Channels].
func (c Channel) Valid() bool {
	for _, k := range Channels {
		if c == k {
			return true
		}
	}
	return false
}

// ParseChannel returns the channel named s (case-insensitive, "-" and " "
// read as "_"), or an error listing the valid names.
func ParseChannel(s string) (Channel, error) {
	c := Channel(strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"), " ", "_"))
	if c.Valid() {
		return c, nil
	}
	return "", fmt.Errorf("%q is not a channel; use one of %s", s, joinNames(Channels))
}

// Caller identifies the person the ticket is for. Any one field may be
// empty; the profile lookup uses ID and Email.
type Caller struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Ticket is the normalised form of an ITSM record. ID, Source and Title are
// required; Impact and Urgency are 1 (high) … 3 (low) and Priority is
// 1 (critical) … 5 (planning), 0 meaning "not given by the source".
type Ticket struct {
	ID              string  `json:"id"`
	Source          string  `json:"source"`
	Number          string  `json:"number,omitempty"`
	Title           string  `json:"title"`
	Description     string  `json:"description,omitempty"`
	Caller          Caller  `json:"caller"`
	Channel         Channel `json:"channel,omitempty"`
	Category        string  `json:"category,omitempty"`
	Subcategory     string  `json:"subcategory,omitempty"`
	Impact          int     `json:"impact,omitempty"`
	Urgency         int     `json:"urgency,omitempty"`
	Priority        int     `json:"priority,omitempty"`
	State           string  `json:"state,omitempty"`
	AssignmentGroup string  `json:"assignment_group,omitempty"`
	// AssignedTo is the agent the ticket is assigned to, as the source
	// names them (a name where it gives one, else its id).
	AssignedTo        string    `json:"assigned_to,omitempty"`
	ConfigurationItem string    `json:"configuration_item,omitempty"`
	OpenedAt          time.Time `json:"opened_at,omitzero"`
	UpdatedAt         time.Time `json:"updated_at,omitzero"`
	// Version is the source's revision counter of the record, when it has
	// one (ServiceNow's sys_mod_count); with UpdatedAt it tells versions
	// apart that were saved within the same second.
	Version string          `json:"version,omitempty"`
	Tags    []string        `json:"tags,omitempty"`
	Raw     json.RawMessage `json:"raw,omitempty"`
}

// FieldError says which field of a ticket is wrong and why. Field is the
// JSON name ("caller.email").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ValidationError holds every problem Validate found, in field order.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid ticket: " + strings.Join(parts, "; ")
}

// Validate checks the required fields and the ranges of the coded ones. The
// error, if any, is a *[ValidationError] naming every bad field.
func (t *Ticket) Validate() error {
	var errs []*FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case strings.TrimSpace(t.ID) == "":
		bad("id", "is required")
	case len(t.ID) > 256:
		bad("id", "is longer than 256 bytes")
	case strings.TrimSpace(t.ID) != t.ID:
		bad("id", "%q has leading or trailing spaces", t.ID)
	case strings.ContainsFunc(t.ID, unicode.IsControl) || !utf8.ValidString(t.ID):
		bad("id", "%q holds control characters or invalid UTF-8", t.ID)
	}
	if strings.ContainsFunc(t.Version, unicode.IsControl) || len(t.Version) > 64 {
		bad("version", "must be at most 64 printable characters")
	}
	for _, tf := range []struct {
		name string
		v    time.Time
	}{{"opened_at", t.OpenedAt}, {"updated_at", t.UpdatedAt}} {
		if !tf.v.IsZero() && (tf.v.Year() < 1970 || tf.v.Year() > 9999) {
			bad(tf.name, "%s is not a plausible time (year 1970 to 9999)", tf.v.UTC().Format(time.RFC3339))
		}
	}
	if strings.TrimSpace(t.Source) == "" {
		bad("source", "is required")
	}
	if strings.TrimSpace(t.Title) == "" {
		bad("title", "is required")
	}
	if t.Channel != "" && !t.Channel.Valid() {
		bad("channel", "%q is not a channel; use one of %s", t.Channel, joinNames(Channels))
	}
	if t.Impact != 0 && (t.Impact < 1 || t.Impact > 3) {
		bad("impact", "%d is out of range; use 1 (high) to 3 (low)", t.Impact)
	}
	if t.Urgency != 0 && (t.Urgency < 1 || t.Urgency > 3) {
		bad("urgency", "%d is out of range; use 1 (high) to 3 (low)", t.Urgency)
	}
	if t.Priority != 0 && (t.Priority < 1 || t.Priority > 5) {
		bad("priority", "%d is out of range; use 1 (critical) to 5 (planning)", t.Priority)
	}
	if len(errs) > 0 {
		return &ValidationError{Fields: errs}
	}
	return nil
}

// MsgID is the de-duplication key of this version of the ticket: source,
// id, update time and, when the source has one, its revision counter. The
// same version of a record, whether it came by webhook or by poll, has the
// same key. A ticket without an update time is keyed by a hash of its
// normalised fields (not of its raw payload, whose envelope may differ
// between retries of one event).
func (t *Ticket) MsgID() string {
	if !t.UpdatedAt.IsZero() {
		id := t.Source + ":" + t.ID + ":" + t.UpdatedAt.UTC().Format(time.RFC3339Nano)
		if t.Version != "" {
			id += ":" + t.Version
		}
		return id
	}
	c := *t
	c.Raw = nil
	body, _ := json.Marshal(&c)
	sum := sha256.Sum256(body)
	return t.Source + ":" + t.ID + ":sha256-" + hex.EncodeToString(sum[:12])
}

// ErrNotTicket is returned by Decode for a payload that is not a JSON object.
var ErrNotTicket = errors.New("not a ticket JSON object")

// Decode parses a normalised ticket as published on the ingest subject and
// validates it.
func Decode(data []byte) (Ticket, error) {
	t, ok := DecodeFast(data)
	if !ok {
		if err := jsonv1.Unmarshal(data, &t); err != nil {
			return Ticket{}, fmt.Errorf("%w: %w", ErrNotTicket, err)
		}
	}
	if err := t.Validate(); err != nil {
		return t, err
	}
	return t, nil
}

func joinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// MappableFields are the fields a connector's mapping may set, by their
// JSON names ("caller.email" for a caller's): every field but source,
// which is the configured connector's name, and raw.
var MappableFields = []string{
	"id", "number", "title", "description", "caller.id", "caller.email", "caller.name",
	"channel", "category", "subcategory", "impact", "urgency", "priority", "state",
	"assignment_group", "assigned_to", "configuration_item", "opened_at", "updated_at", "version", "tags",
}

// TextField returns the plain text field of t named by its JSON name (one
// of [MappableFields]), or nil for a field that needs parsing (channel,
// impact, urgency, priority, the times, tags) or an unknown name.
func (t *Ticket) TextField(name string) *string {
	switch name {
	case "id":
		return &t.ID
	case "number":
		return &t.Number
	case "title":
		return &t.Title
	case "description":
		return &t.Description
	case "caller.id":
		return &t.Caller.ID
	case "caller.email":
		return &t.Caller.Email
	case "caller.name":
		return &t.Caller.Name
	case "category":
		return &t.Category
	case "subcategory":
		return &t.Subcategory
	case "state":
		return &t.State
	case "assignment_group":
		return &t.AssignmentGroup
	case "assigned_to":
		return &t.AssignedTo
	case "configuration_item":
		return &t.ConfigurationItem
	case "version":
		return &t.Version
	}
	return nil
}
