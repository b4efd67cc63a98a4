package connectors_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	_ "github.com/deskrelay/deskrelay/connectors/generic"
	"github.com/deskrelay/deskrelay/ticket"
)

// memSink records what it stores; down makes it fail like a NATS outage.
type memSink struct {
	mu      sync.Mutex
	tickets []ticket.Ticket
	down    bool
	err     error // returned instead of storing, when set
}

type sizeErr struct{}

func (sizeErr) Error() string  { return "ticket is 1.1 MB, over the 960 KB the store takes" }
func (sizeErr) TooLarge() bool { return true }

type encodeErr struct{}

func (encodeErr) Error() string  { return "json: unsupported value" }
func (encodeErr) BadInput() bool { return true }

func (s *memSink) Ingest(_ context.Context, t ticket.Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("nats: no servers available for connection")
	}
	if s.err != nil {
		return s.err
	}
	s.tickets = append(s.tickets, t)
	return nil
}

func newServer(t *testing.T, sink connectors.Sink, opts ...func(*connectors.Ingress)) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	return newServerLimit(t, sink, 2048, opts...)
}

// newServerLimit is newServer with a body limit of maxBody bytes.
func newServerLimit(t *testing.T, sink connectors.Sink, maxBody int64, opts ...func(*connectors.Ingress)) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	cfg := map[string]config.Connector{
		"generic": {Type: "generic", Auth: config.Auth{Type: "bearer", Token: config.NewSecret("t0ken")}, MaxBodyBytes: maxBody},
	}
	eps, err := connectors.Build(cfg, 1<<20, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	reg := prometheus.NewRegistry()
	m := connectors.NewMetrics(reg)
	mux := http.NewServeMux()
	in := connectors.NewIngress(eps.Endpoints, sink, time.Second, 5*time.Second, zaptest.NewLogger(t), m)
	for _, o := range opts {
		o(in)
	}
	mux.Handle("/webhooks/{source}", in)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg
}

const goodTicket = `{"id":"INC1","title":"Laptop will not boot","caller":{"email":"doer@example.com"},"impact":2,"urgency":2,"updated_at":"2024-05-13T10:15:42Z"}`

// postTicket posts body to the generic source of srv as JSON with the
// test token, after prep (nil: none) had its say on the request, and
// returns the answer's status and body.
func postTicket(t *testing.T, srv *httptest.Server, body io.Reader, prep func(*http.Request)) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/webhooks/generic", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t0ken")
	if prep != nil {
		prep(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, got
}

func TestIngressAnswers(t *testing.T) {
	for _, tt := range []struct {
		name        string
		method      string
		path        string
		contentType string
		auth        string
		body        string
		down        bool
		sinkErr     error
		wantCode    int
		wantBody    string // substring of the answer
		wantHeader  [2]string
	}{
		{"a good ticket is accepted with its id", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", goodTicket, false, nil, 202, `"id":"INC1"`, [2]string{}},
		{"a charset parameter is fine", "POST", "/webhooks/generic", "application/json; charset=utf-8", "Bearer t0ken", goodTicket, false, nil, 202, `"msg_id":"generic:INC1:2024-05-13T10:15:42Z"`, [2]string{}},
		{"an unknown source is 404", "POST", "/webhooks/nope", "application/json", "Bearer t0ken", goodTicket, false, nil, 404, `no webhook source \"nope\" is configured`, [2]string{}},
		{"GET is 405", "GET", "/webhooks/generic", "application/json", "Bearer t0ken", "", false, nil, 405, "use POST", [2]string{"Allow", "POST"}},
		{"a form body is 415", "POST", "/webhooks/generic", "application/x-www-form-urlencoded", "Bearer t0ken", goodTicket, false, nil, 415, "send Content-Type: application/json", [2]string{}},
		{"no content type is 415", "POST", "/webhooks/generic", "", "Bearer t0ken", goodTicket, false, nil, 415, "not supported", [2]string{}},
		{"a body over the limit is 413", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"x","title":"` + strings.Repeat("a", 3000) + `"}`, false, nil, 413, "body exceeds 2048 bytes", [2]string{}},
		{"a missing token is 401", "POST", "/webhooks/generic", "application/json", "", goodTicket, false, nil, 401, "missing Authorization: Bearer header", [2]string{"WWW-Authenticate", `Bearer realm="deskrelay"`}},
		{"a wrong token is 401", "POST", "/webhooks/generic", "application/json", "Bearer nope", goodTicket, false, nil, 401, "bearer token does not match", [2]string{}},
		{"invalid JSON is 400", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"INC1",`, false, nil, 400, "body is not valid JSON", [2]string{}},
		{"a missing title is 400 naming the field", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"INC1"}`, false, nil, 400, `"field":"title"`, [2]string{}},
		{"a misspelt field is 400 naming it", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"INC1","title":"x","categroy":"hw"}`, false, nil, 400, `"field":"categroy"`, [2]string{}},
		{"an impact out of range is 400", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"INC1","title":"x","impact":7}`, false, nil, 400, "impact: 7 is out of range", [2]string{}},
		{"a string where a number belongs is 400", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `{"id":"INC1","title":"x","impact":"high"}`, false, nil, 400, `"field":"impact"`, [2]string{}},
		{"a lower-case bearer scheme is fine", "POST", "/webhooks/generic", "application/json", "bearer t0ken", goodTicket, false, nil, 202, `"id":"INC1"`, [2]string{}},
		{"trailing garbage is 400", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", goodTicket + "]", false, nil, 400, "more than one JSON value", [2]string{}},
		{"a non-object body is 400 in plain words", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", `[1]`, false, nil, 400, "body must be a JSON object", [2]string{}},
		{"a ticket too large for the store is 413", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", goodTicket, false, sizeErr{}, 413, "too large to store", [2]string{}},
		{"a ticket that cannot be encoded is 400", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", goodTicket, false, encodeErr{}, 400, "cannot be encoded", [2]string{}},
		{"a store outage is 503 with Retry-After", "POST", "/webhooks/generic", "application/json", "Bearer t0ken", goodTicket, true, nil, 503, "ticket store unavailable; retry later", [2]string{"Retry-After", "5"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{down: tt.down, err: tt.sinkErr}
			srv, _ := newServer(t, sink)
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if k := tt.wantHeader[0]; k != "" && resp.Header.Get(k) != tt.wantHeader[1] {
				t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), tt.wantHeader[1])
			}
			stored := len(sink.tickets)
			if wantStored := map[bool]int{true: 1, false: 0}[tt.wantCode == 202]; stored != wantStored {
				t.Errorf("stored %d tickets, want %d", stored, wantStored)
			}
		})
	}
}

func TestIngressStoresSourceAndMetrics(t *testing.T) {
	sink := &memSink{}
	srv, reg := newServer(t, sink)
	post := func(body string) int {
		code, _ := postTicket(t, srv, strings.NewReader(body), nil)
		return code
	}
	// The source in the payload is overwritten by the configured name.
	if code := post(`{"id":"INC9","source":"spoofed","title":"x"}`); code != 202 {
		t.Fatalf("POST = %d, want 202", code)
	}
	post(`{"id":"INC9"}`)
	if got := sink.tickets[0].Source; got != "generic" {
		t.Errorf("stored source = %q, want the configured name generic", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", err, problems)
	}
	want := `
# HELP deskrelay_webhook_accepted_total Webhook tickets stored in JetStream (the ingest stream, or routed at once with pipeline.inline), by configured source.
# TYPE deskrelay_webhook_accepted_total counter
deskrelay_webhook_accepted_total{source="generic"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "deskrelay_webhook_accepted_total"); err != nil {
		t.Error(err)
	}
	want = `
# HELP deskrelay_webhook_requests_total Webhook requests received, by configured source and HTTP status code.
# TYPE deskrelay_webhook_requests_total counter
deskrelay_webhook_requests_total{code="202",source="generic"} 1
deskrelay_webhook_requests_total{code="400",source="generic"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "deskrelay_webhook_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "deskrelay_webhook_request_duration_seconds"); err != nil || n != 1 {
		t.Errorf("request duration series = %d, %v; want 1", n, err)
	}
	n, err := testutil.GatherAndCount(reg, "deskrelay_webhook_rejected_total")
	if err != nil || n != len([]string{"unknown_source", "method", "content_type", "too_large", "unauthorized", "invalid_payload", "invalid_ticket", "unavailable", "internal"}) {
		t.Errorf("rejected series = %d, %v; want every reason pre-created", n, err)
	}
}

// blockingSink holds every Ingest until release is closed.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSink) Ingest(ctx context.Context, _ ticket.Ticket) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestIngressRefusesWhenFull(t *testing.T) {
	cfg := map[string]config.Connector{"generic": {Type: "generic", Auth: config.Auth{Type: "none"}}}
	built, err := connectors.Build(cfg, 1<<20, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(url string) *http.Response {
		resp, err := http.Post(url+"/webhooks/generic", "application/json", strings.NewReader(goodTicket))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("a request beyond max_in_flight gets 503 with Retry-After at once", func(t *testing.T) {
		sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
		in := connectors.NewIngress(built.Endpoints, sink, 10*time.Second, 5*time.Second, zaptest.NewLogger(t), connectors.NewMetrics(nil))
		if err := in.SetMaxInFlight(1); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/webhooks/{source}", in)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		first := make(chan int, 1)
		go func() { first <- post(srv.URL).StatusCode }()
		<-sink.entered // the first request holds the only slot
		resp := post(srv.URL)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Errorf("second POST = %d (Retry-After %q), want 503 with Retry-After 5", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		close(sink.release)
		if code := <-first; code != http.StatusAccepted {
			t.Errorf("first POST = %d, want 202", code)
		}
	})
	t.Run("a backlog over max_backlog gets 503", func(t *testing.T) {
		in := connectors.NewIngress(built.Endpoints, &memSink{}, time.Second, 5*time.Second, zaptest.NewLogger(t), connectors.NewMetrics(nil))
		var backlog atomic.Uint64
		backlog.Store(5)
		if err := in.SetMaxBacklog(backlog.Load, 1); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/webhooks/{source}", in)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		if code := post(srv.URL).StatusCode; code != http.StatusServiceUnavailable {
			t.Errorf("POST with a backlog of 5 over 1 = %d, want 503", code)
		}
		backlog.Store(0)
		if code := post(srv.URL).StatusCode; code != http.StatusAccepted {
			t.Errorf("POST once the backlog drained = %d, want 202", code)
		}
	})
}

// TestIngressSenderGoneIsNotAStoreFailure checks that a sender hanging up
// while the store is under way is logged at debug, not as a warning that
// the store failed: the ticket may well be stored.
func TestIngressSenderGoneIsNotAStoreFailure(t *testing.T) {
	cfg := map[string]config.Connector{"generic": {Type: "generic", Auth: config.Auth{Type: "none"}}}
	built, err := connectors.Build(cfg, 1<<20, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	in := connectors.NewIngress(built.Endpoints, sink, 10*time.Second, 5*time.Second, zap.New(core), connectors.NewMetrics(nil))
	mux := http.NewServeMux()
	mux.Handle("/webhooks/{source}", in)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/generic", strings.NewReader(goodTicket))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-sink.entered
	cancel() // the sender hangs up while the store is under way
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("sender went away before the ticket store answered").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no debug line for the sender going away; logs: %v", logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 0 {
		t.Errorf("%d warnings logged for a sender that hung up, want 0: %v", n, logs.FilterLevelExact(zap.WarnLevel).All())
	}
}

// inlineRouter records the tickets it is given and fails with err.
type inlineRouter struct {
	mu      sync.Mutex
	tickets []ticket.Ticket
	err     error
}

func (r *inlineRouter) RouteNow(ctx context.Context, t *ticket.Ticket) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("no deadline: the publish timeout is not applied")
	}
	r.tickets = append(r.tickets, *t)
	return r.err
}

// TestIngressRoutesInline checks pipeline.inline's ingress side: a ticket
// routed in the request is not stored in the sink, one that was not is,
// and the answer follows whichever store took it.
func TestIngressRoutesInline(t *testing.T) {
	for _, tt := range []struct {
		name      string
		routeErr  error
		sinkDown  bool
		wantCode  int
		wantSunk  int
		wantAccpt float64
	}{
		{"routed in the request", nil, false, 202, 0, 1},
		{"routed in the request while the sink is down", nil, true, 202, 0, 1},
		{"not routed: stored in the sink", errors.New("enrich: profile lookup: directory unreachable"), false, 202, 1, 1},
		{"not routed and the sink is down", errors.New("publish_routed: nats: timeout"), true, 503, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{down: tt.sinkDown}
			rt := &inlineRouter{err: tt.routeErr}
			srv, reg := newServer(t, sink, func(in *connectors.Ingress) { in.SetInline(rt) })
			code, body := postTicket(t, srv, strings.NewReader(goodTicket), nil)
			if code != tt.wantCode {
				t.Fatalf("status = %d (%s), want %d", code, body, tt.wantCode)
			}
			if len(rt.tickets) != 1 || rt.tickets[0].ID != "INC1" || rt.tickets[0].Source != "generic" {
				t.Errorf("router got %+v, want ticket INC1 of source generic", rt.tickets)
			}
			if len(sink.tickets) != tt.wantSunk {
				t.Errorf("sink stored %d tickets, want %d", len(sink.tickets), tt.wantSunk)
			}
			if got := sumOf(t, reg, "deskrelay_webhook_accepted_total"); got != tt.wantAccpt {
				t.Errorf("deskrelay_webhook_accepted_total = %v, want %v", got, tt.wantAccpt)
			}
		})
	}
}

// sumOf adds up the values of the counter series named name in reg.
func sumOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestIngressAcceptedBody checks the 202 body end to end against
// encoding/json (TestWriteAccepted covers the escaping).
func TestIngressAcceptedBody(t *testing.T) {
	sink := &memSink{}
	srv, _ := newServer(t, sink)
	for _, id := range []string{"INC1", `INC"1\2`, "INC<1>&", "INCé✓"} {
		t.Run(id, func(t *testing.T) {
			tk, err := json.Marshal(map[string]any{"id": id, "title": "x", "updated_at": "2024-05-13T10:15:42Z"})
			if err != nil {
				t.Fatal(err)
			}
			code, body := postTicket(t, srv, bytes.NewReader(tk), nil)
			if code != http.StatusAccepted {
				t.Fatalf("%d %s, want 202", code, body)
			}
			var got connectors.Accepted
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("answer %s is not JSON: %v", body, err)
			}
			want := connectors.Accepted{Status: "accepted", ID: id, Source: "generic", MsgID: "generic:" + id + ":2024-05-13T10:15:42Z"}
			if got != want {
				t.Errorf("answer %s, want the value %+v", body, want)
			}
		})
	}
}

// ticketOfSize returns a valid ticket of exactly n bytes.
func ticketOfSize(n int) string {
	const head, tail = `{"id":"INC1","title":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

// TestIngressBodyLengths covers the ways a body's length can be told:
// announced (read into a buffer of that size), chunked (read to its end),
// at the limit and one byte over it either way, and announced but cut
// short.
func TestIngressBodyLengths(t *testing.T) {
	sink := &memSink{}
	srv, _ := newServer(t, sink) // max_body_bytes 2048
	for _, tt := range []struct {
		name    string
		body    string
		chunked bool
		want    int
	}{
		{"announced length", goodTicket, false, 202},
		{"chunked", goodTicket, true, 202},
		{"announced, at the limit", ticketOfSize(2048), false, 202},
		{"chunked, at the limit", ticketOfSize(2048), true, 202},
		{"announced, one byte over the limit", ticketOfSize(2049), false, 413},
		{"chunked, one byte over the limit", ticketOfSize(2049), true, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var prep func(*http.Request)
			if tt.chunked {
				prep = func(req *http.Request) { req.ContentLength, req.TransferEncoding = -1, []string{"chunked"} }
			}
			if code, got := postTicket(t, srv, strings.NewReader(tt.body), prep); code != tt.want {
				t.Errorf("%d %s, want %d", code, got, tt.want)
			}
		})
	}
	t.Run("announced but cut short", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Authorization: Bearer t0ken\r\nContent-Length: %d\r\n\r\n%s", len(goodTicket)+10, goodTicket)
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), "cannot read body") {
			t.Errorf("%d %s, want 400 cannot read body", resp.StatusCode, got)
		}
	})
	if n := len(sink.tickets); n != 4 {
		t.Errorf("stored %d tickets, want the 4 accepted", n)
	}
}

// TestIngressLargeBody covers bodies announced around 64 KiB, where
// the ingress stops sizing the buffer up front, under a larger limit.
func TestIngressLargeBody(t *testing.T) {
	sink := &memSink{}
	srv, _ := newServerLimit(t, sink, 128<<10)
	for _, n := range []int{64<<10 - 1, 64 << 10, 64<<10 + 1, 128 << 10, 128<<10 + 1} {
		body := ticketOfSize(n)
		want := http.StatusAccepted
		if n > 128<<10 {
			want = http.StatusRequestEntityTooLarge
		}
		if code, got := postTicket(t, srv, strings.NewReader(body), nil); code != want {
			t.Errorf("%d-byte body: %d %.200s, want %d", n, code, got, want)
		}
	}
	if len(sink.tickets) != 4 {
		t.Fatalf("stored %d tickets, want 4", len(sink.tickets))
	}
	for _, tk := range sink.tickets {
		if len(tk.Title) < 64<<10-30 {
			t.Errorf("stored a title of %d bytes; the body was cut", len(tk.Title))
		}
	}
}
