package ticket

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// RoutedSchema names the version of [Routed]. It changes whenever a field of
// the routed message is renamed, removed or changes meaning.
const RoutedSchema = "deskrelay.routed/v1"

// DeadLetterSchema names the version of [DeadLetter].
const DeadLetterSchema = "deskrelay.dlq/v1"

// Headers set on every routed message, repeating the fields consumers filter
// on so that they need not decode the body.
const (
	HeaderSchema   = "Deskrelay-Schema"
	HeaderTicketID = "Deskrelay-Ticket-Id"
	HeaderSource   = "Deskrelay-Source"
	HeaderProfile  = "Deskrelay-Profile"
	HeaderTier     = "Deskrelay-Tier"
	HeaderChannel  = "Deskrelay-Channel"
	HeaderPriority = "Deskrelay-Priority"
	HeaderReason   = "Deskrelay-Reason"
)

// RoutedHeaders returns the names of the headers every routed message
// carries: schema, ticket id, source, profile, tier, channel, priority.
func RoutedHeaders() [7]string {
	return [...]string{HeaderSchema, HeaderTicketID, HeaderSource, HeaderProfile, HeaderTier, HeaderChannel, HeaderPriority}
}

// ProfileName is one of the four behavioural IT profiles, or unknown.
type ProfileName string

// The profile names, as they appear in config, messages and headers.
const (
	Doer        ProfileName = "doer"
	Prioritizer ProfileName = "prioritizer"
	Trier       ProfileName = "trier"
	Supported   ProfileName = "supported"
	Unknown     ProfileName = "unknown"
)

// ProfileNames lists every profile name, unknown last.
var ProfileNames = []ProfileName{Doer, Prioritizer, Trier, Supported, Unknown}

// ParseProfileName returns the profile named s (case-insensitive).
func ParseProfileName(s string) (ProfileName, error) {
	p := ProfileName(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range ProfileNames {
		if p == k {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q is not a profile; use one of %s", s, joinNames(ProfileNames))
}

// Profile is what deskrelay knows of the caller's IT behaviour. Competence
// and Attitude are normalised to 0…1 (attitude 1 = "I fix it myself") when
// the source gave scores. Source names where the profile came from
// ("directory", "none", …) and Reason explains an unknown profile.
type Profile struct {
	Name       ProfileName `json:"name"`
	Source     string      `json:"source"`
	Confidence float64     `json:"confidence"`
	Competence *float64    `json:"competence,omitempty"`
	Attitude   *float64    `json:"attitude,omitempty"`
	Reason     string      `json:"reason,omitempty"`
	// At is when the source's knowledge dates from: when the directory
	// value was written or the survey answered, or when a live source
	// (user record, HTTP lookup, inference) was asked.
	At time.Time `json:"at,omitzero"`
	// FamiliarGroup and FamiliarAgent are who resolved most of this
	// caller's earlier tickets, when deskrelay remembers it (profiles.familiar).
	FamiliarGroup string `json:"familiar_group,omitempty"`
	FamiliarAgent string `json:"familiar_agent,omitempty"`
}

// Tier is the support level that should serve a ticket.
type Tier string

// The support tiers.
const (
	TierL1       Tier = "l1"
	TierL2       Tier = "l2"
	TierL3       Tier = "l3"
	TierDesktop  Tier = "desktop"
	TierTeamLead Tier = "teamlead"
)

// Tiers lists every tier.
var Tiers = []Tier{TierL1, TierL2, TierL3, TierDesktop, TierTeamLead}

// ParseTier returns the tier named s (case-insensitive).
func ParseTier(s string) (Tier, error) {
	t := Tier(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Tiers {
		if t == k {
			return t, nil
		}
	}
	return "", fmt.Errorf("%q is not a tier; use one of %s", s, joinNames(Tiers))
}

// Hints tell the agent, human or virtual, how to serve this caller.
type Hints struct {
	// CommunicationStyle is a short instruction on tone and vocabulary.
	CommunicationStyle string `json:"communication_style,omitempty"`
	// Language is "technical" (IT terms welcome) or "plain" (everyday words).
	Language string `json:"language,omitempty"`
	// PreferredChannels are the channels this caller is best served on, best first.
	PreferredChannels []Channel `json:"preferred_channels,omitempty"`
	// Do and Avoid list what helps and what frustrates this caller.
	Do    []string `json:"do,omitempty"`
	Avoid []string `json:"avoid,omitempty"`
	// StatusUpdateEvery is the longest the caller should go without news, as
	// a Go duration string ("4h").
	StatusUpdateEvery string `json:"status_update_every,omitempty"`
	// VirtualAgent says how a virtual agent should behave: "knowledge_links",
	// "solve_in_session", "guided_steps" or "handoff_to_human".
	VirtualAgent string `json:"virtual_agent,omitempty"`
	// Extra holds the hints added by routing rules, as key → value.
	Extra map[string]string `json:"extra,omitempty"`
}

// Routing is the decision: who serves the ticket, where and how urgently,
// and which rules decided it (root first).
type Routing struct {
	Tier     Tier     `json:"tier"`
	Channel  Channel  `json:"channel"`
	Priority int      `json:"priority"`
	Rules    []string `json:"rules"`
	Hints    Hints    `json:"hints"`
}

// Routed is the message published on <prefix>.routed.<tier>.<channel>.
type Routed struct {
	Schema   string    `json:"schema"`
	Ticket   Ticket    `json:"ticket"`
	Profile  Profile   `json:"profile"`
	Routing  Routing   `json:"routing"`
	RoutedAt time.Time `json:"routed_at"`
}

// DeadLetter is the message published on <prefix>.dlq.<reason> for input
// that could not be normalised, enriched or routed. The original bytes are
// in Payload when they are valid JSON, else in PayloadBase64; use
// [DeadLetter.SetPayload] to fill the right one.
type DeadLetter struct {
	Schema        string          `json:"schema"`
	Reason        string          `json:"reason"`
	Error         string          `json:"error"`
	Source        string          `json:"source,omitempty"`
	TicketID      string          `json:"ticket_id,omitempty"`
	Subject       string          `json:"subject,omitempty"`
	Deliveries    int             `json:"deliveries,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 []byte          `json:"payload_base64,omitempty"`
	// IngestStream and IngestSeq locate the original message in the ingest
	// stream (kept there until its max_age), when it came from there. When
	// the payload was too large for a dead letter, PayloadOmitted is true
	// and this is the only way to it.
	IngestStream   string    `json:"ingest_stream,omitempty"`
	IngestSeq      uint64    `json:"ingest_seq,omitempty"`
	PayloadOmitted bool      `json:"payload_omitted,omitempty"`
	FailedAt       time.Time `json:"failed_at"`
}

// DLQ reasons: the last token of the dead-letter subject.
const (
	ReasonDecode     = "decode"      // payload is not a ticket
	ReasonInvalid    = "invalid"     // ticket fails validation
	ReasonEnrichment = "enrichment"  // profile lookup failed for good
	ReasonRouting    = "routing"     // no rule could decide
	ReasonMaxDeliver = "max_deliver" // gave up after the configured attempts
)

// Reasons lists the DLQ reasons.
var Reasons = []string{ReasonDecode, ReasonInvalid, ReasonEnrichment, ReasonRouting, ReasonMaxDeliver}

// SetPayload stores the original bytes: as JSON when they are valid JSON,
// otherwise base64-encoded.
func (d *DeadLetter) SetPayload(b []byte) {
	if json.Valid(b) {
		d.Payload, d.PayloadBase64 = json.RawMessage(b), nil
		return
	}
	d.Payload, d.PayloadBase64 = nil, b
}
