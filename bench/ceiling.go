package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/ticket"
)

// ceilingSource is the configured source name the ceiling stores under,
// as deskrelay's example config does.
const ceilingSource = "generic"

// snowSource is the source name of deskrelay's servicenow connector in the
// config copy for -source servicenow.
const snowSource = "snow"

// serveCeiling runs the ceiling until ctx ends: an embedded nats-server
// started exactly as deskrelay starts its own (internal/bus, file storage
// under dir, the streams and their limits provisioned by the same code),
// and an HTTP handler that only reads the body, decodes the JSON,
// publishes it to the ingest stream with a Nats-Msg-Id and answers 202
// after the PubAck. No auth, validation, metrics or logging: this is what
// one stored ticket costs on this machine, the bound deskrelay is
// measured against. It prints the same "listening" JSON line deskrelay
// logs through ready (the subprocess prints it on stderr), and serves
// /readyz and /debug/pprof/ besides.
//
// With relay it is the relay instead: the same handler, and besides it the
// bare processing stage deskrelay's architecture needs, with no work of
// its own: a durable pull consumer on the ingest stream configured as
// deskrelay's, as many messages at once as its max_pending_acks default,
// each published unchanged (no decode, enrichment, routing or encoding) to a routed
// subject with Nats-Msg-Id routed:<ingest id> and the Deskrelay-* headers
// the handler stored, and acked after the PubAck — the NATS work per ticket that deskrelay
// cannot avoid: two stores, a delivery and an ack.
//
// With a natsURL it uses that server (see serveNATS) instead of its own.
// With bodyBytes > 0 the handler stores messages of a routed message's
// weight (see ceiling.padded).
func serveCeiling(ctx context.Context, dir, syncInterval, source, natsURL string, relay bool, bodyBytes int, ready func(httpAddr, natsURL string)) error {
	cfg := config.NATS{URL: natsURL, Embedded: config.Embedded{Listen: "127.0.0.1:0", SyncInterval: syncInterval}}
	log := zap.NewNop()
	var srv *natsserver.Server
	if natsURL == "" {
		var err error
		if srv, err = bus.StartEmbedded(cfg, dir, log); err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		natsURL = "nats://" + srv.Addr().String()
	}
	nc, err := bus.Connect(ctx, cfg, srv, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, cfg, log, nil)
	if err != nil {
		return err
	}
	if err := b.Provision(ctx); err != nil {
		return err
	}
	h := &ceiling{js: b.JetStream(), subject: b.Subject(bus.KindIngest, ceilingSource), vendor: source}
	if bodyBytes > 0 {
		// The Deskrelay-Source deskrelay's routed message would carry.
		routedSource := ceilingSource
		if source == "servicenow" {
			routedSource = snowSource
		}
		h.padded = bytes.Repeat([]byte{' '}, bodyBytes)
		h.routedHeaders = nats.Header{ticket.HeaderSchema: {ticket.RoutedSchema}, ticket.HeaderSource: {routedSource},
			ticket.HeaderProfile: {"prioritizer"}, ticket.HeaderTier: {"l2"}, ticket.HeaderChannel: {"phone"}, ticket.HeaderPriority: {"3"}}
	}
	// relayDone yields runRelay's result; it never does without relay.
	relayDone := make(chan error, 1)
	stopRelay := func() error { return nil }
	if relay {
		cons, err := b.IngestConsumer(ctx, config.Pipeline{})
		if err != nil {
			return err
		}
		// The relay stops after the HTTP side, before the connection
		// drains: its last publishes still get their PubAcks.
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() { relayDone <- runRelay(rctx, b.JetStream(), cons, b.Subject(bus.KindRouted, "l1", "portal")) }()
		stopRelay = func() error { cancel(); return <-relayDone }
	}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{source}", h)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready(ln.Addr().String(), natsURL)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return errors.Join(err, stopRelay())
	case err := <-relayDone: // the relay cannot go on: fail, not measure
		relayDone <- err
		_ = hs.Close()
		return fmt.Errorf("relay: %w", stopRelay())
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(hs.Shutdown(sctx), stopRelay())
	if derr := nc.Drain(); derr != nil {
		return errors.Join(err, derr)
	}
	for !nc.IsClosed() && sctx.Err() == nil { // Drain is asynchronous
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// serveNATS runs a nats-server with JetStream as deskrelay embeds it
// (internal/bus, file storage under dir) until ctx ends, for -nats
// external: the servers measured then connect to it over loopback TCP and
// their RSS and CPU are their own. It prints the "listening" line with no
// HTTP address through ready.
func serveNATS(ctx context.Context, dir, syncInterval string, ready func(httpAddr, natsURL string)) error {
	cfg := config.NATS{Embedded: config.Embedded{Listen: "127.0.0.1:0", SyncInterval: syncInterval}}
	srv, err := bus.StartEmbedded(cfg, dir, zap.NewNop())
	if err != nil {
		return err
	}
	ready("", "nats://"+srv.Addr().String())
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}

// runRelay moves every ingest message to subject until ctx ends, then
// waits for the messages it took and returns nil. Like deskrelay's
// pipeline, it takes a new message iterator after an error reading the
// consumer (a missed heartbeat, a lost pull request), after a pause of
// 100ms doubling up to 2s; it returns the error only when the consumer
// or the connection is gone.
func runRelay(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, subject string) error {
	// As many messages at once as deskrelay's pipeline by default.
	slots := make(chan struct{}, bus.DefaultPipeline().MaxPendingAcks)
	var wg sync.WaitGroup
	defer wg.Wait()
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		err := relayIterator(ctx, js, cons, subject, slots, &wg)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
			errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
			return err
		}
		fmt.Fprintf(os.Stderr, "relay: reading the ingest consumer: %v; resuming in %s\n", err, pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// relayIterator hands the messages of one iterator to publishing
// goroutines, at most cap(slots) at once, until ctx ends (nil) or the
// iterator fails (its error).
func relayIterator(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, subject string, slots chan struct{}, wg *sync.WaitGroup) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(cap(slots)))
	if err != nil {
		return err
	}
	defer it.Stop()
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			h := msg.Headers()
			out := &nats.Msg{Subject: subject, Data: msg.Data(), Header: nats.Header{}}
			for k, v := range h {
				if strings.HasPrefix(k, "Deskrelay-") {
					out.Header[k] = v
				}
			}
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bus.DefaultPublishTimeout)
			defer cancel()
			if _, err := js.PublishMsg(pctx, out, jetstream.WithMsgID("routed:"+h.Get(nats.MsgIdHdr))); err != nil {
				_ = msg.Nak()
				return
			}
			_ = msg.Ack()
		})
	}
}

// ceiling is the bare webhook handler.
type ceiling struct {
	js      jetstream.JetStream
	subject string
	vendor  string // "generic": the body is a ticket; "servicenow": a record
	// With -ceiling-body-bytes N, padded holds N spaces: each stored
	// body shorter than N is padded with them (still the same JSON) to N
	// bytes, a longer one stored as it is, and every message gets
	// routedHeaders, the other six Deskrelay-* headers of a routed
	// message with values of typical length: the NATS work of storing and
	// delivering a message of the routed message's weight, without the
	// work of making one.
	padded        []byte
	routedHeaders nats.Header
}

func (c *ceiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	id, msgID, err := c.decode(body)
	if err != nil {
		http.Error(w, "body is not a ticket", http.StatusBadRequest)
		return
	}
	msg := &nats.Msg{Subject: c.subject, Data: body, Header: nats.Header{ticket.HeaderTicketID: []string{id}}}
	if c.routedHeaders != nil {
		if len(body) < len(c.padded) {
			msg.Data = append(body, c.padded[len(body):]...)
		}
		maps.Copy(msg.Header, c.routedHeaders)
	}
	ctx, cancel := context.WithTimeout(r.Context(), bus.DefaultPublishTimeout)
	defer cancel()
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		http.Error(w, "ticket store unavailable; retry later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"status":"accepted","id":%q}`+"\n", id)
}

// decode decodes the whole body, as deskrelay does, and returns the ticket
// id and the de-duplication key.
func (c *ceiling) decode(body []byte) (id, msgID string, err error) {
	if c.vendor == "servicenow" {
		var rec map[string]any
		if err := json.Unmarshal(body, &rec); err != nil {
			return "", "", err
		}
		id, _ := rec["sys_id"].(string)
		updated, _ := rec["sys_updated_on"].(string)
		if id == "" {
			return "", "", errors.New("no sys_id")
		}
		return id, ceilingSource + ":" + id + ":" + updated, nil
	}
	var t ticket.Ticket
	if err := json.Unmarshal(body, &t); err != nil {
		return "", "", err
	}
	if t.ID == "" {
		return "", "", errors.New("no id")
	}
	t.Source = ceilingSource
	return t.ID, t.MsgID(), nil
}
