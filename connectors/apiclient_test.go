package connectors

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
)

func apiSource(t *testing.T, url string, auth config.APIAuth) Source {
	t.Helper()
	return Source{Name: "src", Log: zaptest.NewLogger(t), Config: config.Connector{API: config.API{
		BaseURL: url, Auth: auth, Timeout: 2 * time.Second, MaxRetries: 3,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 50 * time.Millisecond,
	}}}
}

func TestAPIClientRetries(t *testing.T) {
	for _, tt := range []struct {
		name       string
		answers    []int  // status per call; the last repeats
		retryAfter string // on 429/503 answers
		wantCalls  int32
		wantStatus int // 0: success
		wantWait   time.Duration
	}{
		{"a 429 with a short Retry-After is retried", []int{429, 200}, "0", 2, 0, 0},
		{"a 500 is retried with backoff", []int{500, 500, 200}, "", 3, 0, 0},
		{"a Retry-After beyond retry_wait_max ends the call at once", []int{429}, "120", 1, 429, 120 * time.Second},
		{"401 is not retried", []int{401}, "", 1, 401, 0},
		{"403 is not retried", []int{403}, "", 1, 403, 0},
		{"retries stop after max_retries", []int{503}, "", 4, 503, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				code := tt.answers[min(n, len(tt.answers))-1]
				if tt.retryAfter != "" && (code == 429 || code == 503) {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(code)
				_, _ = w.Write([]byte(`{"result":[]}`))
			}))
			defer srv.Close()
			reg := prometheus.NewRegistry()
			m := NewPollMetrics(reg)
			c, err := NewAPIClient(apiSource(t, srv.URL, config.APIAuth{Type: "bearer", Token: config.NewSecret("tok")}), m)
			if err != nil {
				t.Fatal(err)
			}
			_, body, err := c.Get(t.Context(), "/api/now/table/incident", nil)
			var ve *VendorError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("Get = %v, want success", err)
			case tt.wantStatus == 0 && string(body) != `{"result":[]}`:
				t.Errorf("body = %q", body)
			case tt.wantStatus != 0 && (!errors.As(err, &ve) || ve.Status != tt.wantStatus || ve.RetryAfter != tt.wantWait):
				t.Fatalf("Get = %v, want a VendorError %d with RetryAfter %v", err, tt.wantStatus, tt.wantWait)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("server saw %d calls, want %d", got, tt.wantCalls)
			}
			if got := testutil.ToFloat64(m.retries.WithLabelValues("src")); got != float64(tt.wantCalls-1) {
				t.Errorf("retries metric = %v, want %d", got, tt.wantCalls-1)
			}
		})
	}
}

func TestAPIClientAuth(t *testing.T) {
	var tokenCalls atomic.Int32
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth_token.do" {
			tokenCalls.Add(1)
			_ = r.ParseForm()
			if r.Form.Get("grant_type") != "client_credentials" {
				http.Error(w, `{"error":"unsupported_grant_type"}`, 400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"abc123","token_type":"Bearer","expires_in":1800}`))
			return
		}
		gotAuth.Store(r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name string
		auth config.APIAuth
		want string
	}{
		{"basic", config.APIAuth{Type: "basic", Username: "integration", Password: config.NewSecret("pw")}, "Basic aW50ZWdyYXRpb246cHc="},
		{"bearer", config.APIAuth{Type: "bearer", Token: config.NewSecret("tok")}, "Bearer tok"},
		{"oauth2 client credentials at the default token URL", config.APIAuth{Type: "oauth2_client_credentials", ClientID: "id", ClientSecret: config.NewSecret("s")}, "Bearer abc123"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewAPIClient(apiSource(t, srv.URL, tt.auth), nil, WithDefaultTokenURL("/oauth_token.do"))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, _, err := c.Get(t.Context(), "/api/now/table/sys_user", nil); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := gotAuth.Load().(string); got != tt.want {
				t.Errorf("Authorization = %q, want %q", got, tt.want)
			}
		})
	}
	if n := tokenCalls.Load(); n != 1 {
		t.Errorf("token endpoint called %d times for two requests, want 1 (token reused)", n)
	}
}

func TestAPIClientRefusesForeignLinks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c, err := NewAPIClient(apiSource(t, srv.URL, config.APIAuth{Type: "bearer", Token: config.NewSecret("tok")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.GetURL(t.Context(), "https://evil.example.com/next?page=2")
	if err == nil || !strings.Contains(err.Error(), "refusing to send credentials there") {
		t.Errorf("GetURL(foreign host) = %v, want a refusal", err)
	}
}
