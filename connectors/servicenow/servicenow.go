// Package servicenow is the ServiceNow connector: webhooks sent by a
// Business Rule, an Outbound REST Message or a Flow Designer REST step
// (ServiceNow defines neither payload nor signature for those, so the body
// is a Table API record and the request is authenticated by the source's
// auth block), and polling of the Table API (/api/now/table/<table>),
// ordered by sys_updated_on then sys_id. It does not store anything: the
// connectors package's ingress and PollRunner do.
package servicenow

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

func init() {
	connectors.Register(connectors.Spec{
		Type:       "servicenow",
		Summary:    "ServiceNow: Table API records by webhook (Business Rule, Flow Designer) and Table API polling",
		Options:    optionKeys,
		NewWebhook: newWebhook,
		NewPoller:  newPoller,
		Check:      check,
		Sign:       sign,
	})
}

var (
	_ connectors.Webhook  = (*webhook)(nil)
	_ connectors.Verifier = (*webhook)(nil)
	_ connectors.Poller   = (*poller)(nil)
)

// optionKeys are the vendor keys of a servicenow source, besides the
// common type, auth, api, poll and max_body_bytes.
var optionKeys = []string{
	"table", "query", "fields", "codes", "display_value",
	"lookup_caller_email", "caller_cache_ttl", "caller_cache_size", "settle",
}

// Defaults of the vendor options.
const (
	DefaultTable           = "incident"
	DefaultCallerCacheTTL  = time.Hour
	DefaultCallerCacheSize = 10000
	// DefaultSettle is how far behind now a poll stops reading: records
	// updated in the last seconds may still be joined by others with the
	// same sys_updated_on second.
	DefaultSettle = 5 * time.Second
	// DefaultTokenURL is ServiceNow's OAuth token endpoint, relative to
	// api.base_url.
	DefaultTokenURL = "/oauth_token.do"
)

// options are the decoded vendor options of one source.
type options struct {
	table     string
	query     string
	mapper    *mapper
	display   string // "" (database values) or "all"
	lookup    bool
	cacheTTL  time.Duration
	cacheSize int
	settle    time.Duration
}

var (
	tableRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
)

// decodeOptions checks and decodes src's vendor options; the error is
// config.Errors with key paths.
func decodeOptions(src connectors.Source) (*options, error) {
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(src.Path(key), format, args...))
	}
	raw := src.Config.Options
	o := &options{table: DefaultTable, cacheTTL: DefaultCallerCacheTTL, cacheSize: DefaultCallerCacheSize, settle: DefaultSettle}
	decode := func(key string, out any) bool {
		v, ok := raw[key]
		if !ok || v == nil {
			return false
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:           out,
			WeaklyTypedInput: true,
			DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
		})
		if err == nil {
			err = dec.Decode(v)
		}
		if err != nil {
			bad(key, "%v", strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):\n\n"))
			return false
		}
		return true
	}

	var s string
	if decode("table", &s) {
		if !tableRE.MatchString(s) {
			bad("table", "%q is not a table name such as incident or sc_req_item", s)
		}
		o.table = s
	}
	if decode("query", &o.query) {
		// Our conditions are ANDed to this query and we set the order: a
		// new-query (^NQ) or ORDERBY part would change what they mean.
		if strings.Contains(o.query, "^NQ") || strings.Contains(strings.ToUpper(o.query), "ORDERBY") {
			bad("query", "must be a plain encoded query (conditions joined by ^ and ^OR), without ^NQ or ORDERBY")
		}
	}
	if decode("display_value", &s) {
		switch s {
		case "false", "":
		case "all":
			o.display = "all"
		case "true":
			bad("display_value", "true returns display values only: times in the API user's zone and no sys_ids; use false (the default) or all")
		default:
			bad("display_value", "%q is not allowed; use false or all", s)
		}
	}
	decode("lookup_caller_email", &o.lookup)
	if decode("caller_cache_ttl", &o.cacheTTL) && o.cacheTTL <= 0 {
		bad("caller_cache_ttl", "must be greater than 0, got %s", o.cacheTTL)
	}
	if decode("caller_cache_size", &o.cacheSize) && o.cacheSize < 1 {
		bad("caller_cache_size", "must be at least 1, got %d", o.cacheSize)
	}
	if decode("settle", &o.settle) && (o.settle < time.Second || o.settle > time.Hour) {
		bad("settle", "must be between 1s and 1h, got %s", o.settle)
	}

	var fields map[string]any
	decode("fields", &fields)
	var codes map[string]map[string]any
	decode("codes", &codes)
	m, merrs := newMapper(src, o.table, fields, codes)
	errs = append(errs, merrs...)
	o.mapper = m
	if o.lookup && src.Config.API.BaseURL == "" {
		errs = append(errs, config.Errorf(src.Path("api.base_url"), "is required when lookup_caller_email is true: the caller's email is read from %s/api/now/table/sys_user", "<base_url>"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return o, nil
}

// newClient builds the Table API client of src: basic or OAuth2 (client
// credentials or password grant) against /oauth_token.do unless
// api.auth.token_url says otherwise.
func newClient(src connectors.Source) (*connectors.APIClient, error) {
	c, err := connectors.NewAPIClient(src, src.Metrics, connectors.WithDefaultTokenURL(DefaultTokenURL))
	if err != nil {
		return nil, fmt.Errorf("servicenow: %w", err)
	}
	return c, nil
}

// flatten turns {caller: {email: x}} and {"caller.email": x} alike into
// "caller.email" → x: viper hands dotted YAML keys over in both forms.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

// sortedKeys returns m's keys in order, for deterministic errors.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// orDefault returns d when v is zero.
func orDefault[T comparable](v, d T) T { return cmp.Or(v, d) }
