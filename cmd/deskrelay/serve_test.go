package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

const exampleConfig = "../../deploy/examples/deskrelay.yaml"

// running is a deskrelay started by startServe.
type running struct {
	addrs
	token string
	stop  func() error // cancels and returns serve's result
}

// startServe runs serve on the example config with loopback ports chosen
// by the kernel and a temporary data dir; env may override more keys.
func startServe(t testing.TB, env map[string]string) *running {
	t.Helper()
	return startServeWith(t, exampleConfig, env)
}

// startServeWith is startServe on another config file.
func startServeWith(t testing.TB, configPath string, env map[string]string) *running {
	t.Helper()
	t.Setenv("DESKRELAY_DATA_DIR", t.TempDir())
	t.Setenv("DESKRELAY_HTTP_LISTEN", "127.0.0.1:0")
	t.Setenv("DESKRELAY_NATS_EMBEDDED_LISTEN", "127.0.0.1:0")
	t.Setenv("DESKRELAY_LOG_LEVEL", "warn")
	for k, v := range env {
		t.Setenv(k, v)
	}
	token, err := os.ReadFile("../../deploy/examples/generic.token")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &globals{configPath: configPath, logFormat: "console"}, ready) }()
	r := &running{token: strings.TrimSpace(string(token))}
	select {
	case r.addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve not listening after 30s")
	}
	stopped := false
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("serve did not stop within 30s of cancel")
		}
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r
}

func (r *running) post(t *testing.T, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+r.HTTP+"/webhooks/generic", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// routedReader reads routed (or DLQ) messages in stream order.
func routedReader(t *testing.T, natsURL, stream string) func() jetstream.Msg {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	var cons jetstream.Consumer
	deadline := time.Now().Add(10 * time.Second)
	for {
		cons, err = js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the stream is provisioned by serve
	}
	if err != nil {
		t.Fatalf("consumer on %s: %v", stream, err)
	}
	return func() jetstream.Msg {
		t.Helper()
		msg, err := cons.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			t.Fatalf("no message on %s within 15s: %v", stream, err)
		}
		return msg
	}
}

func laptop(id, email string) string {
	return fmt.Sprintf(`{"id":%q,"title":"Laptop does not boot after BIOS update","description":"Black screen after the update.","caller":{"email":%q},"channel":"portal","category":"hardware","impact":2,"urgency":2,"updated_at":"2024-05-13T10:15:42Z"}`, id, email)
}

// The done-when of the core issue: the same laptop problem from the four
// example users yields four routed messages that differ as DESIGN.md §1 says.
// Both ways: through the ingest stream and, with pipeline.inline, in the
// request.
func TestServeRoutesTheFourProfiles(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) { testServeRoutesTheFourProfiles(t, mode.env) })
	}
}

// modes are the two ways of routing a webhook, as env overrides.
var modes = []struct {
	name string
	env  map[string]string
}{
	{"through the ingest stream", nil},
	{"inline", map[string]string{"DESKRELAY_PIPELINE_INLINE": "true"}},
}

// waitReady waits until r answers /readyz with 200: the directory is
// loaded, so a webhook routed inline is not handed to the processor for
// being early.
func (r *running) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamMsgs returns how many messages stream holds on r's NATS.
func (r *running) streamMsgs(t *testing.T, stream string) uint64 {
	t.Helper()
	nc, err := nats.Connect(r.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

func testServeRoutesTheFourProfiles(t *testing.T, env map[string]string) {
	r := startServe(t, env)
	r.waitReady(t)
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	want := map[string]struct {
		profile       ticket.ProfileName
		tier          ticket.Tier
		channel       ticket.Channel
		language      string
		virtualAgent  string
		firstChannel  ticket.Channel
		subject       string
		rulesContains string
	}{
		"LAP-doer":        {ticket.Doer, ticket.TierL2, ticket.ChannelPortal, "technical", "knowledge_links", ticket.ChannelPortal, "deskrelay.routed.l2.portal", "doer"},
		"LAP-prioritizer": {ticket.Prioritizer, ticket.TierL2, ticket.ChannelPhone, "technical", "solve_in_session", ticket.ChannelPhone, "deskrelay.routed.l2.phone", "prioritizer"},
		"LAP-trier":       {ticket.Trier, ticket.TierL1, ticket.ChannelEmail, "plain", "guided_steps", ticket.ChannelEmail, "deskrelay.routed.l1.email", "trier"},
		"LAP-supported":   {ticket.Supported, ticket.TierDesktop, ticket.ChannelWalkIn, "plain", "handoff_to_human", ticket.ChannelPhone, "deskrelay.routed.desktop.walk_in", "supported-hardware"},
	}
	for _, who := range []string{"doer", "prioritizer", "trier", "supported"} {
		code, body := r.post(t, laptop("LAP-"+who, who+"@example.com"))
		if code != http.StatusAccepted {
			t.Fatalf("POST laptop for %s = %d %s, want 202", who, code, body)
		}
	}
	seen := map[string]bool{}
	for range want {
		msg := next()
		var rt ticket.Routed
		if err := json.Unmarshal(msg.Data(), &rt); err != nil {
			t.Fatalf("routed message is not JSON: %v", err)
		}
		w, ok := want[rt.Ticket.ID]
		if !ok || seen[rt.Ticket.ID] {
			t.Fatalf("unexpected routed message for %q", rt.Ticket.ID)
		}
		seen[rt.Ticket.ID] = true
		got := rt.Routing
		if rt.Schema != ticket.RoutedSchema || rt.Profile.Name != w.profile || got.Tier != w.tier || got.Channel != w.channel ||
			got.Hints.Language != w.language || got.Hints.VirtualAgent != w.virtualAgent || msg.Subject() != w.subject ||
			len(got.Hints.PreferredChannels) == 0 || got.Hints.PreferredChannels[0] != w.firstChannel ||
			!strings.Contains(strings.Join(got.Rules, "/"), w.rulesContains) || got.Priority != 3 {
			t.Errorf("%s routed on %s as profile=%s tier=%s channel=%s priority=%d rules=%v hints=%+v\nwant %+v",
				rt.Ticket.ID, msg.Subject(), rt.Profile.Name, got.Tier, got.Channel, got.Priority, got.Rules, got.Hints, w)
		}
		h := msg.Headers()
		if h.Get(ticket.HeaderProfile) != string(w.profile) || h.Get(ticket.HeaderTier) != string(w.tier) ||
			h.Get(ticket.HeaderChannel) != string(w.channel) || h.Get(ticket.HeaderPriority) != "3" {
			t.Errorf("%s headers = %v", rt.Ticket.ID, h)
		}
	}
	wantIngest := uint64(4)
	if env != nil {
		wantIngest = 0
	}
	if n := r.streamMsgs(t, "DESKRELAY_INGEST"); n != wantIngest {
		t.Errorf("DESKRELAY_INGEST holds %d messages, want %d", n, wantIngest)
	}
}

func TestServeStoresARedeliveredWebhookOnce(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) { testServeStoresARedeliveredWebhookOnce(t, mode.env) })
	}
}

func testServeStoresARedeliveredWebhookOnce(t *testing.T, env map[string]string) {
	r := startServe(t, env)
	r.waitReady(t)
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	for i := range 2 {
		if code, body := r.post(t, laptop("DUP-1", "doer@example.com")); code != http.StatusAccepted {
			t.Fatalf("POST #%d = %d %s, want 202 both times", i+1, code, body)
		}
	}
	// A later ticket: once it is routed, a second DUP-1 would have been too.
	if code, _ := r.post(t, laptop("AFTER-1", "trier@example.com")); code != http.StatusAccepted {
		t.Fatalf("POST AFTER-1 = %d", code)
	}
	var ids []string
	for len(ids) < 2 {
		var rt ticket.Routed
		_ = json.Unmarshal(next().Data(), &rt)
		ids = append(ids, rt.Ticket.ID)
	}
	want := map[string]uint64{"DESKRELAY_INGEST": 2, "DESKRELAY_ROUTED": 2}
	if env != nil { // inline: nothing through the ingest stream
		want["DESKRELAY_INGEST"] = 0
	}
	for s, w := range want {
		if n := r.streamMsgs(t, s); n != w {
			t.Errorf("%s holds %d messages after DUP-1 twice and AFTER-1, want %d (routed ids %v)", s, n, w, ids)
		}
	}
}

func TestServeDeadLettersWhatCannotBeDecoded(t *testing.T) {
	r := startServe(t, nil)
	next := routedReader(t, r.NATS, "DESKRELAY_DLQ")
	nc, err := nats.Connect(r.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// A producer writing straight onto the ingest subject, bypassing the
	// webhook checks.
	if _, err := js.Publish(t.Context(), "deskrelay.ingest.generic", []byte(`not json at all`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "deskrelay.ingest.generic", []byte(`{"id":"X1","source":"generic"}`)); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ subject, payload string }{
		"decode":  {"deskrelay.dlq.decode", "not json at all"},
		"invalid": {"deskrelay.dlq.invalid", `"X1"`},
	}
	for range want { // workers run in parallel: any order
		msg := next()
		var dl ticket.DeadLetter
		if err := json.Unmarshal(msg.Data(), &dl); err != nil {
			t.Fatal(err)
		}
		w, ok := want[dl.Reason]
		payload := string(dl.Payload) + string(dl.PayloadBase64)
		if !ok || msg.Subject() != w.subject || dl.Error == "" || !strings.Contains(payload, w.payload) || dl.Schema != ticket.DeadLetterSchema {
			t.Errorf("dead letter on %s = %+v (payload %q), want one of %+v", msg.Subject(), dl, payload, want)
		}
		delete(want, dl.Reason)
	}
}

func TestValidateReportsEveryMistake(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	bad := string(src)
	for _, r := range [][2]string{
		{"  listen: 127.0.0.1:8080", "  listne: 127.0.0.1:8080"},
		{"    sync_interval: 2m", "    sync_interval: sometimes"},
		{"matchers: ['profile = prioritizer']", "matchers: ['profile = prioritiser']"},
	} {
		if !strings.Contains(bad, r[0]) {
			t.Fatalf("example config no longer contains %q", r[0])
		}
		bad = strings.Replace(bad, r[0], r[1], 1)
	}
	for _, f := range []string{"profiles.csv", "generic.token"} {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(exampleConfig), f))
		_ = os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	path := filepath.Join(dir, "deskrelay.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"validate", "--config", path}, &stdout, &stderr)
	got := strings.ReplaceAll(stderr.String(), path, "deskrelay.yaml")
	checkGolden(t, "validate-three-mistakes", []byte(got))
	if code != 2 {
		t.Errorf("validate exit code = %d, want 2", code)
	}
}

func TestRouteTestPassesOnTheExampleCases(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"route", "test", "--config", exampleConfig, "../../deploy/examples/route-cases.yaml"}, &stdout, &stderr)
	if code != 0 {
		t.Errorf("route test exit code = %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// An external NATS goes away: webhooks get 503 with Retry-After, nothing
// accepted is lost, and once NATS is back later posts flow again and every
// accepted ticket is routed.
func TestServeSurvivesANATSOutage(t *testing.T) {
	store := t.TempDir()
	ns := bustest.StartAt(t, store, -1)
	port := bustest.ServerPort(t, ns)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// A short ack_wait: a ticket whose processing the outage interrupted is
	// redelivered within seconds.
	r := startServe(t, map[string]string{"DESKRELAY_NATS_URL": url, "DESKRELAY_HTTP_PUBLISH_TIMEOUT": "1s", "DESKRELAY_PIPELINE_ACK_WAIT": "2s"})

	if code, body := r.post(t, laptop("OUT-1", "doer@example.com")); code != http.StatusAccepted {
		t.Fatalf("POST before the outage = %d %s", code, body)
	}
	ns.Shutdown()
	ns.WaitForShutdown()

	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+r.HTTP+"/webhooks/generic", strings.NewReader(laptop("OUT-2", "trier@example.com")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST during the outage = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	bustest.StartAt(t, store, port)
	// The client reconnects on its own; until then posts may still get 503.
	deadline := time.Now().Add(20 * time.Second)
	var code int
	for {
		code, _ = r.post(t, laptop("OUT-2", "trier@example.com"))
		if code == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusAccepted {
		t.Fatalf("POST after NATS came back = %d, want 202 within 20s", code)
	}
	// The profile directory follows the bucket again at once: a survey
	// answer given now is used for the caller's next ticket.
	req, _ = http.NewRequestWithContext(t.Context(), "POST", "http://"+r.HTTP+"/surveys", strings.NewReader(`{"email":"after.outage@example.com","competence":2,"attitude":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("survey answer after NATS came back = %d", resp.StatusCode)
	}
	if code, body := r.post(t, laptop("OUT-3", "after.outage@example.com")); code != http.StatusAccepted {
		t.Fatalf("POST after the survey = %d %s", code, body)
	}
	next := routedReader(t, url, "DESKRELAY_ROUTED")
	got := map[string]ticket.Profile{}
	for len(got) < 3 {
		var rt ticket.Routed
		_ = json.Unmarshal(next().Data(), &rt)
		got[rt.Ticket.ID] = rt.Profile
	}
	if _, ok := got["OUT-1"]; !ok {
		t.Errorf("OUT-1, accepted before the outage, not routed")
	}
	if _, ok := got["OUT-2"]; !ok {
		t.Errorf("OUT-2, accepted after the outage, not routed")
	}
	if p := got["OUT-3"]; p.Source != "survey" {
		t.Errorf("caller who answered a survey after the outage routed as %+v, want the survey's profile", p)
	}
	if err := r.stop(); err != nil { // before the NATS server's cleanup
		t.Errorf("serve: %v", err)
	}
}

func TestSendSignsAsTheConnectorExpects(t *testing.T) {
	r := startServe(t, nil)
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	path := filepath.Join(t.TempDir(), "ticket.json")
	if err := os.WriteFile(path, []byte(laptop("SEND-1", "trier@example.com")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"send", "--config", exampleConfig, "--connector", "generic", "--url", "http://" + r.HTTP, path}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "202 Accepted") {
		t.Fatalf("send = %d\n%s%s", code, stdout.String(), stderr.String())
	}
	var rt ticket.Routed
	_ = json.Unmarshal(next().Data(), &rt)
	if rt.Ticket.ID != "SEND-1" {
		t.Errorf("routed %q, want SEND-1", rt.Ticket.ID)
	}
	stdout.Reset()
	code = run(t.Context(), []string{"send", "--config", exampleConfig, "--connector", "nope", "--url", "http://" + r.HTTP, path}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `no webhook connector "nope"`) {
		t.Errorf("send to an unknown connector = %d, %s", code, stderr.String())
	}
}

// Issue 5's done-when: a caller known only through a survey answer posted
// a moment earlier is routed with that profile; a caller nobody knows is
// routed with a profile inferred from the ticket, labelled as such.
func TestServeUsesSurveysAndInference(t *testing.T) {
	r := startServe(t, nil)
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	survey := func(auth, body string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+r.HTTP+"/surveys", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := survey("", `{"email":"new.hire@example.com","competence":2,"attitude":1}`); code != http.StatusUnauthorized {
		t.Errorf("a survey answer without credentials = %d, want 401", code)
	}
	if code, body := survey("Bearer "+r.token, `{"email":"new.hire@example.com","competence":11,"attitude":1}`); code != http.StatusBadRequest {
		t.Errorf("an answer out of scale = %d %s, want 400", code, body)
	}
	if code, body := survey("Bearer "+r.token, `{"email":"new.hire@example.com","competence":2,"attitude":1}`); code != http.StatusOK && code != http.StatusCreated && code != http.StatusAccepted {
		t.Fatalf("survey answer = %d %s", code, body)
	}
	if code, body := r.post(t, laptop("SURVEY-1", "new.hire@example.com")); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	nobody := `{"id":"INFER-1","title":"Outlook crashes","description":"Could someone please just sort this out for me? I have no time for this today.","caller":{"email":"nobody.known@example.com"},"channel":"phone","category":"software","updated_at":"2024-05-13T10:15:42Z"}`
	if code, body := r.post(t, nobody); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	got := map[string]ticket.Profile{}
	for len(got) < 2 {
		var rt ticket.Routed
		_ = json.Unmarshal(next().Data(), &rt)
		got[rt.Ticket.ID] = rt.Profile
	}
	if p := got["SURVEY-1"]; p.Name != ticket.Supported || p.Source != "survey" {
		t.Errorf("caller known by a survey answer routed as %+v, want supported from the survey", p)
	}
	if p := got["INFER-1"]; p.Source != "inferred" || p.Competence == nil || p.Attitude == nil {
		t.Errorf("an unknown caller routed as %+v, want a profile labelled inferred, with scores", p)
	}
}
