// Package connectors owns how tickets enter deskrelay: the registry of
// vendor connectors, the webhook ingress at POST /webhooks/{source}, the
// authentication of webhook requests, and the [Sink] a connector stores
// normalised tickets into.
//
// A vendor is a package under connectors/ that calls [Register] from its
// init function; connectors/all links every vendor into the binary. This
// package knows nothing of NATS: the Sink is satisfied by internal/bus and
// plugged in by cmd/deskrelay.
package connectors
