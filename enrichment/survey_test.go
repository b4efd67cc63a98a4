package enrichment

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

// startBucket runs a JetStream server and returns a connection and a
// fresh profiles bucket on it.
func startBucket(t *testing.T) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	s := bustest.Start(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "profiles", History: 5})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return nc, kv
}

// buildOn builds the profile machinery over kv with the default config
// (cache on) and runs it until the test ends, after its directory synced.
func buildOn(t *testing.T, nc *nats.Conn, kv jetstream.KeyValue, edit func(*config.Profiles)) (*Built, *Metrics) {
	t.Helper()
	cfg := config.Default().Profiles
	if edit != nil {
		edit(&cfg)
	}
	m := NewMetrics(nil)
	b, err := Build(cfg, Deps{KV: kv, Conn: nc, SurveySubject: "deskrelay.surveys", Quadrant: defaultQuadrant(t), Log: zaptest.NewLogger(t), Metrics: m})
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run after cancel = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run still running 10s after cancel")
		}
	})
	select {
	case <-b.Directory.Synced():
	case err := <-errc:
		t.Fatalf("Run = %v before the directory synced", err)
	case <-time.After(10 * time.Second):
		t.Fatal("directory not synced after 10s")
	}
	return b, m
}

// waitProfile looks the caller up until the profile has the wanted name,
// for at most a second, and reports what it last saw.
func waitProfile(t *testing.T, c *Chain, caller ticket.Caller, want ticket.ProfileName) ticket.Profile {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		p, err := c.Lookup(t.Context(), caller)
		if err == nil && p.Name == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 1s Lookup = %+v, %v; want %s", p, err, want)
		}
		time.Sleep(5 * time.Millisecond) // bounded poll of another component
	}
}

func answer(email string, c, a float64, scale string, at time.Time) Answer {
	return Answer{Email: email, Competence: &c, Attitude: &a, Scale: scale, AnsweredAt: at}
}

// TestSurveyAnswerIsRoutedAtOnce is the acceptance case: a caller
// known only through a survey answer posted a moment ago gets that
// profile, although the chain had just cached them as unknown.
func TestSurveyAnswerIsRoutedAtOnce(t *testing.T) {
	nc, kv := startBucket(t)
	b, _ := buildOn(t, nc, kv, nil)
	caller := ticket.Caller{Email: "New.Hire@example.com"}
	if p, err := b.Chain.Lookup(t.Context(), caller); err != nil || p.Name != ticket.Unknown {
		t.Fatalf("Lookup before the survey = %+v, %v; want unknown", p, err)
	}
	srv := httptest.NewServer(b.Surveys)
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"email":"new.hire@example.com","competence":2,"attitude":4,"scale":"1-5"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"result":"stored","profile":"trier"}` {
		t.Fatalf("POST /surveys = %d %s", resp.StatusCode, body)
	}
	p := waitProfile(t, b.Chain, caller, ticket.Trier)
	if p.Source != SourceSurvey || p.Competence == nil || *p.Competence != 0.25 || *p.Attitude != 0.75 {
		t.Errorf("profile = %+v, want source survey with competence 0.25, attitude 0.75", p)
	}
}

func TestSurveyRecord(t *testing.T) {
	nc, kv := startBucket(t)
	b, m := buildOn(t, nc, kv, func(p *config.Profiles) { p.Surveys.History = 2 })
	s := b.Surveys
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	const email = "pat@example.com"
	for _, tt := range []struct {
		name string
		a    Answer
		want Recorded
	}{
		{"a first answer is stored", answer(email, 8, 2, "0-10", t0), Recorded{SurveyStored, ticket.Prioritizer}},
		{"a newer answer replaces it", answer(email, 9, 9, "0-10", t0.Add(time.Hour)), Recorded{SurveyStored, ticket.Doer}},
		{"an older answer arriving late is only history", answer(email, 1, 1, "0-10", t0.Add(30*time.Minute)), Recorded{SurveySuperseded, ticket.Supported}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Record(t.Context(), tt.a)
			if err != nil || got != tt.want {
				t.Errorf("Record = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("the history keeps the newest answers, newest first", func(t *testing.T) {
		h, err := s.History(t.Context(), email, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || !h[0].AnsweredAt.Equal(t0.Add(time.Hour)) || !h[1].AnsweredAt.Equal(t0.Add(30*time.Minute)) {
			t.Errorf("History = %+v, want the 10:00 and 09:30 answers", h)
		}
	})
	t.Run("the directory serves the newest answer", func(t *testing.T) {
		waitProfile(t, b.Chain, ticket.Caller{Email: email}, ticket.Doer)
	})
	t.Run("an import after the answer wins over an older answer", func(t *testing.T) {
		if _, err := Import(t.Context(), kv, []Entry{{Email: email, Profile: ticket.Supported}}, "test"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Record(t.Context(), answer(email, 9, 9, "0-10", t0.Add(2*time.Hour)))
		if err != nil || got.Result != SurveySuperseded {
			t.Errorf("Record after import = %+v, %v; want superseded", got, err)
		}
		waitProfile(t, b.Chain, ticket.Caller{Email: email}, ticket.Supported)
	})
	if n := testutil.ToFloat64(m.surveys.WithLabelValues("http", SurveyStored)); n != 0 {
		t.Errorf("surveys{http,stored} = %v, want 0: Record is not a way in", n)
	}
}

func TestSurveyBadAnswers(t *testing.T) {
	nc, kv := startBucket(t)
	b, m := buildOn(t, nc, kv, nil)
	srv := httptest.NewServer(b.Surveys)
	t.Cleanup(srv.Close)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tt := range []struct {
		name, body, want string
	}{
		{"no caller key", `{"competence":5,"attitude":5}`, "neither email nor user_id"},
		{"a misspelt key", `{"email":"a@example.com","competance":5,"attitude":5}`, `unknown field "competance"`},
		{"a score out of scale", `{"email":"a@example.com","competence":11,"attitude":5}`, "competence 11 is not within 0…10"},
		{"zero on a Likert scale", `{"user_id":"u-1","competence":0,"attitude":3,"scale":"1-5"}`, "competence 0 is not within 1…5"},
		{"an unknown scale", `{"email":"a@example.com","competence":5,"attitude":5,"scale":"0-100"}`, `unknown scale "0-100"`},
		{"a missing score", `{"email":"a@example.com","competence":5}`, "competence and attitude are both required"},
		{"a score that is text", `{"email":"a@example.com","competence":"high","attitude":5}`, "competence must be float64, not a JSON string"},
		{"not an email", `{"email":"nobody","competence":5,"attitude":5}`, "email: not an email address"},
		{"an answer from the future", `{"email":"a@example.com","competence":5,"attitude":5,"answered_at":"` + future + `"}`, "is in the future"},
		{"not JSON", `competence=5`, "syntax error at byte 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tt.want) {
				t.Errorf("POST %s = %d %q, want 400 saying %q", tt.body, resp.StatusCode, body, tt.want)
			}
		})
	}
	t.Run("nothing was stored", func(t *testing.T) {
		keys, err := kv.ListKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for k := range keys.Keys() {
			got = append(got, k)
		}
		if len(got) != 0 {
			t.Errorf("bucket keys = %q, want none", got)
		}
	})
	if n := testutil.ToFloat64(m.surveys.WithLabelValues("http", SurveyRejected)); n != 10 {
		t.Errorf("surveys{http,rejected} = %v, want 10", n)
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET = %d, want 405", resp.StatusCode)
		}
	})
}

func TestSurveyOverNATS(t *testing.T) {
	nc, kv := startBucket(t)
	b, m := buildOn(t, nc, kv, nil)
	request := func(body string) surveyReply {
		t.Helper()
		// The subscriber may not have subscribed yet: retry while no one answers.
		deadline := time.Now().Add(5 * time.Second)
		for {
			msg, err := nc.Request("deskrelay.surveys", []byte(body), time.Second)
			if errors.Is(err, nats.ErrNoResponders) && time.Now().Before(deadline) {
				continue
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			var r surveyReply
			if err := json.Unmarshal(msg.Data, &r); err != nil {
				t.Fatalf("reply %q: %v", msg.Data, err)
			}
			return r
		}
	}
	if r := request(`{"user_id":"u-42","competence":1,"attitude":2,"scale":"1-5"}`); r.Result != SurveyStored || r.Profile != ticket.Supported || r.Error != "" {
		t.Errorf("reply = %+v, want stored supported", r)
	}
	waitProfile(t, b.Chain, ticket.Caller{ID: "u-42"}, ticket.Supported)
	if r := request(`{"user_id":"u-42","competence":7}`); !strings.Contains(r.Error, "competence and attitude are both required") {
		t.Errorf("reply to a bad answer = %+v, want the reason", r)
	}
	if n := testutil.ToFloat64(m.surveys.WithLabelValues("nats", SurveyRejected)); n != 1 {
		t.Errorf("surveys{nats,rejected} = %v, want 1", n)
	}
}

// TestLiveUpdatesAcrossReplicas: two replicas with warm caches see a
// `nats kv put` and an import within a second.
func TestLiveUpdatesAcrossReplicas(t *testing.T) {
	nc, kv := startBucket(t)
	a, _ := buildOn(t, nc, kv, nil)
	b, _ := buildOn(t, nc, kv, nil)
	caller := ticket.Caller{ID: "u-7", Email: "Sam@Example.com"}
	for _, r := range []*Built{a, b} { // both cache "unknown"
		if p, err := r.Chain.Lookup(t.Context(), caller); err != nil || p.Name != ticket.Unknown {
			t.Fatalf("Lookup = %+v, %v; want unknown", p, err)
		}
	}
	if _, err := kv.Put(t.Context(), EmailKey("sam@example.com"), []byte(`{"profile":"doer"}`)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Built{a, b} {
		waitProfile(t, r.Chain, caller, ticket.Doer)
	}
	if _, err := Import(t.Context(), kv, []Entry{{UserID: "u-7", Profile: ticket.Prioritizer}}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Built{a, b} { // the id wins over the email
		waitProfile(t, r.Chain, caller, ticket.Prioritizer)
	}
}

func TestFamiliar(t *testing.T) {
	nc, kv := startBucket(t)
	b, m := buildOn(t, nc, kv, func(p *config.Profiles) { p.Familiar.History = 3 })
	f := b.Familiar
	caller := ticket.Caller{ID: "u-9", Email: "Kim@Example.com"}
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	resolved := func(id, group, state string, at time.Time) ticket.Ticket {
		return ticket.Ticket{ID: id, Source: "snow", Title: "x", Caller: caller, State: state, AssignmentGroup: group, UpdatedAt: at}
	}
	for _, tk := range []ticket.Ticket{
		resolved("INC1", "Desktop Berlin", "Resolved", t0),
		resolved("INC2", "Service Desk", "closed", t0.Add(time.Hour)),
		resolved("INC3", "Desktop Berlin", "resolved", t0.Add(2*time.Hour)),
		resolved("INC4", "Network", "in_progress", t0.Add(3*time.Hour)),   // not resolved: skipped
		resolved("INC3", "Desktop Berlin", "closed", t0.Add(4*time.Hour)), // INC3 again: updated, not added
	} {
		if err := f.Remember(t.Context(), tk); err != nil {
			t.Fatalf("Remember(%s) = %v", tk.ID, err)
		}
	}
	if n := testutil.ToFloat64(m.familiar.WithLabelValues("skipped")); n != 1 {
		t.Errorf("familiar{skipped} = %v, want 1", n)
	}
	// Wait until the directory's watch has applied the last write of
	// both keys (it delivers in revision order).
	var last uint64
	for _, key := range []string{familiarPrefix + EmailKey(caller.Email), familiarPrefix + UserIDKey(caller.ID)} {
		e, err := kv.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("familiar key %s: %v", key, err)
		}
		last = max(last, e.Revision())
	}
	if err := b.Directory.WaitRevision(t.Context(), last); err != nil {
		t.Fatal(err)
	}
	if k, ok := f.Lookup(ticket.Caller{Email: "kim@example.com"}); !ok || k.Group != "Desktop Berlin" {
		t.Fatalf("Lookup = %+v, %v; want group Desktop Berlin", k, ok)
	}
	for _, tt := range []struct {
		name string
		p    ticket.ProfileName
		want map[string]string
	}{
		{"a supported caller gets the familiar group", ticket.Supported, map[string]string{HintFamiliarGroup: "Desktop Berlin"}},
		{"a trier too", ticket.Trier, map[string]string{HintFamiliarGroup: "Desktop Berlin"}},
		{"a doer does not", ticket.Doer, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := f.Hints(caller, ticket.Profile{Name: tt.p})
			if len(got) != len(tt.want) || got[HintFamiliarGroup] != tt.want[HintFamiliarGroup] {
				t.Errorf("Hints(%s) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
	t.Run("the history is bounded and holds each ticket once", func(t *testing.T) {
		e, err := kv.Get(t.Context(), familiarPrefix+UserIDKey("u-9"))
		if err != nil {
			t.Fatal(err)
		}
		var h familiarHistory
		if err := json.Unmarshal(e.Value(), &h); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range h.Resolved {
			ids = append(ids, r.TicketID)
		}
		if strings.Join(ids, ",") != "snow:INC3,snow:INC2,snow:INC1" {
			t.Errorf("history = %q, want INC3, INC2, INC1", ids)
		}
	})
	t.Run("export leaves histories out", func(t *testing.T) {
		entries, err := Export(t.Context(), kv)
		if err != nil || len(entries) != 0 {
			t.Errorf("Export = %+v, %v; want no entries and no error", entries, err)
		}
	})
}

func TestSummarize(t *testing.T) {
	for _, tt := range []struct {
		name string
		rs   []Resolution
		want Known
	}{
		{"the most frequent wins", []Resolution{{Agent: "ann", Group: "g1"}, {Agent: "bob", Group: "g2"}, {Agent: "bob", Group: "g2"}}, Known{"bob", "g2"}},
		{"the most recent wins a tie", []Resolution{{Agent: "ann", Group: "g1"}, {Agent: "bob", Group: "g2"}}, Known{"ann", "g1"}},
		{"empty values are not counted", []Resolution{{Group: "g1"}, {Agent: "bob"}}, Known{"bob", "g1"}},
		{"nothing", nil, Known{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.rs); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}
