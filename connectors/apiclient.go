package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/deskrelay/deskrelay/config"
)

// APIClient calls one source's vendor REST API: every request goes through
// go-retryablehttp (429, 5xx and network errors are retried with jittered
// backoff, a Retry-After is honoured), carries the configured credentials,
// and is counted in the poll metrics. It is safe for concurrent use.
type APIClient struct {
	source string
	base   *url.URL
	rc     *retryablehttp.Client
	accept string
}

// APIOption configures [NewAPIClient].
type APIOption func(*apiOptions) error

type apiOptions struct {
	tokenURL  string
	accept    string
	transport http.RoundTripper
	now       func() time.Time
}

// WithDefaultTokenURL sets the OAuth2 token endpoint used when
// api.auth.token_url is empty; a path is resolved against api.base_url.
func WithDefaultTokenURL(u string) APIOption {
	return func(o *apiOptions) error { o.tokenURL = u; return nil }
}

// WithAccept sets the Accept header of every request (default
// application/json).
func WithAccept(v string) APIOption {
	return func(o *apiOptions) error { o.accept = v; return nil }
}

// WithTransport replaces the network transport (tests).
func WithTransport(rt http.RoundTripper) APIOption {
	return func(o *apiOptions) error { o.transport = rt; return nil }
}

// NewAPIClient builds the client for src's api block. Configuration
// problems come back as config.Errors with key paths.
func NewAPIClient(src Source, m *PollMetrics, opts ...APIOption) (*APIClient, error) {
	o := apiOptions{accept: "application/json", now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	api := src.Config.API
	base, err := url.Parse(strings.TrimRight(api.BaseURL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, config.Errorf(src.Path("api.base_url"), "%q is not an http(s) URL", api.BaseURL)
	}
	if m == nil {
		m = NewPollMetrics(nil)
	}
	transport := o.transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc := &http.Client{Transport: transport, Timeout: api.Timeout}
	switch a := api.Auth; a.Type {
	case "basic":
		hc.Transport = headerTransport{next: transport, set: func(r *http.Request) { r.SetBasicAuth(a.Username, a.Password.Reveal()) }}
	case "bearer":
		hc.Transport = headerTransport{next: transport, set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+a.Token.Reveal()) }}
	case "oauth2_client_credentials", "oauth2_password":
		tokenURL := a.TokenURL
		if tokenURL == "" {
			tokenURL = o.tokenURL
		}
		if tokenURL == "" {
			return nil, config.Errorf(src.Path("api.auth.token_url"), "is required for %s", a.Type)
		}
		tu, err := base.Parse(tokenURL)
		if err != nil {
			return nil, config.Errorf(src.Path("api.auth.token_url"), "%q is not a URL", tokenURL)
		}
		// The token endpoint is called with the same transport and timeout.
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: transport, Timeout: api.Timeout})
		var ts oauth2.TokenSource
		if a.Type == "oauth2_client_credentials" {
			ts = (&clientcredentials.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret.Reveal(), TokenURL: tu.String(), Scopes: a.Scopes}).TokenSource(tctx)
		} else {
			pc := &oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret.Reveal(), Endpoint: oauth2.Endpoint{TokenURL: tu.String()}, Scopes: a.Scopes}
			ts = passwordSource{ctx: tctx, cfg: pc, user: a.Username, pass: a.Password.Reveal()}
		}
		hc.Transport = &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, ts), Base: transport}
	default:
		return nil, config.Errorf(src.Path("api.auth.type"), "%q is not allowed; use basic, bearer, oauth2_client_credentials or oauth2_password", a.Type)
	}

	waitMax := api.RetryWaitMax
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       zapLeveled{src.Log},
		RetryWaitMin: api.RetryWaitMin,
		RetryWaitMax: waitMax,
		RetryMax:     api.MaxRetries,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, _ *http.Request, attempt int) {
			if attempt > 0 {
				m.retries.WithLabelValues(src.Name).Inc()
			}
		},
		ResponseLogHook: func(_ retryablehttp.Logger, resp *http.Response) {
			m.api.WithLabelValues(src.Name, fmt.Sprint(resp.StatusCode)).Inc()
		},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if resp != nil {
				switch {
				case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
					return false, nil
				case RetryAfter(resp.Header, o.now()) > waitMax:
					// Longer than we wait inside one call: end it, and let
					// the poller wait the Retry-After out.
					return false, nil
				}
			}
			return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
		},
		Backoff: func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
			if resp != nil {
				if d := RetryAfter(resp.Header, o.now()); d > 0 {
					return d // never sooner than the vendor asked
				}
			}
			d := time.Duration(float64(lo) * math.Pow(2, float64(attempt)))
			if d <= 0 || d > hi {
				d = hi
			}
			return d/2 + time.Duration(rand.Int64N(int64(d)/2+1)) // jitter
		},
	}
	for _, code := range []int{200, 400, 401, 403, 404, 429, 500, 502, 503} {
		m.api.WithLabelValues(src.Name, fmt.Sprint(code))
	}
	m.retries.WithLabelValues(src.Name)
	return &APIClient{source: src.Name, base: base, rc: rc, accept: o.accept}, nil
}

// BaseURL returns api.base_url, parsed.
func (c *APIClient) BaseURL() *url.URL { u := *c.base; return &u }

// Get requests path (relative to api.base_url) with query and returns the
// response, whose body was read into body. A non-2xx answer is a
// *[VendorError]. Limit caps the body read (0: 32 MiB).
func (c *APIClient) Get(ctx context.Context, path string, query url.Values) (*http.Response, []byte, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	return c.GetURL(ctx, u.String())
}

// GetURL requests an absolute URL, such as a vendor's next-page link. It
// must be on the host of api.base_url, so that credentials never go
// elsewhere.
func (c *APIClient) GetURL(ctx context.Context, raw string) (*http.Response, []byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("vendor link %q: %w", raw, err)
	}
	if u.Host != c.base.Host || u.Scheme != c.base.Scheme {
		return nil, nil, fmt.Errorf("vendor link points to %s://%s, not to api.base_url's host %s; refusing to send credentials there", u.Scheme, u.Host, c.base.Host)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", c.accept)
	req.Header.Set("User-Agent", "deskrelay")
	resp, err := c.rc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, nil, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp, nil, fmt.Errorf("GET %s: read body: %w", redact(u), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, body, &VendorError{
			Status:     resp.StatusCode,
			RetryAfter: RetryAfter(resp.Header, time.Now()),
			Body:       truncate(string(body), 512),
			URL:        redact(u),
		}
	}
	return resp, body, nil
}

// passwordSource gets a token with the OAuth2 password grant when first
// asked, not at construction, so that building a client does no I/O;
// ReuseTokenSource caches the token and asks again when it expires.
type passwordSource struct {
	ctx        context.Context
	cfg        *oauth2.Config
	user, pass string
}

func (p passwordSource) Token() (*oauth2.Token, error) {
	tok, err := p.cfg.PasswordCredentialsToken(p.ctx, p.user, p.pass)
	if err != nil {
		return nil, fmt.Errorf("oauth2 password grant at %s: %w", p.cfg.Endpoint.TokenURL, err)
	}
	return tok, nil
}

// headerTransport sets credentials on a clone of each request.
type headerTransport struct {
	next http.RoundTripper
	set  func(*http.Request)
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	t.set(r)
	return t.next.RoundTrip(r)
}

// redact drops the query and credentials of a URL for logs and errors.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// zapLeveled adapts zap to retryablehttp's LeveledLogger. Its messages are
// per request, so they go to debug; retries are counted in metrics.
type zapLeveled struct{ l *zap.Logger }

func (z zapLeveled) fields(kv []any) []zap.Field {
	fs := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		if k == "url" { // may carry a query: keep the path only
			if s, ok := kv[i+1].(string); ok {
				if u, err := url.Parse(s); err == nil {
					fs = append(fs, zap.String("url", redact(u)))
					continue
				}
			}
		}
		fs = append(fs, zap.Any(k, kv[i+1]))
	}
	return fs
}

func (z zapLeveled) Error(msg string, kv ...any) { z.l.Debug(msg, z.fields(kv)...) }
func (z zapLeveled) Info(msg string, kv ...any)  { z.l.Debug(msg, z.fields(kv)...) }
func (z zapLeveled) Debug(msg string, kv ...any) { z.l.Debug(msg, z.fields(kv)...) }
func (z zapLeveled) Warn(msg string, kv ...any)  { z.l.Debug(msg, z.fields(kv)...) }

// IsVendorStatus reports whether err is a *VendorError with one of codes.
func IsVendorStatus(err error, codes ...int) bool {
	var ve *VendorError
	if !errors.As(err, &ve) {
		return false
	}
	for _, c := range codes {
		if ve.Status == c {
			return true
		}
	}
	return false
}
