package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

// newBus connects to srv over TCP and returns a provisioned Bus.
func newBus(t *testing.T, srv *server.Server, cfg config.NATS) (*Bus, *nats.Conn) {
	t.Helper()
	cfg.URL = srv.ClientURL()
	nc, err := Connect(t.Context(), cfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := New(nc, cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return b, nc
}

func sampleTicket(id string) ticket.Ticket {
	return ticket.Ticket{
		ID:        id,
		Source:    "snow-prod",
		Title:     "VPN drops every hour",
		Caller:    ticket.Caller{ID: "u1"},
		Channel:   ticket.ChannelPortal,
		UpdatedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
	}
}

func streamMsgs(t *testing.T, b *Bus, kind string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), b.StreamName(kind))
	if err != nil {
		t.Fatalf("stream %s: %v", kind, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", kind, err)
	}
	return info.State.Msgs
}

func TestProvisionIsIdempotent(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	for _, tt := range []struct {
		kind    string
		subject string
		maxAge  time.Duration
		discard jetstream.DiscardPolicy
	}{
		{KindIngest, "deskrelay.ingest.>", 7 * 24 * time.Hour, jetstream.DiscardNew},
		{KindRouted, "deskrelay.routed.>", 7 * 24 * time.Hour, jetstream.DiscardOld},
		{KindDLQ, "deskrelay.dlq.>", 30 * 24 * time.Hour, jetstream.DiscardOld},
	} {
		t.Run("the "+tt.kind+" stream has the defaults", func(t *testing.T) {
			s, err := b.JetStream().Stream(t.Context(), DefaultStream(tt.kind).Name)
			if err != nil {
				t.Fatalf("Stream(%s): %v", tt.kind, err)
			}
			c := s.CachedInfo().Config
			if len(c.Subjects) != 1 || c.Subjects[0] != tt.subject {
				t.Errorf("subjects = %q, want [%q]", c.Subjects, tt.subject)
			}
			if c.MaxAge != tt.maxAge || c.Duplicates != 24*time.Hour || c.Storage != jetstream.FileStorage ||
				c.Retention != jetstream.LimitsPolicy || c.Replicas != 1 || c.Discard != tt.discard {
				t.Errorf("config = max_age %s, duplicates %s, storage %s, retention %s, replicas %d, discard %s; want %s, 24h, file, limits, 1, %s",
					c.MaxAge, c.Duplicates, c.Storage, c.Retention, c.Replicas, c.Discard, tt.maxAge, tt.discard)
			}
		})
	}
	if _, err := b.ProfilesKV(t.Context()); err != nil {
		t.Errorf("ProfilesKV: %v", err)
	}
}

func TestProvisionAppliesConfig(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{
		SubjectPrefix:  "acme.desk",
		ProfilesBucket: "acme_profiles",
		Streams: config.Streams{Ingest: config.Stream{
			Name: "ACME_INGEST", Retention: "workqueue", MaxAge: time.Hour,
			DuplicateWindow: 10 * time.Minute, Storage: "memory", MaxBytes: 1 << 20,
		}},
	})
	s, err := b.JetStream().Stream(t.Context(), "ACME_INGEST")
	if err != nil {
		t.Fatalf("Stream(ACME_INGEST): %v", err)
	}
	c := s.CachedInfo().Config
	if c.Subjects[0] != "acme.desk.ingest.>" || c.Retention != jetstream.WorkQueuePolicy || c.MaxAge != time.Hour ||
		c.Duplicates != 10*time.Minute || c.Storage != jetstream.MemoryStorage || c.MaxBytes != 1<<20 {
		t.Errorf("ingest config = %+v, want the configured values", c)
	}
	if got := b.Subject(KindRouted, "l2", "portal"); got != "acme.desk.routed.l2.portal" {
		t.Errorf("Subject(routed, l2, portal) = %q, want acme.desk.routed.l2.portal", got)
	}
	if _, err := b.ProfilesKV(t.Context()); err != nil {
		t.Errorf("ProfilesKV: %v", err)
	}
}

func TestIngestStoresOnceAndReportsDuplicate(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	tk := sampleTicket("INC001")
	dup, err := b.IngestResult(t.Context(), tk)
	if err != nil || dup {
		t.Fatalf("first IngestResult = %v, %v; want false, nil", dup, err)
	}
	dup, err = b.IngestResult(t.Context(), tk)
	if err != nil || !dup {
		t.Fatalf("second IngestResult = %v, %v; want true, nil", dup, err)
	}
	if err := b.Ingest(t.Context(), tk); err != nil {
		t.Fatalf("Ingest of a duplicate = %v, want nil (it is stored)", err)
	}
	if n := streamMsgs(t, b, KindIngest); n != 1 {
		t.Errorf("ingest stream holds %d messages, want 1", n)
	}
	s, _ := b.JetStream().Stream(t.Context(), b.StreamName(KindIngest))
	raw, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatalf("GetMsg(1): %v", err)
	}
	if raw.Subject != "deskrelay.ingest.snow-prod" || raw.Header.Get(nats.MsgIdHdr) != tk.MsgID() || raw.Header.Get(ticket.HeaderTicketID) != "INC001" {
		t.Errorf("stored message: subject %q, msg id %q, ticket id %q; want deskrelay.ingest.snow-prod, %q, INC001",
			raw.Subject, raw.Header.Get(nats.MsgIdHdr), raw.Header.Get(ticket.HeaderTicketID), tk.MsgID())
	}
	got, err := ticket.Decode(raw.Data)
	if err != nil || got.ID != tk.ID || !got.UpdatedAt.Equal(tk.UpdatedAt) {
		t.Errorf("Decode(stored) = %+v, %v; want the ticket back", got, err)
	}
	for result, want := range map[string]float64{ResultStored: 1, ResultDuplicate: 2, ResultError: 0} {
		if got := testutil.ToFloat64(b.m.ingest.WithLabelValues(result)); got != want {
			t.Errorf("deskrelay_ingest_published_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

func TestValidTokenFollowsNATS(t *testing.T) {
	for _, tt := range []struct {
		tok  string
		want bool
	}{
		{"snow-prod", true},
		{"l2", true},
		{"p*1", true}, // '*' inside a longer token is literal to NATS
		{"a>", true},
		{"café", true},
		{"no\u00a0break", true}, // only ASCII white space splits a NATS subject
		{"", false},
		{"*", false},
		{">", false},
		{"snow.prod", false},
		{"snow prod", false},
		{"tab\tbed", false},
		{"cr\r", false},
		{"lf\n", false},
		{"ff\f", false},
		{"nul\x00", false},
		{"bad\xffutf8", false},
	} {
		t.Run(fmt.Sprintf("token %q", tt.tok), func(t *testing.T) {
			if got := validToken(tt.tok); got != tt.want {
				t.Errorf("validToken(%q) = %v, want %v", tt.tok, got, tt.want)
			}
			// nats-server's own check of a publish subject (it does not
			// look at NUL or UTF-8 unless asked: those are ours).
			if tt.want && !server.IsValidPublishSubject("deskrelay.ingest."+tt.tok) {
				t.Errorf("server.IsValidPublishSubject(deskrelay.ingest.%s) = false, but validToken accepts it", tt.tok)
			}
		})
	}
}

func TestIngestRejectsBadSource(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	for _, src := range []string{"", "snow.prod", "*", ">", "snow prod", "tab\tbed"} {
		t.Run(fmt.Sprintf("source %q is rejected", src), func(t *testing.T) {
			tk := sampleTicket("INC1")
			tk.Source = src
			if err := b.Ingest(t.Context(), tk); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Ingest(source %q) = %v, want ErrInvalidToken", src, err)
			}
		})
	}
	if got := testutil.ToFloat64(b.m.ingest.WithLabelValues(ResultError)); got != 6 {
		t.Errorf("deskrelay_ingest_published_total{result=error} = %v, want 6", got)
	}
}

func TestIngestRefusesWhatCannotBeStored(t *testing.T) {
	b, nc := newBus(t, bustest.Start(t), config.NATS{})
	limit := int(nc.MaxPayload()) - PayloadReserve
	// sized returns a ticket whose JSON encoding is exactly n bytes.
	sized := func(n int) ticket.Ticket {
		tk := sampleTicket("INC-big")
		base := len(mustJSON(t, tk))
		tk.Description = strings.Repeat("x", n-base-len(`,"description":""`))
		if got := len(mustJSON(t, tk)); got != n {
			t.Fatalf("sized(%d) encodes to %d bytes", n, got)
		}
		return tk
	}
	badRaw := sampleTicket("INC-raw")
	badRaw.Raw = []byte("{not json")
	for _, tt := range []struct {
		name     string
		tk       ticket.Ticket
		tooLarge bool
		badInput bool
	}{
		{"a ticket at the limit is stored", sized(limit), false, false},
		{"a ticket one byte over the limit is too large", sized(limit + 1), true, false},
		{"a ticket near max_payload is too large", sized(int(nc.MaxPayload()) - 100), true, false},
		{"a ticket whose raw payload is not JSON is bad input", badRaw, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := streamMsgs(t, b, KindIngest)
			err := b.Ingest(t.Context(), tt.tk)
			var tl interface{ TooLarge() bool }
			var bi interface{ BadInput() bool }
			gotTooLarge := errors.As(err, &tl) && tl.TooLarge()
			gotBadInput := errors.As(err, &bi) && bi.BadInput()
			if gotTooLarge != tt.tooLarge || gotBadInput != tt.badInput {
				t.Errorf("Ingest = %v: TooLarge %v, BadInput %v; want %v, %v", err, gotTooLarge, gotBadInput, tt.tooLarge, tt.badInput)
			}
			if !tt.tooLarge && !tt.badInput && err != nil {
				t.Errorf("Ingest = %v, want nil", err)
			}
			want := uint64(1)
			if err != nil {
				want = 0
			}
			if stored := streamMsgs(t, b, KindIngest) - before; stored != want {
				t.Errorf("ingest stream grew by %d messages after Ingest = %v, want %d", stored, err, want)
			}
		})
	}
	var tooLarge *TooLargeError
	err := b.Ingest(t.Context(), sized(limit+10))
	if !errors.As(err, &tooLarge) || tooLarge.Size != limit+10 || tooLarge.Limit != limit {
		t.Errorf("Ingest(%d bytes) = %v, want a *TooLargeError{Size: %d, Limit: %d}", limit+10, err, limit+10, limit)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublishRoutedSetsSubjectAndHeaders(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	r := &ticket.Routed{
		Schema:   ticket.RoutedSchema,
		Ticket:   sampleTicket("INC7"),
		Profile:  ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 1},
		Routing:  ticket.Routing{Tier: ticket.TierL2, Channel: ticket.ChannelPortal, Priority: 2, Rules: []string{"root"}},
		RoutedAt: time.Date(2025, 3, 4, 5, 6, 8, 0, time.UTC),
	}
	for range 2 {
		if err := b.PublishRouted(t.Context(), "routed:snow-prod:INC7:1", r); err != nil {
			t.Fatalf("PublishRouted: %v", err)
		}
	}
	if n := streamMsgs(t, b, KindRouted); n != 1 {
		t.Errorf("routed stream holds %d messages after publishing one id twice, want 1", n)
	}
	s, _ := b.JetStream().Stream(t.Context(), b.StreamName(KindRouted))
	raw, err := s.GetLastMsgForSubject(t.Context(), "deskrelay.routed.l2.portal")
	if err != nil {
		t.Fatalf("GetLastMsgForSubject(deskrelay.routed.l2.portal): %v", err)
	}
	for h, want := range map[string]string{
		ticket.HeaderSchema:   ticket.RoutedSchema,
		ticket.HeaderTicketID: "INC7",
		ticket.HeaderSource:   "snow-prod",
		ticket.HeaderProfile:  "doer",
		ticket.HeaderTier:     "l2",
		ticket.HeaderChannel:  "portal",
		ticket.HeaderPriority: "2",
		nats.MsgIdHdr:         "routed:snow-prod:INC7:1",
	} {
		if got := raw.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	bad := *r
	bad.Routing.Channel = "walk in"
	if err := b.PublishRouted(t.Context(), "routed:x", &bad); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("PublishRouted(channel %q) = %v, want ErrInvalidToken", bad.Routing.Channel, err)
	}
}

func TestPublishDLQSetsSubjectAndHeaders(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	d := &ticket.DeadLetter{Reason: ticket.ReasonDecode, Error: "not a ticket", Source: "zendesk", FailedAt: time.Now()}
	d.SetPayload([]byte("{oops"))
	if err := b.PublishDLQ(t.Context(), "dlq:x:1", d); err != nil {
		t.Fatalf("PublishDLQ: %v", err)
	}
	s, _ := b.JetStream().Stream(t.Context(), b.StreamName(KindDLQ))
	raw, err := s.GetLastMsgForSubject(t.Context(), "deskrelay.dlq.decode")
	if err != nil {
		t.Fatalf("GetLastMsgForSubject(deskrelay.dlq.decode): %v", err)
	}
	for h, want := range map[string]string{
		ticket.HeaderReason: "decode",
		ticket.HeaderSource: "zendesk",
		ticket.HeaderSchema: ticket.DeadLetterSchema,
		nats.MsgIdHdr:       "dlq:x:1",
	} {
		if got := raw.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	if !strings.Contains(string(raw.Data), `"payload_base64"`) {
		t.Errorf("dead letter %s lacks the base64 payload", raw.Data)
	}
}

func TestReady(t *testing.T) {
	srv := bustest.Start(t)
	cfg := config.NATS{URL: srv.ClientURL()}
	nc, err := Connect(t.Context(), cfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := New(nc, cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }

	if err := b.Ready(t.Context()); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Ready before Provision = %v, want ErrStreamNotFound", err)
	}
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := b.Ready(t.Context()); err != nil {
		t.Errorf("Ready after Provision = %v, want nil", err)
	}
	if err := b.JetStream().DeleteStream(t.Context(), b.StreamName(KindDLQ)); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	if err := b.Ready(t.Context()); err != nil {
		t.Errorf("Ready within the cache period = %v, want the cached nil", err)
	}
	now = now.Add(DefaultReadyCache)
	if err := b.Ready(t.Context()); !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "DESKRELAY_DLQ") {
		t.Errorf("Ready with the dlq stream deleted = %v, want ErrStreamNotFound naming DESKRELAY_DLQ", err)
	}
	bustest.Close(t, nc)
	if err := b.Ready(t.Context()); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ready on a closed connection = %v, want ErrNotConnected", err)
	}
}

// waitStatus polls nc until it reaches want, bounded.
func waitStatus(t *testing.T, nc *nats.Conn, want nats.Status) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for nc.Status() != want {
		if time.Now().After(deadline) {
			t.Fatalf("connection status = %s after 15s, want %s", nc.Status(), want)
		}
		<-tick.C
	}
}

func TestIngestAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := bustest.StartAt(t, dir, server.RANDOM_PORT)
	port := bustest.ServerPort(t, srv)
	b, nc := newBus(t, srv, config.NATS{})
	first := sampleTicket("INC-before")
	if err := b.Ingest(t.Context(), first); err != nil {
		t.Fatalf("Ingest before the restart: %v", err)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	waitStatus(t, nc, nats.RECONNECTING)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := b.Ingest(ctx, sampleTicket("INC-during")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ingest with the server down = %v, want ErrNotConnected", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Ingest with the server down waited for its deadline; want it to fail fast")
	}

	bustest.StartAt(t, dir, port)
	waitStatus(t, nc, nats.CONNECTED)
	if err := b.Ingest(t.Context(), sampleTicket("INC-after")); err != nil {
		t.Fatalf("Ingest after the restart: %v", err)
	}
	if n := streamMsgs(t, b, KindIngest); n != 2 {
		t.Errorf("ingest stream holds %d messages, want 2 (before and after the restart)", n)
	}
	dup, err := b.IngestResult(t.Context(), first)
	if err != nil || !dup {
		t.Errorf("IngestResult(ticket stored before the restart) = %v, %v; want duplicate", dup, err)
	}
}

func TestStartEmbedded(t *testing.T) {
	for _, tt := range []struct {
		name       string
		emb        config.Embedded
		syncAlways bool
		interval   time.Duration
	}{
		{"default sync interval on a random port", config.Embedded{Listen: "127.0.0.1:0"}, false, 2 * time.Minute},
		{"sync always", config.Embedded{Listen: "127.0.0.1:0", SyncInterval: "always"}, true, 0},
		{"sync every 50ms without a listener", config.Embedded{Listen: "none", SyncInterval: "50ms"}, false, 50 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.NATS{Embedded: tt.emb}
			dataDir := t.TempDir()
			srv, err := StartEmbedded(cfg, dataDir, zaptest.NewLogger(t))
			if err != nil {
				t.Fatalf("StartEmbedded: %v", err)
			}
			t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
			js := srv.JetStreamConfig()
			if js == nil {
				t.Fatal("JetStream is not enabled")
			}
			if js.SyncAlways != tt.syncAlways || (tt.interval > 0 && js.SyncInterval != tt.interval) {
				t.Errorf("sync always %v, interval %s; want %v, %s", js.SyncAlways, js.SyncInterval, tt.syncAlways, tt.interval)
			}
			if want := filepath.Join(dataDir, "jetstream"); js.StoreDir != want {
				t.Errorf("store dir %q, want %q (the server adds one jetstream/ to data_dir)", js.StoreDir, want)
			}
			nc, err := Connect(t.Context(), cfg, srv, zaptest.NewLogger(t))
			if err != nil {
				t.Fatalf("Connect in-process: %v", err)
			}
			bustest.CloseOnCleanup(t, nc)
			b, err := New(nc, cfg, zaptest.NewLogger(t), nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := b.Provision(t.Context()); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if err := b.Ingest(t.Context(), sampleTicket("INC1")); err != nil {
				t.Errorf("Ingest: %v", err)
			}
		})
	}
	t.Run("an explicit store_dir gets one jetstream subfolder", func(t *testing.T) {
		storeDir := filepath.Join(t.TempDir(), "store")
		srv, err := StartEmbedded(config.NATS{Embedded: config.Embedded{Listen: "none", StoreDir: storeDir}}, t.TempDir(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("StartEmbedded: %v", err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if got, want := srv.JetStreamConfig().StoreDir, filepath.Join(storeDir, "jetstream"); got != want {
			t.Errorf("store dir %q, want %q", got, want)
		}
	})
	for _, tt := range []struct {
		name string
		emb  config.Embedded
		want string
	}{
		{"a bad sync interval is an error", config.Embedded{SyncInterval: "sometimes"}, `sync_interval "sometimes"`},
		{"a negative sync interval is an error", config.Embedded{SyncInterval: "-1s"}, `sync_interval "-1s"`},
		{"a listen address without port is an error", config.Embedded{Listen: "localhost"}, `listen "localhost"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartEmbedded(config.NATS{Embedded: tt.emb}, t.TempDir(), zaptest.NewLogger(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("StartEmbedded(%+v) = %v, want an error containing %q", tt.emb, err, tt.want)
			}
		})
	}
}

func TestProvisionOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	servers := bustest.Cluster(t, 3)
	cfg := config.NATS{URL: bustest.ClientURLs(servers), KVReplicas: 3, Streams: config.Streams{
		Ingest: config.Stream{Replicas: 3}, Routed: config.Stream{Replicas: 3}, DLQ: config.Stream{Replicas: 3},
	}}
	nc, err := Connect(t.Context(), cfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := New(nc, cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("Provision with 3 replicas: %v", err)
	}
	if err := b.Ingest(t.Context(), sampleTicket("INC1")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	s, err := b.JetStream().Stream(t.Context(), b.StreamName(KindIngest))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if info := s.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("ingest stream replicas = %d, cluster %+v; want 3 (a leader and 2 peers)", info.Config.Replicas, info.Cluster)
	}
}

func TestConnectWithoutURLOrServer(t *testing.T) {
	if _, err := Connect(t.Context(), config.NATS{}, nil, zaptest.NewLogger(t)); err == nil {
		t.Error("Connect with neither url nor server = nil error, want one")
	}
}

func TestMetricsLint(t *testing.T) {
	m := NewMetrics(nil)
	for _, c := range []interface {
		Describe(chan<- *prometheus.Desc)
		Collect(chan<- prometheus.Metric)
	}{m.ingest, m.publish} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatalf("CollectAndLint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("metric %s: %s", p.Metric, p.Text)
		}
	}
}
