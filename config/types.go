package config

import (
	"time"
)

// Config is the whole deskrelay configuration, as decoded from one YAML file
// with DESKRELAY_* environment overrides applied. Load returns it validated;
// the zero value is not useful, use [Default] for the defaults.
type Config struct {
	// DataDir holds the embedded NATS store and other local state.
	DataDir    string               `mapstructure:"data_dir"`
	Log        Log                  `mapstructure:"log"`
	HTTP       HTTP                 `mapstructure:"http"`
	NATS       NATS                 `mapstructure:"nats"`
	Pipeline   Pipeline             `mapstructure:"pipeline"`
	Connectors map[string]Connector `mapstructure:"connectors"`
	Profiles   Profiles             `mapstructure:"profiles"`
	Routing    Routing              `mapstructure:"routing"`

	// file is the path the config was read from; pos maps key paths to
	// positions in it (see Errorf).
	file string
	pos  map[string]position
	env  map[string]string
}

// Log configures the process logger.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // json or console
}

// HTTP configures the webhook and operations listener.
type HTTP struct {
	Listen          string        `mapstructure:"listen"`
	MaxBodyBytes    int64         `mapstructure:"max_body_bytes"`
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	WriteTimeout    time.Duration `mapstructure:"write_timeout"`
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	PublishTimeout  time.Duration `mapstructure:"publish_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	RetryAfter      time.Duration `mapstructure:"retry_after"`
	// MaxInFlight bounds the webhook requests handled at once; more get
	// 503 with Retry-After at once.
	MaxInFlight int `mapstructure:"max_in_flight"`
	// MaxBacklog: while more stored tickets than this wait for the
	// processing stage, webhooks get 503 with Retry-After (0 = off).
	MaxBacklog int `mapstructure:"max_backlog"`
}

// NATS configures the connection to NATS, or the embedded server when URL
// is empty, and the JetStream streams and buckets deskrelay provisions.
type NATS struct {
	// URL of an external server or cluster (comma-separated); empty starts
	// the embedded server.
	URL            string        `mapstructure:"url"`
	Embedded       Embedded      `mapstructure:"embedded"`
	User           string        `mapstructure:"user"`
	Password       Secret        `mapstructure:"password"`
	Token          Secret        `mapstructure:"token"`
	CredsFile      string        `mapstructure:"creds_file"`
	TLS            TLS           `mapstructure:"tls"`
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	SubjectPrefix  string        `mapstructure:"subject_prefix"`
	Streams        Streams       `mapstructure:"streams"`
	ProfilesBucket string        `mapstructure:"profiles_bucket"`
	CursorsBucket  string        `mapstructure:"cursors_bucket"`
	LeasesBucket   string        `mapstructure:"leases_bucket"`
	KVReplicas     int           `mapstructure:"kv_replicas"`
}

// Embedded configures the in-process NATS server.
type Embedded struct {
	// Listen is the client address downstream consumers connect to
	// (default 127.0.0.1:4222; port 0 picks a free port); "none" means
	// in-process connections only.
	Listen   string `mapstructure:"listen"`
	StoreDir string `mapstructure:"store_dir"` // default <data_dir>/jetstream
	// SyncInterval is how often JetStream fsyncs: a duration, or "always"
	// to fsync every write.
	SyncInterval string `mapstructure:"sync_interval"`
	MaxMemory    int64  `mapstructure:"max_memory"`
	MaxStore     int64  `mapstructure:"max_store"`
}

// TLS configures client TLS towards an external NATS.
type TLS struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// Streams configures the three JetStream streams.
type Streams struct {
	Ingest Stream `mapstructure:"ingest"`
	Routed Stream `mapstructure:"routed"`
	DLQ    Stream `mapstructure:"dlq"`
}

// Stream configures one JetStream stream.
type Stream struct {
	Name            string        `mapstructure:"name"`
	Retention       string        `mapstructure:"retention"` // limits, interest, workqueue
	MaxAge          time.Duration `mapstructure:"max_age"`
	MaxBytes        int64         `mapstructure:"max_bytes"`
	Replicas        int           `mapstructure:"replicas"`
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	Storage         string        `mapstructure:"storage"` // file or memory
}

// Pipeline configures the processing stage that reads the ingest stream.
type Pipeline struct {
	Durable       string        `mapstructure:"durable"`
	MaxDeliver    int           `mapstructure:"max_deliver"`
	AckWait       time.Duration `mapstructure:"ack_wait"`
	MaxAckPending int           `mapstructure:"max_ack_pending"`
	Workers       int           `mapstructure:"workers"`
	RetryDelay    time.Duration `mapstructure:"retry_delay"`
	// MaxPendingAcks bounds the routed publishes awaiting their PubAck.
	MaxPendingAcks int `mapstructure:"max_pending_acks"`
	// Inline routes webhooks in the request: the routed message is the one
	// store, and the ingest stream takes only what could not be routed at
	// once (and polled tickets).
	Inline bool `mapstructure:"inline"`
}

// Connector configures one named source. Type selects the vendor package;
// Options holds the vendor-specific keys, which that package decodes and
// checks (keys are reported under connectors.<name>.<key>).
type Connector struct {
	Type         string         `mapstructure:"type"`
	Auth         Auth           `mapstructure:"auth"`
	MaxBodyBytes int64          `mapstructure:"max_body_bytes"`
	API          API            `mapstructure:"api"`
	Poll         Poll           `mapstructure:"poll"`
	Options      map[string]any `mapstructure:",remain"`
}

// API configures deskrelay's outbound calls to a vendor's REST API:
// polling, user lookups and `deskrelay connectors check`.
type API struct {
	// BaseURL is the instance, e.g. https://example.service-now.com.
	BaseURL string  `mapstructure:"base_url"`
	Auth    APIAuth `mapstructure:"auth"`
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxRetries is how often a 429, 5xx or network error is retried
	// within one call before the poller reschedules.
	MaxRetries int `mapstructure:"max_retries"`
	// RetryWaitMin and RetryWaitMax bound the backoff between retries; a
	// Retry-After longer than RetryWaitMax ends the call, and the poller
	// waits it out before the next one.
	RetryWaitMin time.Duration `mapstructure:"retry_wait_min"`
	RetryWaitMax time.Duration `mapstructure:"retry_wait_max"`
}

// APIAuth is how deskrelay authenticates to a vendor API.
type APIAuth struct {
	// Type is basic, bearer, oauth2_client_credentials or oauth2_password.
	Type         string   `mapstructure:"type"`
	Username     string   `mapstructure:"username"`
	Password     Secret   `mapstructure:"password"`
	Token        Secret   `mapstructure:"token"`
	ClientID     string   `mapstructure:"client_id"`
	ClientSecret Secret   `mapstructure:"client_secret"`
	TokenURL     string   `mapstructure:"token_url"`
	Scopes       []string `mapstructure:"scopes"`
}

// Poll configures polling a vendor API for changed tickets.
type Poll struct {
	Enabled bool `mapstructure:"enabled"`
	// Interval between polls once the backlog is drained.
	Interval time.Duration `mapstructure:"interval"`
	// PageSize is the number of records asked for per request.
	PageSize int `mapstructure:"page_size"`
	// Start is where the first poll begins: an RFC 3339 time, or a
	// negative duration relative to the first start ("-24h").
	Start string `mapstructure:"start"`
	// Fields limits the vendor fields requested (vendor default if empty).
	Fields []string `mapstructure:"fields"`
	// LeaseTTL is how long a replica's poll lease lasts without renewal;
	// another replica takes over after it lapses.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
}

// Auth configures how a webhook request is authenticated.
type Auth struct {
	// Type is none, bearer, basic or hmac.
	Type     string `mapstructure:"type"`
	Token    Secret `mapstructure:"token"`    // bearer
	Username string `mapstructure:"username"` // basic
	Password Secret `mapstructure:"password"` // basic
	Secret   Secret `mapstructure:"secret"`   // hmac key
	// Header carries the HMAC signature (default X-Deskrelay-Signature).
	Header string `mapstructure:"header"`
	// Encoding of the HMAC signature: hex or base64.
	Encoding string `mapstructure:"encoding"`
	// Prefix before the signature in the header, e.g. "sha256=".
	Prefix string `mapstructure:"prefix"`
	// TimestampHeader, when set, carries a Unix-seconds or RFC 3339
	// timestamp; the signature then covers timestamp + "." + body, and a
	// timestamp outside ReplayWindow is refused.
	TimestampHeader string        `mapstructure:"timestamp_header"`
	ReplayWindow    time.Duration `mapstructure:"replay_window"`
}

// Profiles configures the profile directory and the per-profile hints.
type Profiles struct {
	// File seeds the KV directory at start (CSV, JSON or YAML by extension).
	File string `mapstructure:"file"`
	// Scale is the top of the competence/attitude score scale (bottom 0).
	Scale float64 `mapstructure:"scale"`
	// CompetenceThreshold and AttitudeThreshold split the quadrant: a score
	// at or above the threshold is "high competence" / "fixes it myself".
	CompetenceThreshold float64                 `mapstructure:"competence_threshold"`
	AttitudeThreshold   float64                 `mapstructure:"attitude_threshold"`
	LookupTimeout       time.Duration           `mapstructure:"lookup_timeout"`
	Hints               map[string]ProfileHints `mapstructure:"hints"`
	// Order lists the profile sources by name, tried first to last:
	// "directory" (the KV bucket) and the names under Sources.
	Order []string `mapstructure:"order"`
	// Sources are the lookups beyond the directory, by name (the name is
	// the profile's source and a metric label).
	Sources map[string]ProfileSource `mapstructure:"sources"`
	// ScoreScales are the scales scores may come on (surveys, score
	// fields), by name; "0-10" and "1-5" are built in and may be
	// overridden.
	ScoreScales map[string]ScoreScale `mapstructure:"score_scales"`
	Cache       ProfileCache          `mapstructure:"cache"`
	Surveys     Surveys               `mapstructure:"surveys"`
	Familiar    Familiar              `mapstructure:"familiar"`
	Inference   Inference             `mapstructure:"inference"`
}

// Inference configures the last profile source: an estimate from the
// ticket and the caller's recent tickets, used only when no other source
// knows the caller, and always labelled inferred.
type Inference struct {
	Enabled bool `mapstructure:"enabled"`
	// MinConfidence: below it the profile stays unknown (with the inferred
	// scores attached). 0 always names one of the four profiles.
	MinConfidence float64 `mapstructure:"min_confidence"`
	// HistoryCallers and HistoryPerCaller bound the in-memory history of
	// unknown callers' recent tickets.
	HistoryCallers   int `mapstructure:"history_callers"`
	HistoryPerCaller int `mapstructure:"history_per_caller"`
}

// ProfileSource configures one profile source: a field of the ITSM's user
// record (type itsm) or a generic HTTP lookup (type http).
type ProfileSource struct {
	Type string `mapstructure:"type"` // itsm or http
	// Timeout bounds one lookup of this source (default
	// profiles.lookup_timeout).
	Timeout time.Duration `mapstructure:"timeout"`

	// Connector (itsm) names the ServiceNow connector whose api block is
	// used to read sys_user.
	Connector string `mapstructure:"connector"`
	// Field (itsm) holds a profile name; CompetenceField and
	// AttitudeField hold two scores on Scale instead.
	Field           string `mapstructure:"field"`
	CompetenceField string `mapstructure:"competence_field"`
	AttitudeField   string `mapstructure:"attitude_field"`

	// URL (http) is the lookup URL with {email} and/or {id}, escaped
	// where they stand.
	URL  string  `mapstructure:"url"`
	Auth APIAuth `mapstructure:"auth"`
	// ProfilePath (http) is the gjson path of the profile name in the
	// answer; CompetencePath and AttitudePath are those of two scores
	// on Scale instead.
	ProfilePath    string `mapstructure:"profile_path"`
	CompetencePath string `mapstructure:"competence_path"`
	AttitudePath   string `mapstructure:"attitude_path"`
	MaxRetries     int    `mapstructure:"max_retries"`

	// Scale names the score scale of the score fields (default "0-10").
	Scale string `mapstructure:"scale"`
	// Values translates the source's own profile names (lower-case) to
	// deskrelay's: {expert: doer}.
	Values map[string]string `mapstructure:"values"`
}

// ScoreScale is a scale of competence and attitude scores, from Min to
// Max; a score at or above a threshold is high competence / "I fix it
// myself".
type ScoreScale struct {
	Min                 float64 `mapstructure:"min"`
	Max                 float64 `mapstructure:"max"`
	CompetenceThreshold float64 `mapstructure:"competence_threshold"`
	AttitudeThreshold   float64 `mapstructure:"attitude_threshold"`
}

// ProfileCache configures the cache in front of the profile sources.
type ProfileCache struct {
	// TTL is how long a known profile is kept, NegativeTTL how long
	// "nobody knows this caller"; MaxEntries bounds the cache (0: no
	// cache).
	TTL         time.Duration `mapstructure:"ttl"`
	NegativeTTL time.Duration `mapstructure:"negative_ttl"`
	MaxEntries  int           `mapstructure:"max_entries"`
}

// Surveys configures survey answers (POST /surveys, <prefix>.surveys).
type Surveys struct {
	// DefaultScale is the scale of an answer that names none.
	DefaultScale string `mapstructure:"default_scale"`
	// History is how many answers are kept per caller.
	History int `mapstructure:"history"`
	// Auth authenticates POST /surveys like a webhook source; without it
	// the endpoint is off (the NATS subject is guarded by NATS itself).
	Auth Auth `mapstructure:"auth"`
}

// Familiar configures remembering who resolved a caller's tickets.
type Familiar struct {
	Enabled bool `mapstructure:"enabled"`
	// History is how many resolutions are kept per caller.
	History int `mapstructure:"history"`
	// States are the ticket states that mean resolved.
	States []string `mapstructure:"states"`
	// Profiles are the profiles that get familiar_agent and
	// familiar_group hints.
	Profiles []string `mapstructure:"profiles"`
}

// ProfileHints overrides the built-in hints of one profile. Empty fields
// keep the built-in value.
type ProfileHints struct {
	CommunicationStyle string   `mapstructure:"communication_style"`
	Language           string   `mapstructure:"language"`
	PreferredChannels  []string `mapstructure:"preferred_channels"`
	Do                 []string `mapstructure:"do"`
	Avoid              []string `mapstructure:"avoid"`
	StatusUpdateEvery  string   `mapstructure:"status_update_every"`
	VirtualAgent       string   `mapstructure:"virtual_agent"`
}

// Routing configures the rule tree and the priority matrix.
type Routing struct {
	// PriorityMatrix[impact-1][urgency-1] is the ITIL priority.
	PriorityMatrix [][]int `mapstructure:"priority_matrix"`
	// DefaultPriority is used when the ticket has neither priority nor
	// impact and urgency.
	DefaultPriority int `mapstructure:"default_priority"`
	// Route is the root of the tree; its tier and channel are the defaults.
	Route Route `mapstructure:"route"`
}

// Route is one node of the routing tree.
type Route struct {
	Name string `mapstructure:"name"`
	// Matchers are "field op value" strings, all of which must hold:
	// =, !=, =~, !~, <, <=, >, >=, in, not in.
	Matchers []string `mapstructure:"matchers"`
	// When is an optional CEL expression over ticket and profile.
	When     string `mapstructure:"when"`
	Continue bool   `mapstructure:"continue"`
	Tier     string `mapstructure:"tier"`
	Channel  string `mapstructure:"channel"`
	// PriorityAdjust is added to the priority (negative = more urgent),
	// the result clamped to 1…5.
	PriorityAdjust int               `mapstructure:"priority_adjust"`
	Hints          map[string]string `mapstructure:"hints"`
	Routes         []Route           `mapstructure:"routes"`
}
