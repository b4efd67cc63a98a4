package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// check validates the values this package owns. Connector options, routes
// and profile hints are checked by the packages that use them.
func (c *Config) check() Errors {
	var errs Errors
	bad := func(path, format string, args ...any) { errs = append(errs, Errorf(path, format, args...)) }
	oneOf := func(path, val string, allowed ...string) {
		if !slices.Contains(allowed, val) {
			bad(path, "%q is not allowed; use one of %s", val, strings.Join(allowed, ", "))
		}
	}
	positive := func(path string, d time.Duration) {
		if d <= 0 {
			bad(path, "must be greater than 0, got %s", d)
		}
	}

	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "json", "console")

	if err := checkHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%v", err)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("http.max_body_bytes", "must be greater than 0, got %d", c.HTTP.MaxBodyBytes)
	}
	positive("http.read_timeout", c.HTTP.ReadTimeout)
	positive("http.write_timeout", c.HTTP.WriteTimeout)
	positive("http.idle_timeout", c.HTTP.IdleTimeout)
	positive("http.publish_timeout", c.HTTP.PublishTimeout)
	positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	if c.HTTP.MaxInFlight < 1 {
		bad("http.max_in_flight", "must be at least 1, got %d", c.HTTP.MaxInFlight)
	}
	if c.HTTP.MaxBacklog < 0 {
		bad("http.max_backlog", "must not be negative (0 = off), got %d", c.HTTP.MaxBacklog)
	}
	if c.HTTP.RetryAfter < time.Second {
		bad("http.retry_after", "must be at least 1s (Retry-After is given in whole seconds), got %s", c.HTTP.RetryAfter)
	}

	n := &c.NATS
	if n.URL != "" {
		for _, u := range strings.Split(n.URL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			switch {
			case err != nil:
				bad("nats.url", "%q is not a URL: %v", u, err)
			case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme):
				bad("nats.url", "%q: missing or unknown scheme; expected nats://host:port (or tls://, ws://, wss://)", u)
			case pu.Host == "":
				bad("nats.url", "%q has no host; expected nats://host:port", u)
			}
		}
	} else {
		if l := n.Embedded.Listen; l != "" && l != "none" {
			if err := checkHostPort(l); err != nil {
				bad("nats.embedded.listen", "%v (or \"none\" for in-process only)", err)
			}
		}
		if s := n.Embedded.SyncInterval; s != "always" && s != "" {
			if d, err := time.ParseDuration(s); err != nil || d <= 0 {
				bad("nats.embedded.sync_interval", "%q is neither \"always\" nor a positive duration such as 2m", s)
			}
		}
	}
	if (n.User == "") != !n.Password.IsSet() {
		bad("nats.user", "user and password must be given together")
	}
	if n.Token.IsSet() && n.User != "" {
		bad("nats.token", "give either a token or a user and password, not both")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		bad("nats.tls.cert_file", "cert_file and key_file must be given together")
	}
	positive("nats.connect_timeout", n.ConnectTimeout)
	if !validToken(n.SubjectPrefix) {
		bad("nats.subject_prefix", "%q must be one or more NATS subject tokens (letters, digits, '-', '_', separated by '.')", n.SubjectPrefix)
	}
	names := map[string]string{}
	for _, s := range []struct {
		key string
		st  *Stream
	}{{"ingest", &n.Streams.Ingest}, {"routed", &n.Streams.Routed}, {"dlq", &n.Streams.DLQ}} {
		p := "nats.streams." + s.key
		if s.st.Name == "" || strings.ContainsAny(s.st.Name, " .*>\t") {
			bad(p+".name", "%q is not a stream name (no spaces, '.', '*' or '>')", s.st.Name)
		} else if other, dup := names[s.st.Name]; dup {
			bad(p+".name", "%q is already the name of the %s stream", s.st.Name, other)
		}
		names[s.st.Name] = s.key
		oneOf(p+".retention", s.st.Retention, "limits", "interest", "workqueue")
		oneOf(p+".storage", s.st.Storage, "file", "memory")
		if s.st.Replicas < 1 || s.st.Replicas > 5 {
			bad(p+".replicas", "must be 1 to 5, got %d", s.st.Replicas)
		}
		if s.st.MaxAge < 0 {
			bad(p+".max_age", "must not be negative (0 = keep forever), got %s", s.st.MaxAge)
		}
		positive(p+".duplicate_window", s.st.DuplicateWindow)
		if s.st.MaxAge > 0 && s.st.DuplicateWindow > s.st.MaxAge {
			bad(p+".duplicate_window", "%s is longer than max_age %s", s.st.DuplicateWindow, s.st.MaxAge)
		}
	}
	for key, b := range map[string]string{"profiles_bucket": n.ProfilesBucket, "cursors_bucket": n.CursorsBucket, "leases_bucket": n.LeasesBucket} {
		if b == "" || strings.ContainsAny(b, " .*>\t") {
			bad("nats."+key, "%q is not a bucket name", b)
		}
	}
	if n.KVReplicas < 1 || n.KVReplicas > 5 {
		bad("nats.kv_replicas", "must be 1 to 5, got %d", n.KVReplicas)
	}

	p := &c.Pipeline
	if p.Durable == "" || strings.ContainsAny(p.Durable, " .*>\t") {
		bad("pipeline.durable", "%q is not a consumer name", p.Durable)
	}
	if p.MaxDeliver < 1 {
		bad("pipeline.max_deliver", "must be at least 1, got %d", p.MaxDeliver)
	}
	positive("pipeline.ack_wait", p.AckWait)
	if p.MaxAckPending < 1 {
		bad("pipeline.max_ack_pending", "must be at least 1, got %d", p.MaxAckPending)
	}
	if p.Workers < 1 || p.Workers > 1024 {
		bad("pipeline.workers", "must be 1 to 1024, got %d", p.Workers)
	}
	if p.MaxPendingAcks < 1 {
		bad("pipeline.max_pending_acks", "must be at least 1, got %d", p.MaxPendingAcks)
	}
	if p.RetryDelay < 0 {
		bad("pipeline.retry_delay", "must not be negative, got %s", p.RetryDelay)
	}
	// Routed inline, a vendor's retry of a webhook is de-duplicated by the
	// routed stream's window, not the ingest stream's.
	if in, rt := n.Streams.Ingest.DuplicateWindow, n.Streams.Routed.DuplicateWindow; p.Inline && rt < in {
		bad("pipeline.inline", "needs nats.streams.routed.duplicate_window (%s) at least as long as the ingest stream's (%s): routed inline, a vendor's retry is de-duplicated by the routed stream", rt, in)
	}

	for name, con := range c.Connectors {
		if con.Type == "" {
			bad("connectors."+name, "type is required (e.g. type: generic)")
		}
		if con.MaxBodyBytes < 0 {
			bad("connectors."+name+".max_body_bytes", "must not be negative (0 = http.max_body_bytes), got %d", con.MaxBodyBytes)
		}
		errs = append(errs, checkPollAPI("connectors."+name, con)...)
	}
	positive("profiles.lookup_timeout", c.Profiles.LookupTimeout)
	if inf := c.Profiles.Inference; inf.Enabled {
		if inf.MinConfidence < 0 || inf.MinConfidence > 1 {
			bad("profiles.inference.min_confidence", "must be 0 to 1, got %v", inf.MinConfidence)
		}
		if inf.HistoryCallers < 1 {
			bad("profiles.inference.history_callers", "must be at least 1, got %d", inf.HistoryCallers)
		}
		if inf.HistoryPerCaller < 1 || inf.HistoryPerCaller > 20 {
			bad("profiles.inference.history_per_caller", "must be 1 to 20, got %d", inf.HistoryPerCaller)
		}
	}
	return errs
}

// checkPollAPI checks the poll and api blocks of a connector. The api
// block is required only when polling is enabled.
func checkPollAPI(path string, con Connector) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) { errs = append(errs, Errorf(path+"."+key, format, args...)) }
	p, a := con.Poll, con.API
	if p.Interval < time.Second {
		bad("poll.interval", "must be at least 1s, got %s", p.Interval)
	}
	if p.PageSize < 1 || p.PageSize > 10000 {
		bad("poll.page_size", "must be 1 to 10000, got %d", p.PageSize)
	}
	if _, err := ParseStart(p.Start, time.Now()); err != nil {
		bad("poll.start", "%v", err)
	}
	if p.LeaseTTL < time.Second {
		bad("poll.lease_ttl", "must be at least 1s, got %s", p.LeaseTTL)
	}
	if a.Timeout <= 0 {
		bad("api.timeout", "must be greater than 0, got %s", a.Timeout)
	}
	if a.MaxRetries < 0 {
		bad("api.max_retries", "must not be negative, got %d", a.MaxRetries)
	}
	if a.RetryWaitMin <= 0 || a.RetryWaitMax < a.RetryWaitMin {
		bad("api.retry_wait_max", "retry_wait_min (%s) must be > 0 and at most retry_wait_max (%s)", a.RetryWaitMin, a.RetryWaitMax)
	}
	if !p.Enabled && a.BaseURL == "" {
		return errs
	}
	if u, err := url.Parse(a.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("api.base_url", "%q is not an http(s) URL such as https://example.service-now.com", a.BaseURL)
	}
	switch a.Auth.Type {
	case "basic":
		if a.Auth.Username == "" {
			bad("api.auth.username", "is required for basic auth")
		}
		if !a.Auth.Password.IsSet() {
			bad("api.auth.password", "is required for basic auth (env:NAME or file:PATH)")
		}
	case "bearer":
		if !a.Auth.Token.IsSet() {
			bad("api.auth.token", "is required for bearer auth (env:NAME or file:PATH)")
		}
	case "oauth2_client_credentials", "oauth2_password":
		if a.Auth.ClientID == "" {
			bad("api.auth.client_id", "is required for %s", a.Auth.Type)
		}
		if !a.Auth.ClientSecret.IsSet() {
			bad("api.auth.client_secret", "is required for %s (env:NAME or file:PATH)", a.Auth.Type)
		}
		if a.Auth.Type == "oauth2_password" && (a.Auth.Username == "" || !a.Auth.Password.IsSet()) {
			bad("api.auth.username", "username and password are required for oauth2_password")
		}
		if a.Auth.TokenURL != "" {
			if u, err := url.Parse(a.Auth.TokenURL); err != nil || u.Host == "" {
				bad("api.auth.token_url", "%q is not a URL", a.Auth.TokenURL)
			}
		}
	case "":
		bad("api.auth.type", "is required: basic, bearer, oauth2_client_credentials or oauth2_password")
	default:
		bad("api.auth.type", "%q is not allowed; use basic, bearer, oauth2_client_credentials or oauth2_password", a.Auth.Type)
	}
	return errs
}

// ParseStart reads poll.start: an RFC 3339 time, or a negative Go duration
// relative to now ("-24h"), or "now".
func ParseStart(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d > 0 {
			return time.Time{}, fmt.Errorf("%q lies in the future; use a negative duration such as -24h", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a negative duration such as -24h, nor now", s)
	}
	return t, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	_ = host
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	return nil
}

// validToken reports whether s is a dot-separated list of plain NATS
// subject tokens.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
