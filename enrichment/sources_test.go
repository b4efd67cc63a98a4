package enrichment

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

const (
	aishaID    = "ce0d678358519218dd705c9372750d40" // in sys_user_record.json
	aishaEmail = "aisha.doer@example.com"
)

// fakeServiceNow serves sys_user as the Table API does, from testdata:
// the record fixture for its sys_id, the list fixture for its email, 404
// and empty lists otherwise. record, when set, replaces the record's
// result (for score fields).
func fakeServiceNow(t *testing.T, record map[string]any) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "deskrelay" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/now/table/sys_user/"+aishaID:
			if record != nil {
				_ = json.NewEncoder(w).Encode(map[string]any{"result": record})
				return
			}
			_, _ = w.Write(fixture.Read(t, "testdata", "sys_user_record.json"))
		case strings.HasPrefix(r.URL.Path, "/api/now/table/sys_user/"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(fixture.Read(t, "testdata", "error_404_no_record.json"))
		case r.URL.Path == "/api/now/table/sys_user":
			if r.URL.Query().Get("sysparm_limit") != "1" || !strings.Contains(r.URL.Query().Get("sysparm_fields"), "u_it_profile") {
				t.Errorf("sys_user list query = %q, want sysparm_limit=1 and the profile field", r.URL.RawQuery)
			}
			if r.URL.Query().Get("sysparm_query") == "email="+aishaEmail {
				_, _ = w.Write(fixture.Read(t, "testdata", "sys_user_lookup_by_email.json"))
				return
			}
			_, _ = w.Write([]byte(`{"result":[]}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func snowConnectors(baseURL string) map[string]config.Connector {
	return map[string]config.Connector{"snow": {Type: "servicenow", API: config.API{
		BaseURL: baseURL, Auth: config.APIAuth{Type: "basic", Username: "deskrelay", Password: config.NewSecret("secret")},
		Timeout: 5 * time.Second, MaxRetries: 0, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond,
	}}}
}

func buildSource(t *testing.T, name string, sc config.ProfileSource, conns map[string]config.Connector) Source {
	t.Helper()
	scales, err := NewScales(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSource(name, sc, time.Second, scales, Deps{Connectors: conns, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("newSource(%s) = %v", name, err)
	}
	return s
}

func TestUserField(t *testing.T) {
	srv, _ := fakeServiceNow(t, nil)
	src := buildSource(t, "snow-user", config.ProfileSource{Type: TypeITSM, Connector: "snow", Field: "u_it_profile"}, snowConnectors(srv.URL))
	for _, tt := range []struct {
		name   string
		caller ticket.Caller
		want   ticket.ProfileName // "" = miss
	}{
		{"by sys_id", ticket.Caller{ID: aishaID}, ticket.Doer},
		{"by email", ticket.Caller{Email: aishaEmail}, ticket.Doer},
		{"an unknown sys_id falls back to the email", ticket.Caller{ID: strings.Repeat("0", 32), Email: aishaEmail}, ticket.Doer},
		{"an id that is not a sys_id is not put in a URL", ticket.Caller{ID: "../../sys_user_group"}, ""},
		{"nobody with that email is a miss", ticket.Caller{Email: "nobody@example.com"}, ""},
		{"an email with a query separator is not asked for", ticket.Caller{Email: "a^ORactive=true@example.com"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ok, err := src.Lookup(t.Context(), tt.caller)
			if err != nil {
				t.Fatalf("Lookup = %v", err)
			}
			if ok != (tt.want != "") || p.Name != tt.want {
				t.Errorf("Lookup = %+v, %v; want %q", p, ok, tt.want)
			}
			if ok && p.Source != "snow-user" {
				t.Errorf("Source = %q, want snow-user", p.Source)
			}
		})
	}
	t.Run("wrong credentials are an error, not a miss", func(t *testing.T) {
		conns := snowConnectors(srv.URL)
		c := conns["snow"]
		c.API.Auth.Password = config.NewSecret("wrong")
		conns["snow"] = c
		bad := buildSource(t, "snow-user", config.ProfileSource{Type: TypeITSM, Connector: "snow", Field: "u_it_profile"}, conns)
		if _, _, err := bad.Lookup(t.Context(), ticket.Caller{ID: aishaID}); err == nil {
			t.Error("Lookup with wrong credentials = nil error")
		}
	})
	t.Run("two score fields are classified on their scale", func(t *testing.T) {
		var rec map[string]any
		if err := json.Unmarshal(fixture.Read(t, "testdata", "sys_user_record.json"), &struct {
			Result *map[string]any `json:"result"`
		}{&rec}); err != nil {
			t.Fatal(err)
		}
		rec["u_it_competence"], rec["u_it_attitude"] = "2", "4" // our example fields, Likert
		srv, _ := fakeServiceNow(t, rec)
		src := buildSource(t, "snow-scores", config.ProfileSource{Type: TypeITSM, Connector: "snow", CompetenceField: "u_it_competence", AttitudeField: "u_it_attitude", Scale: "1-5"}, snowConnectors(srv.URL))
		p, ok, err := src.Lookup(t.Context(), ticket.Caller{ID: aishaID})
		if err != nil || !ok || p.Name != ticket.Trier || p.Competence == nil || math.Abs(*p.Competence-0.25) > 1e-9 || math.Abs(*p.Attitude-0.75) > 1e-9 {
			t.Errorf("Lookup = %+v, %v, %v; want trier with competence 0.25, attitude 0.75", p, ok, err)
		}
	})
}

// fakeLookupAPI is an HR-style lookup API: GET /people/{email}/it-profile
// and /people?id=…, bearer token; hang makes it block until the client
// gives up.
func fakeLookupAPI(t *testing.T, hang bool) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var lastURI atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastURI.Store(r.RequestURI)
		if hang {
			<-r.Context().Done()
			return
		}
		if r.Header.Get("Authorization") != "Bearer hr-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/people/new.hire+it@example.com/it-profile":
			_, _ = w.Write([]byte(`{"data":{"itProfile":"Hands-on","scores":{"competence":9,"attitude":1}}}`))
		case r.URL.Path == "/people" && r.URL.Query().Get("id") == "AD\\jdoe":
			_, _ = w.Write([]byte(`{"data":{"itProfile":"prioritizer"}}`))
		case r.URL.Path == "/people/broken@example.com/it-profile":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &lastURI
}

func TestHTTPSource(t *testing.T) {
	srv, lastURI := fakeLookupAPI(t, false)
	auth := config.APIAuth{Type: "bearer", Token: config.NewSecret("hr-token")}
	byEmail := buildSource(t, "hr", config.ProfileSource{Type: TypeHTTP, URL: srv.URL + "/people/{email}/it-profile", Auth: auth,
		ProfilePath: "data.itProfile", Values: map[string]string{"hands-on": "doer"}}, nil)
	byID := buildSource(t, "hr-id", config.ProfileSource{Type: TypeHTTP, URL: srv.URL + "/people?id={id}", Auth: auth, ProfilePath: "data.itProfile"}, nil)
	scores := buildSource(t, "hr-scores", config.ProfileSource{Type: TypeHTTP, URL: srv.URL + "/people/{email}/it-profile", Auth: auth,
		CompetencePath: "data.scores.competence", AttitudePath: "data.scores.attitude"}, nil)
	for _, tt := range []struct {
		name    string
		src     Source
		caller  ticket.Caller
		want    ticket.ProfileName
		wantURI string
		wantErr bool
	}{
		{"the email is escaped into the path and translated by values", byEmail, ticket.Caller{Email: "New.Hire+it@example.com"}, ticket.Doer, "/people/new.hire+it@example.com/it-profile", false},
		{"the id is escaped into the query", byID, ticket.Caller{ID: "AD\\jdoe"}, ticket.Prioritizer, "/people?id=AD%5Cjdoe", false},
		{"two scores on 0-10", scores, ticket.Caller{Email: "new.hire+it@example.com"}, ticket.Prioritizer, "", false},
		{"a 404 is a miss", byEmail, ticket.Caller{Email: "nobody@example.com"}, "", "", false},
		{"a caller without the template's key is a miss", byID, ticket.Caller{Email: "x@example.com"}, "", "", false},
		{"a 500 is an error", byEmail, ticket.Caller{Email: "broken@example.com"}, "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ok, err := tt.src.Lookup(t.Context(), tt.caller)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Lookup error = %v, want error %v", err, tt.wantErr)
			}
			if ok != (tt.want != "") || p.Name != tt.want {
				t.Errorf("Lookup = %+v, %v; want %q", p, ok, tt.want)
			}
			if tt.wantURI != "" {
				if got, _ := lastURI.Load().(string); got != tt.wantURI {
					t.Errorf("request URI = %q, want %q", got, tt.wantURI)
				}
			}
		})
	}
}

// TestChainFallsThroughAHangingHTTPSource: a lookup API that never answers
// costs the chain its timeout, and the next source answers.
func TestChainFallsThroughAHangingHTTPSource(t *testing.T) {
	srv, _ := fakeLookupAPI(t, true)
	hr := buildSource(t, "hr", config.ProfileSource{Type: TypeHTTP, URL: srv.URL + "/people/{email}", Auth: config.APIAuth{Type: "bearer", Token: config.NewSecret("hr-token")},
		ProfilePath: "profile", Timeout: 100 * time.Millisecond}, nil)
	m := NewMetrics(nil)
	next := &fakeSource{name: "directory", p: doerProfile, ok: true}
	c := NewChain(zap.NewNop(), m, time.Hour, hr, next) // the source's own timeout applies
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tr, err := c.Explain(ctx, ticket.Caller{Email: "someone@example.com"}, false)
	if err != nil {
		t.Fatalf("Explain = %v", err)
	}
	if withoutAt(tr.Profile) != doerProfile || len(tr.Steps) != 2 || tr.Steps[0].Result != ResultTimeout || tr.Steps[1].Result != ResultHit {
		t.Errorf("trace = %+v, want hr timeout then directory hit", tr)
	}
	if n := testutil.ToFloat64(m.lookups.WithLabelValues("hr", ResultTimeout)); n != 1 {
		t.Errorf("lookups{hr,timeout} = %v, want 1", n)
	}
}

func TestBuildErrors(t *testing.T) {
	cfg := config.Default().Profiles
	cfg.Order = []string{"directory", "snow-user", "hr", "hr", "snow-usr"}
	cfg.Sources = map[string]config.ProfileSource{
		"snow-user": {Type: TypeITSM, Connector: "zen", Field: "u_it_profile"},
		"hr":        {Type: TypeHTTP, URL: "https://{email}.example.com/x", ProfilePath: "p", CompetencePath: "c", Auth: config.APIAuth{Type: "bearer"}},
		"unused":    {Type: "htp"},
	}
	cfg.Cache.NegativeTTL = time.Hour
	err := Check(cfg, map[string]config.Connector{"zen": {Type: "zendesk"}})
	got := err.Error()
	for _, want := range []string{
		`profiles.order[3]: "hr" is listed twice`,
		`profiles.order[4]: "snow-usr" is neither directory nor a source under profiles.sources (did you mean "snow-user"?)`,
		`profiles.sources.snow-user.connector: "zen" is a zendesk connector; itsm sources read ServiceNow sys_user`,
		`profiles.sources.hr.profile_path: give either profile_path or competence_path and attitude_path, not both`,
		`profiles.sources.hr.url: "https://{email}.example.com/x" has a placeholder in its host`,
		`profiles.sources.unused: is not in profiles.order`,
		`profiles.cache.negative_ttl: 1h0m0s is longer than ttl 5m0s`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Check error lacks %q; got:\n%s", want, got)
		}
	}
	var ces config.Errors
	if !errors.As(err, &ces) {
		t.Errorf("Check error is %T, want config.Errors", err)
	}
	if err := Check(config.Default().Profiles, nil); err != nil {
		t.Errorf("Check(default) = %v", err)
	}
}
