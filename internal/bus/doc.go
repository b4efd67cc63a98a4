// Package bus is deskrelay's JetStream side: it starts the embedded NATS
// server (StartEmbedded), connects to it or to an external cluster
// (Connect), provisions the ingest, routed and dlq streams and the profiles
// KV bucket (Bus.Provision), and publishes with Nats-Msg-Id de-duplication
// (Bus.Ingest, Bus.PublishRouted, Bus.PublishDLQ).
//
// Subjects are <prefix>.ingest.<source>, <prefix>.routed.<tier>.<channel>
// and <prefix>.dlq.<reason>, prefix "deskrelay" by default. Every token
// must be a literal NATS subject token, by nats-server's rules: [Bus]
// rejects with [ErrInvalidToken] an empty token, a wildcard ("*" or ">"),
// and a token holding '.', ASCII white space (space, tab, CR, LF, form
// feed), NUL or invalid UTF-8.
//
// Durability: a PubAck means the server stored the message, not that it
// reached the disk. With the default sync interval (2m) an OS crash or a
// power loss can lose acknowledged messages; sync_interval "always" fsyncs
// every write at a measured cost (see BenchmarkIngest), and replicas > 1 on
// machines that do not fail together is the other way out.
//
// The package does not decide anything about tickets: decoding, enrichment
// and routing live in internal/pipeline, which consumes
// [Bus.IngestConsumer]. It implements the connectors' Sink without
// importing connectors.
package bus
