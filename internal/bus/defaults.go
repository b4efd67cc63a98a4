package bus

import (
	"cmp"
	"time"

	"github.com/deskrelay/deskrelay/config"
)

// Stream kinds: the second token of a subject and the key of
// [DefaultStream].
const (
	KindIngest = "ingest"
	KindRouted = "routed"
	KindDLQ    = "dlq"
)

// Defaults used when a config value is zero.
const (
	// DefaultSubjectPrefix is the first token(s) of every subject.
	DefaultSubjectPrefix = "deskrelay"
	// DefaultProfilesBucket is the KV bucket holding the profile directory.
	DefaultProfilesBucket = "deskrelay_profiles"
	// DefaultListen is where the embedded server accepts clients.
	DefaultListen = "127.0.0.1:4222"
	// ListenNone disables the embedded server's TCP listener: only
	// in-process connections are possible.
	ListenNone = "none"
	// DefaultConnectTimeout bounds Connect.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultPublishTimeout bounds a publish whose ctx has no deadline.
	DefaultPublishTimeout = 5 * time.Second
	// DefaultDuplicateWindow is how long a Nats-Msg-Id is remembered: 24h,
	// not JetStream's 2m, because vendors retry a webhook that got a 503
	// or a timeout for hours, and a retry outside the window is stored
	// twice. The cost is memory: the server keeps one entry (the id, about
	// 100 bytes with overhead) per message stored in the last 24h, e.g.
	// about 10 MB per 100 000 tickets a day per stream.
	DefaultDuplicateWindow = 24 * time.Hour
	// DefaultReadyCache is how long a successful Ready check is reused.
	DefaultReadyCache = 5 * time.Second
)

// DefaultStream returns the defaults for the stream of the given kind
// ([KindIngest], [KindRouted] or [KindDLQ]):
//
//	kind    name              retention max_age duplicate_window replicas storage
//	ingest  DESKRELAY_INGEST  limits    7d      24h              1        file
//	routed  DESKRELAY_ROUTED  limits    7d      24h              1        file
//	dlq     DESKRELAY_DLQ     limits    30d     24h              1        file
//
// MaxBytes 0 means unlimited. The routed and dlq windows are 24h too so
// that a processor that crashed between publishing and acking and came
// back hours later still publishes the routed message only once. An
// unknown kind returns the zero Stream.
func DefaultStream(kind string) config.Stream {
	d := config.Default().NATS.Streams
	switch kind {
	case KindIngest:
		return d.Ingest
	case KindRouted:
		return d.Routed
	case KindDLQ:
		return d.DLQ
	}
	return config.Stream{}
}

// StreamWithDefaults returns s with every zero field set from
// [DefaultStream](kind).
func StreamWithDefaults(kind string, s config.Stream) config.Stream {
	d := DefaultStream(kind)
	s.Name = cmp.Or(s.Name, d.Name)
	s.Retention = cmp.Or(s.Retention, d.Retention)
	s.MaxAge = cmp.Or(s.MaxAge, d.MaxAge)
	s.Replicas = cmp.Or(s.Replicas, d.Replicas)
	s.DuplicateWindow = cmp.Or(s.DuplicateWindow, d.DuplicateWindow)
	s.Storage = cmp.Or(s.Storage, d.Storage)
	return s
}

// DefaultPipeline returns the processing-stage defaults, those of
// [config.Default]. max_deliver is counted by internal/pipeline, not by
// the server (see [Bus.IngestConsumer]); retry_delay is the first of
// delays that double per delivery (pipeline.RetryDelay).
func DefaultPipeline() config.Pipeline { return config.Default().Pipeline }

// PipelineWithDefaults returns p with every zero field set from
// [DefaultPipeline]. A negative MaxDeliver (unlimited) is kept.
func PipelineWithDefaults(p config.Pipeline) config.Pipeline {
	d := DefaultPipeline()
	p.Durable = cmp.Or(p.Durable, d.Durable)
	p.MaxDeliver = cmp.Or(p.MaxDeliver, d.MaxDeliver)
	p.AckWait = cmp.Or(p.AckWait, d.AckWait)
	p.MaxAckPending = cmp.Or(p.MaxAckPending, d.MaxAckPending)
	p.Workers = cmp.Or(p.Workers, d.Workers)
	p.RetryDelay = cmp.Or(p.RetryDelay, d.RetryDelay)
	return p
}
