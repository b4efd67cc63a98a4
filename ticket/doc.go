// Package ticket holds deskrelay's public contract types: the normalised
// Ticket every connector produces, the caller's Profile, the routing
// Decision and the versioned Routed and DeadLetter messages published on
// NATS. Downstream Go consumers import this package to decode what they
// receive; it imports nothing else of deskrelay.
//
// The wire format is JSON with snake_case keys. Adding an optional field is
// backwards compatible; renaming or removing one changes [RoutedSchema].
package ticket
