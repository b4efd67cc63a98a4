package enrichment

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// Source types of profiles.sources.
const (
	TypeITSM = "itsm"
	TypeHTTP = "http"
)

// Deps are what [Build] needs from the process: the profiles bucket, the
// NATS connection (for the survey subject, and for the directory to follow
// reconnects), the connectors' config (for itsm sources), a logger and
// metrics.
type Deps struct {
	// KV is the profiles bucket; nil only for [Check].
	KV jetstream.KeyValue
	// Conn and SurveySubject (<prefix>.surveys) run the survey
	// subscriber; a nil Conn runs none. The directory watches the bucket
	// again when Conn reconnects ([WithConnection]).
	Conn          *nats.Conn
	SurveySubject string
	// Connectors are the configured connectors, by name.
	Connectors map[string]config.Connector
	// Quadrant classifies the directory's scores.
	Quadrant Quadrant
	Log      *zap.Logger
	// Metrics counts lookups, cache, surveys, familiar people; APIMetrics
	// counts the HTTP calls of the itsm and http sources. nil: unregistered.
	Metrics    *Metrics
	APIMetrics *connectors.PollMetrics
	// Last are sources tried after the configured ones (inference).
	Last []Source
}

// Built is the profile machinery of one process, built from the profiles
// config by [Build].
type Built struct {
	// Chain looks profiles up (cache, then profiles.order, then Last).
	Chain *Chain
	// Directory mirrors the bucket; wait for Synced before taking work.
	Directory *Directory
	Cache     *Cache // nil when profiles.cache.max_entries is 0
	// Surveys records answers; it is the http.Handler of POST /surveys.
	Surveys *Surveys
	// Familiar remembers who resolved each caller's tickets; nil when
	// profiles.familiar.enabled is false (its methods then do nothing).
	Familiar *Familiar

	subscriber *Subscriber
}

// Check builds nothing but reports every problem of the profiles config
// that [Build] would, as [config.Errors] with key paths. It does no I/O.
func Check(cfg config.Profiles, conns map[string]config.Connector) error {
	_, err := Build(cfg, Deps{Connectors: conns, Log: zap.NewNop()})
	return err
}

// Build makes the cache, the sources in profiles.order, the chain, the
// survey recorder and the familiar-people memory. It does no I/O: start
// them with [Built.Run]. Configuration problems come back together as
// [config.Errors].
func Build(cfg config.Profiles, d Deps) (*Built, error) {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	var errs config.Errors
	add := func(err error) { errs = append(errs, config.AsErrors(err)...) }

	scales, err := NewScales(cfg.ScoreScales)
	if err != nil {
		add(err)
		scales = builtinScales
	}
	b := &Built{}
	if cfg.Cache.MaxEntries < 0 {
		errs = append(errs, config.Errorf("profiles.cache.max_entries", "must not be negative (0 = no cache), got %d", cfg.Cache.MaxEntries))
	} else if cfg.Cache.MaxEntries > 0 {
		c, err := NewCache(WithTTL(cfg.Cache.TTL), WithNegativeTTL(cfg.Cache.NegativeTTL), WithMaxEntries(cfg.Cache.MaxEntries), WithCacheMetrics(d.Metrics))
		if err != nil {
			switch {
			case cfg.Cache.TTL <= 0:
				errs = append(errs, config.Errorf("profiles.cache.ttl", "must be greater than 0, got %s", cfg.Cache.TTL))
			case cfg.Cache.NegativeTTL <= 0:
				errs = append(errs, config.Errorf("profiles.cache.negative_ttl", "must be greater than 0, got %s", cfg.Cache.NegativeTTL))
			default:
				errs = append(errs, config.Errorf("profiles.cache", "%v", err))
			}
		}
		if cfg.Cache.NegativeTTL > cfg.Cache.TTL {
			errs = append(errs, config.Errorf("profiles.cache.negative_ttl", "%s is longer than ttl %s; unknown callers should be asked again sooner", cfg.Cache.NegativeTTL, cfg.Cache.TTL))
		}
		b.Cache = c
	}
	if b.Surveys, err = NewSurveys(d.KV, scales, cfg.Surveys, d.Log, d.Metrics); err != nil {
		add(err)
	}
	if b.Familiar, err = NewFamiliar(d.KV, cfg.Familiar, d.Log, d.Metrics); err != nil {
		add(err)
	}
	b.Directory = NewDirectory(d.KV, d.Quadrant, d.Log, WithInvalidation(b.Cache), WithFamiliar(b.Familiar), WithConnection(d.Conn))
	b.Surveys.seen = b.Directory // an answer is visible here once recorded

	var sources []Source
	seen := map[string]bool{}
	for i, name := range cfg.Order {
		path := fmt.Sprintf("profiles.order[%d]", i)
		if seen[name] {
			errs = append(errs, config.Errorf(path, "%q is listed twice", name))
			continue
		}
		seen[name] = true
		if name == SourceDirectory {
			sources = append(sources, b.Directory)
			continue
		}
		sc, ok := cfg.Sources[name]
		if !ok {
			msg := fmt.Sprintf("%q is neither directory nor a source under profiles.sources", name)
			if s := config.Suggest(name, append(slices.Collect(maps.Keys(cfg.Sources)), SourceDirectory)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, config.Errorf(path, "%s", msg))
			continue
		}
		s, err := newSource(name, sc, cfg.LookupTimeout, scales, d)
		if err != nil {
			add(err)
			continue
		}
		sources = append(sources, s)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		switch {
		case name == SourceDirectory || name == SourceNone || name == SourceSurvey || name == SourceInferred:
			errs = append(errs, config.Errorf("profiles.sources."+name, "%q is reserved; choose another name", name))
		case !seen[name]:
			errs = append(errs, config.Errorf("profiles.sources."+name, "is not in profiles.order, so it is never asked; add it there or remove it"))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sources = append(sources, d.Last...)
	b.Chain = NewChain(d.Log, d.Metrics, cfg.LookupTimeout, sources...)
	if b.Cache != nil {
		b.Chain = b.Chain.WithCache(b.Cache)
	}
	if d.Conn != nil {
		b.subscriber = b.Surveys.Subscriber(d.Conn, d.SurveySubject)
	}
	return b, nil
}

// Run runs the directory's watch and the survey subscriber until ctx is
// done (then nil), or until one of them fails (then its error).
func (b *Built) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return b.Directory.Run(ctx) })
	if b.subscriber != nil {
		eg.Go(func() error { return b.subscriber.Run(ctx) })
	}
	return eg.Wait()
}

// newSource builds one configured source.
func newSource(name string, sc config.ProfileSource, timeout time.Duration, scales Scales, d Deps) (Source, error) {
	path := "profiles.sources." + name
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(path+"."+key, format, args...))
	}
	if sc.Timeout < 0 {
		bad("timeout", "must not be negative (0 = profiles.lookup_timeout), got %s", sc.Timeout)
	}
	if sc.Timeout > 0 {
		timeout = sc.Timeout
	}
	scaleName := sc.Scale
	if scaleName == "" {
		scaleName = "0-10"
	}
	scale, err := scales.Lookup(scaleName)
	if err != nil {
		bad("scale", "%v", err)
	}
	values := map[string]string{}
	for k, v := range sc.Values {
		if _, err := ticket.ParseProfileName(v); err != nil {
			bad("values."+k, "%v", err)
		}
		values[strings.ToLower(k)] = strings.ToLower(v)
	}
	r := reading{source: name, scale: scale, values: values, log: d.Log.Named("enrichment.source")}
	// exactly one of a name field and a pair of score fields
	one := func(nameKey, nameVal, cKey, cVal, aKey, aVal string) {
		switch {
		case nameVal != "" && (cVal != "" || aVal != ""):
			bad(nameKey, "give either %s or %s and %s, not both", nameKey, cKey, aKey)
		case nameVal == "" && (cVal == "") != (aVal == ""):
			bad(cKey, "%s and %s must come together", cKey, aKey)
		case nameVal == "" && cVal == "":
			bad(nameKey, "is required (or %s and %s)", cKey, aKey)
		}
	}
	switch sc.Type {
	case TypeITSM:
		one("field", sc.Field, "competence_field", sc.CompetenceField, "attitude_field", sc.AttitudeField)
		con, ok := d.Connectors[sc.Connector]
		switch {
		case sc.Connector == "":
			bad("connector", "is required: the ServiceNow connector whose api block reads sys_user")
		case !ok:
			bad("connector", "%q is not a configured connector", sc.Connector)
		case con.Type != "servicenow":
			bad("connector", "%q is a %s connector; itsm sources read ServiceNow sys_user", sc.Connector, con.Type)
		case con.API.BaseURL == "":
			bad("connector", "connector %q has no api.base_url to read sys_user from", sc.Connector)
		}
		if len(errs) > 0 {
			return nil, errs
		}
		client, err := connectors.NewAPIClient(connectors.Source{Name: sc.Connector, Config: con, Log: d.Log.Named("enrichment.source"), Metrics: d.APIMetrics}, d.APIMetrics)
		if err != nil {
			return nil, err // already under connectors.<name>.api
		}
		return &UserField{r: r, client: client, fields: [3]string{sc.Field, sc.CompetenceField, sc.AttitudeField}, timeout: timeout}, nil
	case TypeHTTP:
		one("profile_path", sc.ProfilePath, "competence_path", sc.CompetencePath, "attitude_path", sc.AttitudePath)
		base, err := templateBase(sc.URL)
		if err != nil {
			bad("url", "%v", err)
		}
		if sc.MaxRetries < 0 {
			bad("max_retries", "must not be negative, got %d", sc.MaxRetries)
		}
		if len(errs) > 0 {
			return nil, errs
		}
		api := config.API{
			BaseURL: base, Auth: sc.Auth, Timeout: timeout, MaxRetries: sc.MaxRetries,
			RetryWaitMin: min(50*time.Millisecond, timeout/4), RetryWaitMax: max(timeout/2, time.Millisecond),
		}
		client, err := connectors.NewAPIClient(connectors.Source{Name: name, Config: config.Connector{API: api}, Log: d.Log.Named("enrichment.source"), Metrics: d.APIMetrics}, d.APIMetrics)
		if err != nil {
			return nil, relocate(err, "connectors."+name+".api.", path+".")
		}
		return &HTTPSource{r: r, client: client, tmpl: sc.URL, paths: [3]string{sc.ProfilePath, sc.CompetencePath, sc.AttitudePath}, timeout: timeout}, nil
	case "":
		bad("type", "is required: itsm or http")
	default:
		msg := fmt.Sprintf("%q is not a source type; use itsm or http", sc.Type)
		if s := config.Suggest(sc.Type, []string{TypeITSM, TypeHTTP}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		bad("type", "%s", msg)
	}
	return nil, errs
}

// templateBase checks a URL template and returns its scheme and host.
func templateBase(tmpl string) (string, error) {
	if !strings.Contains(tmpl, "{email}") && !strings.Contains(tmpl, "{id}") {
		return "", fmt.Errorf("%q names neither {email} nor {id}", tmpl)
	}
	u, err := url.Parse(strings.NewReplacer("{email}", "x", "{id}", "x").Replace(tmpl))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", tmpl)
	}
	if strings.Contains(strings.SplitN(strings.SplitN(tmpl, "//", 2)[1], "/", 2)[0], "{") {
		return "", fmt.Errorf("%q has a placeholder in its host; the caller must not choose where credentials go", tmpl)
	}
	return u.Scheme + "://" + u.Host, nil
}

// relocate rewrites the key paths of config errors from one prefix to
// another ("connectors.hr.api.auth.type" → "profiles.sources.hr.auth.type").
func relocate(err error, from, to string) error {
	errs := config.AsErrors(err)
	for _, e := range errs {
		if strings.HasPrefix(e.Path, from) {
			e.Path = to + strings.TrimPrefix(e.Path, from)
			if e.Path == to+"base_url" {
				e.Path = to + "url"
			}
		}
	}
	return errs
}
