// Package routing owns deskrelay's rule tree: it decides, for a normalised
// ticket and its caller's profile, the support tier, the channel, the
// priority and the hints, and records which rules decided.
//
// The tree comes from the routing section of the configuration. [New]
// compiles it once: matchers ("ticket.category in (hardware, network)") are
// parsed, regexes anchored and compiled, when expressions (CEL over ticket
// and profile) type-checked, and every problem is reported at once as
// [config.Errors] with key paths. The resulting [Tree] is immutable and
// [Tree.Route] is a pure function of its arguments, cheap enough for the hot
// path; [Tree.Explain] traces the same decision for people, and
// [ParseCases] with [RunCases] keep a routing configuration under test.
//
// Matching follows Prometheus Alertmanager's route tree: depth-first, left
// to right; a route matches when all its matchers and its when expression
// hold, then its children are tried; among siblings the first match stops
// the search unless it has continue. The decision folds the settings of
// every matched route, root first: the last tier and channel set win (so a
// child inherits its parent's), priority adjustments add up, do and avoid
// hints append and other hints override.
//
// # Matchers
//
// A matcher is "field op value". Operators: = != =~ !~ (regexes, anchored
// as ^(?:…)$), in and not in with a list (a, b) or [a, b], and on numbers
// < <= > >=. Values may be quoted "…" with Go escapes; unquoted ones run to
// the end of the matcher, blanks trimmed. Text comparison is exact and
// case-sensitive; use (?i) in a regex to ignore case.
//
// Fields: ticket.id, ticket.source, ticket.number, ticket.title,
// ticket.description, ticket.caller.id, ticket.caller.email,
// ticket.caller.name, ticket.channel (a channel name), ticket.category,
// ticket.subcategory, ticket.impact, ticket.urgency, ticket.priority,
// ticket.state, ticket.assignment_group, ticket.configuration_item,
// ticket.tags, profile.name (a profile name; "profile" alone is an alias),
// profile.source, profile.confidence, profile.competence, profile.attitude,
// profile.familiar_group, profile.familiar_agent.
//
// ticket.priority is the effective priority before adjustments: the
// ticket's own, else the priority matrix entry for its impact and urgency,
// else the default. A number that is not set (impact or urgency 0, no
// competence or attitude score) satisfies only != and not in. On
// ticket.tags, = and in hold when some tag equals a value, =~ when some tag
// matches, and !=, not in and !~ when no tag does.
//
// # When expressions
//
// when is a CEL expression of type bool over the variables ticket and
// profile, whose fields are the JSON names of [ticket.Ticket] and
// [ticket.Profile] (ticket.caller.email, profile.competence); the CEL
// strings extension is available. ticket.priority is the effective priority,
// as for matchers; an absent competence or attitude reads as 0. A when
// expression runs only when all matchers of its route hold, and at most
// 100 000 cost units (about that many operations); a runtime error fails
// Route with [ErrWhen].
//
// # Hints
//
// A decision's hints start as a deep copy of the base hints of the caller's
// profile ([WithBaseHints]; callers without one of the four profiles get
// those of [ticket.Unknown]). Each matched route's hints then apply in
// order: communication_style, language ("technical" or "plain"),
// virtual_agent, status_update_every (a Go duration) and preferred_channels
// (comma-separated channel names) replace the base value; do and avoid
// ("|"-separated) append to it; any other key is set in Hints.Extra.
//
// # Priority
//
// The effective priority is the ticket's own, else priority_matrix
// [impact-1][urgency-1] (ITIL's by default), else default_priority (4 by
// default). The priority_adjust of every matched route is added and the sum
// clamped to 1…5.
//
// # What it does not do
//
// No I/O: it does not read the configuration file, look up profiles,
// publish decisions or log. Base hints per profile come from enrichment
// through [WithBaseHints]; the caller swaps trees on reload.
package routing
