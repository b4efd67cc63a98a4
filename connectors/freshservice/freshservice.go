// Package freshservice is the connector for Freshservice (Freshworks' ITSM):
// webhooks sent by a Workflow Automator "Trigger Webhook" action, and
// polling of GET /api/v2/tickets?updated_since=… with its page/Link
// pagination.
//
// Freshservice does not sign webhooks, so a webhook source is authenticated
// by the configured auth block (bearer, basic or hmac). The ticket codes
// Freshservice sends as numbers (or, from a hand-written webhook body, as
// labels) are mapped to deskrelay's fields through tables that a config can
// override: see [defaultTables] and docs/connectors/freshservice.md.
//
// The package owns the decoding of Freshservice records and the poll
// cursor; the lease, the cursor store, the ingest stream and the retries
// belong to package connectors.
package freshservice

import (
	"cmp"
	"fmt"
	"net/http"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

func init() {
	connectors.Register(connectors.Spec{
		Type:       "freshservice",
		Summary:    "Freshservice: Workflow Automator webhooks and updated_since polling of /api/v2/tickets",
		Options:    optionKeys,
		NewWebhook: newWebhook,
		NewPoller:  newPoller,
		Check:      check,
		// No Sign: Freshservice does not sign webhooks, the auth block does.
	})
}

var (
	_ connectors.Webhook = (*webhook)(nil)
	_ connectors.Poller  = (*poller)(nil)
)

// optionKeys are the vendor keys of a freshservice connector, besides the
// common type, auth, max_body_bytes, api and poll.
var optionKeys = []string{"priority", "urgency", "impact", "source", "status", "overlap", "include_requester", "workspace_id"}

// DefaultOverlap is how far before the vendor's clock at the start of a
// walk the next walk's updated_since lies (see poll.go).
const DefaultOverlap = 2 * time.Minute

// MaxPageSize is the largest per_page Freshservice accepts.
const MaxPageSize = 100

// options are the decoded vendor keys.
type options struct {
	tables           *tables
	overlap          time.Duration
	includeRequester bool
	workspaceID      int
}

// decodeOptions reads and checks src's vendor keys; errors are
// config.Errors with key paths.
func decodeOptions(src connectors.Source) (options, error) {
	o := options{overlap: DefaultOverlap, includeRequester: true}
	var errs config.Errors
	raw := src.Config.Options
	decode := func(key string, out any) bool {
		v, ok := raw[key]
		if !ok || v == nil {
			return false
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			WeaklyTypedInput: true,
			DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
			Result:           out,
		})
		if err == nil {
			err = dec.Decode(v)
		}
		if err != nil {
			errs = append(errs, config.Errorf(src.Path(key), "%v", err))
			return false
		}
		return true
	}

	over := map[string]map[string]string{}
	for _, key := range []string{"priority", "urgency", "impact", "source", "status"} {
		var m map[string]string
		if decode(key, &m) {
			over[key] = m
		}
	}
	t, terrs := newTables(over, src.Path)
	errs = append(errs, terrs...)
	o.tables = t

	var overlap time.Duration
	if decode("overlap", &overlap) {
		if overlap < time.Second {
			errs = append(errs, config.Errorf(src.Path("overlap"), "must be at least 1s (Freshservice times have whole seconds), got %s", overlap))
		}
		o.overlap = overlap
	}
	var inc bool
	if decode("include_requester", &inc) {
		o.includeRequester = inc
	}
	var ws int
	if decode("workspace_id", &ws) {
		if ws < 0 {
			errs = append(errs, config.Errorf(src.Path("workspace_id"), "must be a Freshservice workspace id (> 0), got %d", ws))
		}
		o.workspaceID = ws
	}
	if len(errs) > 0 {
		return options{}, errs
	}
	return o, nil
}

// apiKeyTransport turns the Authorization: Bearer <api key> that
// connectors.APIClient sends for api.auth.type bearer into what
// Freshservice expects: HTTP Basic with the API key as user name and "X"
// as password. It exists because api.auth.username is not a secret in
// config, so the API key could not otherwise come from env: or file:.
type apiKeyTransport struct{ next http.RoundTripper }

func (t apiKeyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	const bearer = "Bearer "
	if a := r.Header.Get("Authorization"); len(a) > len(bearer) && a[:len(bearer)] == bearer {
		r = r.Clone(r.Context())
		r.SetBasicAuth(a[len(bearer):], "X")
	}
	return t.next.RoundTrip(r)
}

// newAPIClient builds the Freshservice API client of src. With next nil
// it uses a clone of http.DefaultTransport.
func newAPIClient(src connectors.Source, next http.RoundTripper) (*connectors.APIClient, error) {
	if next == nil {
		next = http.DefaultTransport.(*http.Transport).Clone()
	}
	var rt http.RoundTripper = next
	if src.Config.API.Auth.Type == "bearer" {
		rt = apiKeyTransport{next: next}
	}
	c, err := connectors.NewAPIClient(src, src.Metrics, connectors.WithTransport(rt))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// pageSize returns poll.page_size checked against Freshservice's maximum.
func pageSize(src connectors.Source) (int, error) {
	n := cmp.Or(src.Config.Poll.PageSize, config.DefaultPoll.PageSize)
	if n < 1 || n > MaxPageSize {
		return 0, config.Errorf(src.Path("poll.page_size"), "Freshservice returns at most %d tickets per page, got %d", MaxPageSize, n)
	}
	return n, nil
}

func errorf(format string, args ...any) error { return fmt.Errorf("freshservice: "+format, args...) }
