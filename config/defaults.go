package config

import "time"

// Default returns the configuration deskrelay runs with when a key is not
// set. These are the documented defaults (README, "Configuration").
func Default() Config {
	stream := func(name string, maxAge, dup time.Duration) Stream {
		return Stream{Name: name, Retention: "limits", MaxAge: maxAge, Replicas: 1, DuplicateWindow: dup, Storage: "file"}
	}
	return Config{
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "json"},
		HTTP: HTTP{
			Listen:          "127.0.0.1:8080",
			MaxBodyBytes:    1 << 20,
			ReadTimeout:     10 * time.Second,
			WriteTimeout:    15 * time.Second,
			IdleTimeout:     90 * time.Second,
			PublishTimeout:  5 * time.Second,
			ShutdownTimeout: 20 * time.Second,
			RetryAfter:      5 * time.Second,
			MaxInFlight:     1024,
			MaxBacklog:      50000,
		},
		NATS: NATS{
			Embedded:       Embedded{Listen: "127.0.0.1:4222", SyncInterval: "2m"},
			ConnectTimeout: 5 * time.Second,
			SubjectPrefix:  "deskrelay",
			Streams: Streams{
				// 24h rather than JetStream's 2m: a vendor that got a 503 or a
				// timeout retries for far longer than two minutes, and a retry
				// outside the window would be stored twice. The cost is one
				// in-memory entry per stored message of the last 24h.
				Ingest: stream("DESKRELAY_INGEST", 7*24*time.Hour, 24*time.Hour),
				Routed: stream("DESKRELAY_ROUTED", 7*24*time.Hour, 24*time.Hour),
				DLQ:    stream("DESKRELAY_DLQ", 30*24*time.Hour, 24*time.Hour),
			},
			ProfilesBucket: "deskrelay_profiles",
			CursorsBucket:  "deskrelay_cursors",
			LeasesBucket:   "deskrelay_leases",
			KVReplicas:     1,
		},
		Pipeline: Pipeline{
			Durable:        "deskrelay-pipeline",
			MaxDeliver:     10,
			AckWait:        30 * time.Second,
			MaxAckPending:  1000,
			Workers:        4,
			RetryDelay:     2 * time.Second,
			MaxPendingAcks: 256,
		},
		Profiles: Profiles{
			Scale:               10,
			CompetenceThreshold: 5,
			AttitudeThreshold:   5,
			LookupTimeout:       200 * time.Millisecond,
			Order:               []string{"directory"},
			Cache:               ProfileCache{TTL: 5 * time.Minute, NegativeTTL: 30 * time.Second, MaxEntries: 10000},
			Surveys:             Surveys{DefaultScale: "0-10", History: 10},
			Familiar: Familiar{
				Enabled:  true,
				History:  5,
				States:   []string{"resolved", "closed"},
				Profiles: []string{"supported", "trier"},
			},
			Inference: Inference{Enabled: true, MinConfidence: 0.5, HistoryCallers: 10000, HistoryPerCaller: 10},
		},
		Routing: Routing{
			PriorityMatrix:  [][]int{{1, 2, 3}, {2, 3, 4}, {3, 4, 5}},
			DefaultPriority: 4,
		},
	}
}

// DefaultPoll and DefaultAPI are the settings of a connector's poll and
// api blocks when a key is not set; a connector's type may refine them.
var (
	DefaultPoll = Poll{Interval: time.Minute, PageSize: 100, Start: "-24h", LeaseTTL: 30 * time.Second}
	DefaultAPI  = API{Timeout: 30 * time.Second, MaxRetries: 4, RetryWaitMin: time.Second, RetryWaitMax: 30 * time.Second}
)

// DefaultAuthHeader is the header an hmac-authenticated webhook carries its
// signature in, unless auth.header says otherwise.
const DefaultAuthHeader = "X-Deskrelay-Signature"
