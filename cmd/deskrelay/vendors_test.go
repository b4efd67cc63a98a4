package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

// vendorConnectors replaces the example config's connectors block: each
// vendor's webhook, configured as its docs page says.
const vendorConnectors = `connectors:
  generic:
    type: generic
    mapping: identity
    auth: {type: bearer, token: file:generic.token}
  servicenow:
    type: servicenow
    auth: {type: hmac, secret: env:TEST_SNOW_SECRET, encoding: base64, prefix: "v1=", header: X-Deskrelay-Signature, timestamp_header: X-Deskrelay-Timestamp}
    fields: {caller.id: caller.sys_id, caller.email: caller.email, caller.name: caller.name}
  zendesk:
    type: zendesk
    auth: {type: hmac, secret: env:TEST_ZENDESK_SECRET}
  freshservice:
    type: freshservice
    auth: {type: header, header: X-Deskrelay-Token, token: env:TEST_FRESH_TOKEN}
  jsm:
    type: jsm
    auth: {type: hmac, secret: env:TEST_JIRA_SECRET}
    impact_field: customfield_10004
    urgency_field: customfield_10045
    request_type_field: customfield_10010
`

// vendorConfig writes the example config with vendorConnectors into a
// temporary directory and returns its path.
func vendorConfig(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "\nconnectors:\n")
	end := strings.Index(string(src), "\nprofiles:\n")
	if start < 0 || end < start {
		t.Fatal("example config has no connectors block before profiles")
	}
	cfg := string(src[:start+1]) + vendorConnectors + string(src[end:])
	dir := t.TempDir()
	for _, f := range []string{"profiles.csv", "generic.token"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(exampleConfig), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "deskrelay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SNOW_SECRET", "deskrelay-servicenow-example-secret")
	t.Setenv("TEST_ZENDESK_SECRET", "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==")
	t.Setenv("TEST_FRESH_TOKEN", "example-shared-token-do-not-use")
	t.Setenv("TEST_JIRA_SECRET", "deskrelay-jira-example-secret")
	return path
}

// The done-when of the connectors issue: each vendor's fixture, posted to a
// running deskrelay as the vendor would send it, is routed with the right
// caller, priority and channel.
func TestServeRoutesEachVendorsFixture(t *testing.T) {
	path := vendorConfig(t)
	r := startServeWith(t, path, nil)
	p, err := compile(path, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	want := map[string]struct {
		source   string
		email    string
		callerID string
		priority int
		channel  ticket.Channel
		profile  ticket.ProfileName
	}{
		"59a60bfcb9e24a4ba04482e650fb4efd": {"servicenow", "trina.trier@example.com", "ed3b7c29563ff74f4fb0f8c15f0043f0", 5, ticket.ChannelEmail, ticket.Trier},
		"5158":                             {"zendesk", "aisha.doer@example.com", "29001000000101", 2, ticket.ChannelPortal, ticket.Doer},
		"203":                              {"freshservice", "trina.trier@example.com", "", 4, ticket.ChannelEmail, ticket.Trier},
		"10042":                            {"jsm", "aisha.doer@example.com", "qm:4f5b2c1e-8a7d-4e3b-9c21-6d0e5a7b3f11:9b8e7d6c-5a4b-4c3d-8e2f-1a0b9c8d7e6f", 2, ticket.ChannelPortal, ticket.Doer},
	}
	for _, w := range want {
		body, err := os.ReadFile(filepath.Join("testdata", "vendors", w.source+".json"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := p.endpoints[w.source].Sign(body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+r.HTTP+"/webhooks/"+w.source, strings.NewReader(string(body)))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s fixture = %d, want 202", w.source, resp.StatusCode)
		}
	}
	for range want {
		msg := next()
		var rt ticket.Routed
		if err := json.Unmarshal(msg.Data(), &rt); err != nil {
			t.Fatal(err)
		}
		w, ok := want[rt.Ticket.ID]
		if !ok {
			t.Fatalf("unexpected routed ticket %q from %s", rt.Ticket.ID, rt.Ticket.Source)
		}
		got := fmt.Sprintf("source=%s caller=%s/%s priority=%d channel=%s profile=%s", rt.Ticket.Source, rt.Ticket.Caller.Email, rt.Ticket.Caller.ID, rt.Routing.Priority, rt.Ticket.Channel, rt.Profile.Name)
		exp := fmt.Sprintf("source=%s caller=%s/%s priority=%d channel=%s profile=%s", w.source, w.email, w.callerID, w.priority, w.channel, w.profile)
		if got != exp {
			t.Errorf("routed %s:\n got %s\nwant %s", rt.Ticket.ID, got, exp)
		}
	}
}
