// Package ticket holds deskrelay's public contract types: the normalised
// Ticket every connector produces, the caller's Profile, the routing
// Decision and the versioned Routed and DeadLetter messages published on
// NATS. Downstream Go consumers import this package to decode what they
// receive; it imports nothing else of deskrelay.
//
// The wire format is JSON with snake_case keys. Adding an optional field is
// backwards compatible; renaming or removing one changes [RoutedSchema].
// deskrelay writes that format with [Routed.AppendJSON] and
// [Ticket.AppendJSON] and reads the usual shape of a ticket with
// [DecodeFast], without reflection: a field added to the types must be
// added to both (TestAppendJSONCoversEveryField fails until it is written;
// DecodeFast leaves a ticket with the new member to the full decoder).
package ticket
