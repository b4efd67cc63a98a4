package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	_ "github.com/deskrelay/deskrelay/connectors/all"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestTicketIDRoundTrip(t *testing.T) {
	for _, seq := range []int64{0, 7, 1_999_999} {
		if got := parseSeq("r1", ticketID("r1", seq)); got != seq {
			t.Errorf("parseSeq(ticketID(%d)) = %d, want %d", seq, got, seq)
		}
	}
	for _, id := range []string{"", "BENCHr1-", "BENCHr2-5", "INC0042", "BENCHr1-x"} {
		if got := parseSeq("r1", id); got != -1 {
			t.Errorf("parseSeq(%q) = %d, want -1", id, got)
		}
	}
}

// TestBodies checks that every generated generic body is a valid
// normalised ticket of about 1.5 KB with a unique id, and that ServiceNow
// bodies are JSON records.
func TestBodies(t *testing.T) {
	p := &payload{source: "generic", run: "t", callers: 50000, now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	ids := map[string]bool{}
	for seq := range int64(200) {
		body := p.body(seq)
		if n := len(body); n < 1200 || n > 1800 {
			t.Errorf("body(%d) is %d bytes, want about 1.5 KB", seq, n)
		}
		var tk ticket.Ticket
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields() // as the generic connector's identity mapping
		if err := dec.Decode(&tk); err != nil {
			t.Fatalf("body(%d) does not decode as a ticket: %v\n%s", seq, err, body)
		}
		tk.Source = "generic"
		if err := tk.Validate(); err != nil {
			t.Errorf("body(%d): %v", seq, err)
		}
		if ids[tk.ID] {
			t.Errorf("body(%d) repeats id %q", seq, tk.ID)
		}
		ids[tk.ID] = true
	}
	// Each source's bodies are what its connector accepts, as the harness
	// configures it (configCopy): a harness that gets 400s measures
	// nothing.
	for _, source := range []string{"generic", "servicenow"} {
		spec, ok := connectors.Lookup(source)
		if !ok {
			t.Fatalf("no %s connector", source)
		}
		wh, err := spec.NewWebhook(connectors.Source{Name: source, Config: config.Connector{Type: source, Auth: config.Auth{Type: "none"}}})
		if err != nil {
			t.Fatalf("%s webhook: %v", source, err)
		}
		sp := &payload{source: source, run: "t", callers: 50000, now: p.now}
		for seq := range int64(100) {
			tk, err := wh.Normalize(t.Context(), nil, sp.body(seq))
			if err != nil {
				t.Fatalf("%s body(%d) is refused by its connector: %v\n%s", source, seq, err, sp.body(seq))
			}
			tk.Source = source
			if err := tk.Validate(); err != nil || tk.ID != ticketID("t", seq) || tk.Caller.Email == "" {
				t.Errorf("%s body(%d): %v, id %q, caller %+v", source, seq, err, tk.ID, tk.Caller)
			}
		}
	}
}

// TestProfileCSV checks the directory's shape; that deskrelay loads it is
// checked by every harness run (it refuses to start on a bad row).
func TestProfileCSV(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(string(profileCSV(1000)), "\n"), "\n")
	if len(lines) != 1001 || lines[0] != "email,user_id,profile,competence,attitude" {
		t.Fatalf("profileCSV(1000) has %d lines, header %q", len(lines), lines[0])
	}
	for _, l := range lines[1:] {
		if f := strings.Split(l, ","); len(f) != 5 || (f[2] == "") == (f[3] == "") {
			t.Errorf("row %q: want email, id, and a profile or scores", l)
		}
	}
}

func TestParseRates(t *testing.T) {
	got, err := parseRates("0.5x, 2000,2x")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[0.5x 2000/s 2x]" {
		t.Errorf("parseRates = %s, want [0.5x 2000/s 2x]", s)
	}
	for _, bad := range []string{"fast", "-1", "0x"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("parseRates(%q) = nil error", bad)
		}
	}
}

// TestLoadAgainstCeiling runs the ceiling and the relay in-process and
// sends each a bounded closed-loop and open-loop phase: every accepted
// ticket must reach the consumer (of the ingest stream for the ceiling, of
// the routed stream for the relay) and be counted once.
func TestLoadAgainstCeiling(t *testing.T) {
	for _, tt := range []struct {
		name     string
		relay    bool
		external bool // on a serveNATS server, as with -nats external
		stream   string
		bytes    int // -ceiling-body-bytes
	}{
		{"ceiling", false, false, "DESKRELAY_INGEST", 0},
		{"relay", true, false, "DESKRELAY_ROUTED", 0},
		{"relay on an external nats-server", true, true, "DESKRELAY_ROUTED", 0},
		{"ceiling storing 2500 bytes", false, false, "DESKRELAY_INGEST", 2500},
		{"relay storing 2500 bytes", true, false, "DESKRELAY_ROUTED", 2500},
		{"ceiling with bodies longer than -ceiling-body-bytes", false, false, "DESKRELAY_INGEST", 500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			type addrs struct{ http, nats string }
			natsURL := ""
			if tt.external {
				nctx, stopNATS := context.WithCancel(t.Context())
				ready, done := make(chan string, 1), make(chan error, 1)
				// TempDir before the goroutine: its removal must be
				// registered before, so run after, the cleanup that stops
				// the server.
				dir := t.TempDir()
				go func() { done <- serveNATS(nctx, dir, "", func(_, n string) { ready <- n }) }()
				select {
				case natsURL = <-ready:
				case err := <-done:
					t.Fatalf("serveNATS: %v", err)
				}
				t.Cleanup(func() {
					stopNATS()
					if err := <-done; err != nil {
						t.Errorf("serveNATS: %v", err)
					}
				})
			}
			ready := make(chan addrs, 1)
			done := make(chan error, 1)
			dir := t.TempDir() // before the goroutine, as above
			go func() {
				done <- serveCeiling(ctx, dir, "", "generic", natsURL, tt.relay, tt.bytes, func(h, n string) { ready <- addrs{h, n} })
			}()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serveCeiling: %v", err)
				}
			})
			var a addrs
			select {
			case a = <-ready:
			case err := <-done:
				t.Fatalf("serveCeiling: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("server not listening after 30s")
			}
			l := newLoader("http://"+a.http+"/webhooks/generic", "token", "generic", "t", 100, 8, time.Now())
			// Before the server stops: a connection dialled but never used
			// holds http.Server.Shutdown for 5 s.
			t.Cleanup(l.client.CloseIdleConnections)
			if tt.external && a.nats != natsURL {
				t.Fatalf("server reports NATS %s, want the external %s", a.nats, natsURL)
			}
			stop, err := l.consume(ctx, a.nats, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()

			closed := newPhase(0, 200)
			l.cur.Store(closed)
			l.closedLoop(ctx, closed, 4, 30*time.Second) // ends after 200 tickets
			if lost := drain(ctx, closed, 30*time.Second); lost != 0 || closed.accepted.Load() != 200 {
				t.Fatalf("closed loop: accepted %d, lost %d, codes %v; want 200 accepted, none lost", closed.accepted.Load(), lost, closed.codes)
			}
			if n := closed.e2e.TotalCount(); n != 200 {
				t.Errorf("closed loop: %d end-to-end latencies, want 200", n)
			}
			// Both store the webhook body as posted (about 1.3 KB), or
			// padded to tt.bytes when that is longer.
			padded := tt.bytes > 2000
			if mean := closed.bytes.Load() / 200; !padded && (mean < 1000 || mean > 2000) {
				t.Errorf("closed loop: mean stored body %d bytes, want the posted ~1.3 KB", mean)
			} else if padded && mean != int64(tt.bytes) {
				t.Errorf("closed loop: mean stored body %d bytes, want %d", mean, tt.bytes)
			}
			wantLen := 0
			if padded {
				wantLen = tt.bytes
			}
			checkStored(t, a.nats, tt.stream, wantLen, tt.bytes > 0)

			open := newPhase(200, 50)
			l.cur.Store(open)
			l.openLoop(ctx, open, 500, 8, 100*time.Millisecond) // 50 requests due
			lost := drain(ctx, open, 30*time.Second)
			if got := open.accepted.Load() + open.dropped.Load(); got != 50 || lost != 0 {
				t.Errorf("open loop: accepted %d + dropped %d = %d, lost %d; want 50, none lost (codes %v)",
					open.accepted.Load(), open.dropped.Load(), got, lost, open.codes)
			}
			// Every request sent has its send lag; none can exceed its
			// ingress latency, which counts from the same due time.
			if n := open.lag.TotalCount(); n != open.ingress.TotalCount() || n == 0 {
				t.Errorf("open loop: %d send lags for %d ingress latencies", n, open.ingress.TotalCount())
			}
			if open.lag.Max() > open.ingress.Max() {
				t.Errorf("open loop: send lag max %dµs above the ingress max %dµs", open.lag.Max(), open.ingress.Max())
			}
			if closed.lag.TotalCount() != 0 {
				t.Errorf("closed loop: %d send lags, want none", closed.lag.TotalCount())
			}
		})
	}
}

// checkStored checks the first message of stream: still JSON, of
// bodyBytes when that is set, and with every Deskrelay-* header of a
// routed message when routed is, else the ticket id alone.
func checkStored(t *testing.T, natsURL, stream string, bodyBytes int, routed bool) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(m.Data) || (bodyBytes > 0 && len(m.Data) != bodyBytes) {
		t.Errorf("stored body of %d bytes (want %d), valid JSON %v", len(m.Data), bodyBytes, json.Valid(m.Data))
	}
	var got []string
	for k := range m.Header {
		if strings.HasPrefix(k, "Deskrelay-") {
			got = append(got, k)
		}
	}
	slices.Sort(got)
	want := []string{ticket.HeaderTicketID}
	if routed {
		all := ticket.RoutedHeaders()
		want = all[:]
		slices.Sort(want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("stored headers %v, want %v", got, want)
	}
}

// TestReceive: a message counts once, with its size, and only for the
// phase whose tickets it carries.
func TestReceive(t *testing.T) {
	p := newPhase(10, 3)
	now := time.Now()
	p.markSent(10, now)
	p.markSent(11, now)
	for _, r := range []struct {
		seq  int64
		size int
	}{
		{10, 100}, {10, 100}, // redelivered: once
		{11, 300},
		{12, 50},          // not sent
		{9, 70}, {13, 80}, // another phase's
	} {
		p.receive(r.seq, r.size, now.Add(time.Millisecond))
	}
	if got, bytes := p.received.Load(), p.bytes.Load(); got != 2 || bytes != 400 {
		t.Errorf("received %d messages of %d bytes, want 2 of 400", got, bytes)
	}
	if n := p.e2e.TotalCount(); n != 2 {
		t.Errorf("%d end-to-end latencies, want 2", n)
	}
}

func TestMedians(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	phase := func(name string, rate, cpu float64) PhaseResult {
		return PhaseResult{Name: name, E2ERate: rate, CPUPer1000: cpu}
	}
	var all []*TargetResult
	for rep, v := range []struct{ d, c float64 }{{100, 200}, {300, 200}, {200, 1000}} {
		all = append(all,
			&TargetResult{Name: "deskrelay", Repeat: rep + 1, Phases: []PhaseResult{phase("closed", v.d, 1)}},
			&TargetResult{Name: "ceiling", Repeat: rep + 1, Phases: []PhaseResult{phase("closed", v.c, 0.5)}})
	}
	mt := medianTargets(all)
	if len(mt) != 2 || mt[0].Name != "deskrelay" || mt[0].Phases[0].E2ERate != 200 || mt[1].Phases[0].E2ERate != 200 {
		t.Fatalf("medianTargets = %+v, want deskrelay and ceiling, each with the median rate 200", mt)
	}
	// Ratios within each repetition: 0.5, 1.5, 0.2 → median 0.5, not
	// the ratio of the medians (200/200 = 1).
	mr := medianRatios(all, "deskrelay", "ceiling")
	if len(mr) != 1 || mr[0].Ratios["e2e_per_second"] != 0.5 || mr[0].Ratios["cpu_seconds_per_1000"] != 2 {
		t.Errorf("medianRatios = %+v, want e2e 0.5 and cpu 2", mr)
	}
}

// TestCeilingArgs: the ceiling subprocess parses back the settings it
// must share with the run.
func TestCeilingArgs(t *testing.T) {
	o, err := parseFlags([]string{"-sync-interval", "always", "-source", "servicenow", "-ceiling-body-bytes", "2500"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		natsURL string
		relay   bool
	}{{"", false}, {"nats://127.0.0.1:4222", true}} {
		sub, err := parseFlags(ceilingArgs(o, "/tmp/store", tt.natsURL, tt.relay))
		if err != nil {
			t.Fatalf("ceilingArgs: %v", err)
		}
		if sub.ceilingDir != "/tmp/store" || sub.syncInterval != "always" || sub.source != "servicenow" ||
			sub.ceilingBytes != 2500 || sub.natsURL != tt.natsURL || sub.relay != tt.relay {
			t.Errorf("the subprocess parsed %+v from %q", sub, ceilingArgs(o, "/tmp/store", tt.natsURL, tt.relay))
		}
	}
}

// TestMedianPhaseKeepsEveryFigure sets every number of a PhaseResult, by
// reflection, and checks that the median of one repetition is the same
// phase: a figure added later but not to medianPhase fails here.
func TestMedianPhaseKeepsEveryFigure(t *testing.T) {
	var p PhaseResult
	n := 0.0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			n++
			switch f.Kind() {
			case reflect.Float64:
				f.SetFloat(n)
			case reflect.Int64, reflect.Int:
				f.SetInt(int64(n))
			case reflect.Struct:
				fill(f)
			}
		}
	}
	fill(reflect.ValueOf(&p).Elem())
	p.Name = "closed"
	got := medianPhase(p, []*PhaseResult{&p})
	// Not figures: the codes map and the RSS series stay in the
	// repetitions.
	p.Codes, p.RSSSeries = nil, nil
	if !reflect.DeepEqual(got, p) {
		t.Errorf("medianPhase of one phase:\n got %+v\nwant %+v", got, p)
	}
}

// TestTableRatios checks that each ratio column divides the right
// servers: deskrelay and inline by the ceiling, deskrelay by the relay.
func TestTableRatios(t *testing.T) {
	phase := func(rate float64) []PhaseResult {
		return []PhaseResult{{Name: "closed", Senders: 32, E2ERate: rate, IngressRate: rate, Errors: int64(rate)}}
	}
	ts := []*TargetResult{
		{Name: "deskrelay", Phases: phase(500)},
		{Name: "inline", Phases: phase(800)},
		{Name: "ceiling", Phases: phase(1000)},
		{Name: "relay", Phases: phase(400)},
	}
	r := &Result{Targets: ts, Ratios: ratios(ts, "deskrelay", "ceiling"), RelayRatios: ratios(ts, "deskrelay", "relay"),
		InlineRatios: ratios(ts, "inline", "ceiling")}
	var b strings.Builder
	printTable(&b, r)
	out := b.String()
	if !strings.Contains(out, "inline÷ceiling  deskrelay÷ceiling  deskrelay÷relay") {
		t.Fatalf("table header lacks the three ratio columns:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "end-to-end throughput") {
			if f := strings.Fields(line); len(f) < 7 || strings.Join(f[len(f)-7:], " ") != "500 800 1000 400 0.80× 0.50× 1.25×" {
				t.Errorf("throughput row = %q, want the four rates then 0.80× 0.50× 1.25×", line)
			}
		}
		if strings.Contains(line, "errors (not 202") && strings.Count(line, "-") != 3 {
			t.Errorf("errors row = %q, want its counts and no ratios (three -)", line)
		}
	}
	if !strings.Contains(out, "end-to-end throughput") {
		t.Fatalf("no throughput row in:\n%s", out)
	}
}

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		wantEnv []string // nil: an error is expected
	}{
		{"a DESKRELAY setting", []string{"-deskrelay-env", "DESKRELAY_PIPELINE_WORKERS=32"}, []string{"DESKRELAY_PIPELINE_WORKERS=32"}},
		{"runtime settings, comma-separated", []string{"-deskrelay-env", "GOGC=200,GOMEMLIMIT=512MiB,GOMAXPROCS=2"}, []string{"GOGC=200", "GOMEMLIMIT=512MiB", "GOMAXPROCS=2"}},
		{"GODEBUG keeps its commas", []string{"-deskrelay-env", "GOGC=200,GODEBUG=gctrace=1,madvdontneed=1"}, []string{"GOGC=200", "GODEBUG=gctrace=1,madvdontneed=1"}},
		{"the flag repeated", []string{"-deskrelay-env", "GODEBUG=gctrace=1", "-deskrelay-env", "DESKRELAY_PIPELINE_WORKERS=8"}, []string{"GODEBUG=gctrace=1", "DESKRELAY_PIPELINE_WORKERS=8"}},
		{"empty pieces are skipped", []string{"-deskrelay-env", "GOGC=50,,DESKRELAY_PIPELINE_WORKERS=8,"}, []string{"GOGC=50", "DESKRELAY_PIPELINE_WORKERS=8"}},
		{"pipeline.inline is the target's", []string{"-deskrelay-env", "DESKRELAY_PIPELINE_INLINE=true"}, nil},
		{"another variable", []string{"-deskrelay-env", "PATH=/tmp"}, nil},
		{"no value", []string{"-deskrelay-env", "DESKRELAY_PIPELINE_WORKERS"}, nil},
		{"relative rates after a reference", []string{"-targets", "ceiling,inline", "-rates", "0.5x"}, nil},
		{"absolute rates after a reference", []string{"-targets", "ceiling,inline", "-rates", "2000"}, []string{}},
		{"relative rates, references only", []string{"-targets", "ceiling,relay", "-rates", "0.5x"}, []string{}},
		{"a negative ceiling body size", []string{"-ceiling-body-bytes", "-1"}, nil},
		{"a ceiling body above 512 KiB", []string{"-ceiling-body-bytes", "524289"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			switch {
			case tt.wantEnv == nil && err == nil:
				t.Fatalf("parseFlags(%q) = nil error, want one", tt.args)
			case tt.wantEnv != nil && err != nil:
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			case err == nil && strings.Join(o.env, " ") != strings.Join(tt.wantEnv, " "):
				t.Errorf("env = %q, want %q", o.env, tt.wantEnv)
			}
		})
	}
}
