// Package pipeline is deskrelay's processing stage. A [Processor] reads
// the ingest stream through a durable pull consumer, decodes each ticket,
// asks an [Enricher] for the caller's profile and a [Router] for the
// decision, and publishes the versioned routed message through a
// [Publisher]; it acks the ingest message only after that publish was
// acknowledged, so a crash in between yields a redelivery and, thanks to a
// Nats-Msg-Id derived from the ingest id, no second routed message.
//
// Failures split in two. Permanent ones (a payload that is not a ticket,
// an invalid ticket, no route, a routed message NATS can never take — too
// large for max_payload, a tier or channel that is not a subject token —,
// a panic) go to the dead-letter subject with the reason, the error, the
// original payload and the source, and the ingest message is acked; a
// dead letter too large to publish carries a reference to the ingest
// message (stream and sequence, in its error text) instead of the payload. Transient ones (profile lookup, publish) are
// nak'd with a delay that doubles with each delivery from the configured
// retry_delay up to [MaxRetryDelay] ([RetryDelay]); a message still
// failing on its max_deliver-th delivery goes to the dead letters as
// "max_deliver" instead. The processor, not the server, counts
// max_deliver: the consumer redelivers without limit, so a message whose
// dead letter could not be stored is nak'd and tried again later, never
// left unacknowledged.
//
// The package does not own the consumer, the connection or the streams
// (internal/bus does), nor the profile sources (enrichment) or the rules
// (routing): it defines the small interfaces it uses and joins them.
package pipeline
