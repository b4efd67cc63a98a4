package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/internal/bus/busrig"
	"github.com/deskrelay/deskrelay/ticket"
)

// TestBuildProfiles wires the profile machinery as serve does and checks
// that an answer posted to /surveys, and one sent on <prefix>.surveys,
// are what the chain answers next.
func TestBuildProfiles(t *testing.T) {
	cfg, err := config.Load(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	rig := busrig.Start(t, cfg.NATS)
	nc, b := rig.Conn, rig.Bus
	kv, err := b.ProfilesKV(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	q, err := enrichment.NewQuadrant(cfg.Profiles)
	if err != nil {
		t.Fatal(err)
	}
	built, _, err := buildProfiles(cfg, kv, nc, b.Subject, q, log, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatalf("buildProfiles = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- built.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	select {
	case <-built.Directory.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("directory not synced after 10s")
	}
	mux := http.NewServeMux()
	mux.Handle("POST /surveys", built.Surveys)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	waitFor := func(c ticket.Caller, want ticket.ProfileName) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			p, err := built.Chain.Lookup(t.Context(), c)
			if err == nil && p.Name == want && p.Source == enrichment.SourceSurvey {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 1s Lookup = %+v, %v; want %s from the survey", p, err, want)
			}
			time.Sleep(5 * time.Millisecond) // bounded poll of the KV watch
		}
	}
	resp, err := http.Post(srv.URL+"/surveys", "application/json", strings.NewReader(`{"email":"fresh@example.com","competence":9,"attitude":2}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /surveys = %d %s", resp.StatusCode, body)
	}
	waitFor(ticket.Caller{Email: "fresh@example.com"}, ticket.Prioritizer)

	subject := cfg.NATS.SubjectPrefix + ".surveys"
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg, err := nc.Request(subject, []byte(`{"user_id":"u-fresh","competence":1,"attitude":5,"scale":"1-5"}`), time.Second)
		if err == nats.ErrNoResponders && time.Now().Before(deadline) {
			continue // not subscribed yet
		}
		if err != nil {
			t.Fatalf("request on %s: %v", subject, err)
		}
		if !strings.Contains(string(msg.Data), `"result":"stored"`) {
			t.Fatalf("reply = %s, want stored", msg.Data)
		}
		break
	}
	waitFor(ticket.Caller{ID: "u-fresh"}, ticket.Trier)
}
