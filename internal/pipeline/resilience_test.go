package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/ticket"
)

// connectBus connects to url and returns a provisioned Bus on it.
func connectBus(t *testing.T, url string) (*bus.Bus, *nats.Conn) {
	t.Helper()
	return connectBusWith(t, config.NATS{URL: url})
}

// connectBusWith connects as ncfg says and returns a provisioned Bus.
func connectBusWith(t *testing.T, ncfg config.NATS) (*bus.Bus, *nats.Conn) {
	t.Helper()
	nc, err := bus.Connect(t.Context(), ncfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Connect(%s): %v", ncfg.URL, err)
	}
	bustest.CloseOnCleanup(t, nc)
	b, err := bus.New(nc, ncfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	if err := b.Provision(t.Context()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return b, nc
}

// restartable runs a server that can be stopped and started again on
// its port and store (dir), and returns it with a bus and the ingest
// consumer (default pipeline config) on it.
func restartable(t *testing.T) (dir string, srv *server.Server, port int, b *bus.Bus, nc *nats.Conn, cons jetstream.Consumer) {
	t.Helper()
	dir = t.TempDir()
	srv = bustest.StartAt(t, dir, server.RANDOM_PORT)
	port = bustest.ServerPort(t, srv)
	b, nc = connectBus(t, srv.ClientURL())
	cons, err := b.IngestConsumer(t.Context(), config.Pipeline{})
	if err != nil {
		t.Fatalf("IngestConsumer: %v", err)
	}
	return dir, srv, port, b, nc, cons
}

// runUntilStopped starts p and returns a channel that receives what Run
// returned; the test's cleanup cancels Run and waits for it.
func runUntilStopped(t *testing.T, p *Processor) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); errc <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s of its ctx ending")
		}
	})
	return errc
}

// waitConnected polls nc until it is CONNECTED, bounded.
func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for nc.Status() != nats.CONNECTED {
		if time.Now().After(deadline) {
			t.Fatalf("connection status = %s after 15s, want CONNECTED", nc.Status())
		}
		<-tick.C
	}
}

// TestRunSurvivesServerRestart stops the server under a running processor
// and starts it again on the same port and store: Run keeps going and
// routes a ticket stored after the restart.
func TestRunSurvivesServerRestart(t *testing.T) {
	dir, srv, port, b, nc, cons := restartable(t)
	cfg := config.Pipeline{}
	m := NewMetrics(nil)
	p := New(cons, doer, toL2Portal, b, cfg, zaptest.NewLogger(t), m, WithClock(func() time.Time { return fixedNow }))
	p.pullOpts = fastHeartbeat
	errc := runUntilStopped(t, p)

	srv.Shutdown()
	srv.WaitForShutdown()
	// Stay down for longer than the missed-heartbeat timeout.
	select {
	case err := <-errc:
		t.Fatalf("Run = %v while the server was down, want it to keep running", err)
	case <-time.After(3 * time.Second):
	}
	bustest.StartAt(t, dir, port)
	waitConnected(t, nc)

	routeAfterRestart(t, b, nc, errc, "INC30", 30*time.Second)
}

// TestRunStartedDuringAnOutage starts the processor while the server is
// down, as serve does when NATS goes away the moment the profile directory
// has loaded. An iterator opened then would send its first pull request
// into the outage (the connection buffers nothing while it reconnects),
// and the client library would not ask again until the iterator's missed
// heartbeats (30s). Run waits for the connection instead and routes the
// ticket stored after the restart within seconds.
func TestRunStartedDuringAnOutage(t *testing.T) {
	dir, srv, port, b, nc, cons := restartable(t)
	cfg := config.Pipeline{}
	srv.Shutdown()
	srv.WaitForShutdown()
	counted := &downConsumer{Consumer: cons}
	seen, logs := observer.New(zapcore.InfoLevel)
	log := zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, seen) })))
	p := New(counted, doer, toL2Portal, b, cfg, log, nil, WithClock(func() time.Time { return fixedNow }), WithConnection(nc))
	errc := runUntilStopped(t, p)
	// Run logs that it started just before it opens its first iterator.
	for deadline := time.Now().Add(10 * time.Second); logs.FilterMessage("pipeline started").Len() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start within 10s")
		}
	}
	time.Sleep(300 * time.Millisecond) // well past the point where it would open one
	bustest.StartAt(t, dir, port)
	waitConnected(t, nc)

	routeAfterRestart(t, b, nc, errc, "INC31", 10*time.Second)
	if n := counted.opens.Load(); n != 1 {
		t.Errorf("iterators opened = %d, want 1 (none while the server was down)", n)
	}
}

// TestRunEndsWhenTheConnectionClosesDuringAnOutage: Run waits for the
// connection before it opens an iterator; a connection closed meanwhile
// ends Run with the closed connection's error.
func TestRunEndsWhenTheConnectionClosesDuringAnOutage(t *testing.T) {
	_, srv, _, b, nc, cons := restartable(t)
	srv.Shutdown()
	srv.WaitForShutdown()
	p := New(cons, doer, toL2Portal, b, config.Pipeline{}, zaptest.NewLogger(t), nil, WithConnection(nc))
	errc := runUntilStopped(t, p)
	awaitStatus(nc, nats.RECONNECTING)
	time.Sleep(200 * time.Millisecond) // Run waiting for the connection
	nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, jetstream.ErrConnectionClosed) {
			t.Errorf("Run = %v, want the closed connection's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waiting 5s after the connection closed")
	}
}

// downConsumer counts the iterators opened. With down and up, it stops the
// server while its first iterator is being opened, and starts it again
// when that iterator is stopped: the connection goes down between Run's
// look at it and the opening, and comes back only if Run gives up that
// iterator.
type downConsumer struct {
	jetstream.Consumer
	down, up func()
	opens    atomic.Int32
}

func (c *downConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	first := c.opens.Add(1) == 1 && c.down != nil
	if first {
		c.down()
	}
	it, err := c.Consumer.Messages(opts...)
	if err != nil || !first {
		return it, err
	}
	return &onStop{MessagesContext: it, do: c.up}, nil
}

// onStop runs do in the background the first time the iterator is
// stopped.
type onStop struct {
	jetstream.MessagesContext
	do   func()
	once sync.Once
}

func (it *onStop) Stop() {
	it.MessagesContext.Stop()
	it.once.Do(func() { go it.do() })
}

// awaitStatus polls nc until its status is want, for at most 15s.
func awaitStatus(nc *nats.Conn, want nats.Status) bool {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if nc.Status() == want {
			return true
		}
	}
	return false
}

// TestRunReopensAnIteratorOpenedDuringAnOutage: an iterator opened while
// the client reconnects would send its first pull request into the outage
// and then wait for its missed heartbeats (30s). Run sees the connection
// down after the opening, stops that iterator (which here brings the
// server back) and opens another once the connection is back.
func TestRunReopensAnIteratorOpenedDuringAnOutage(t *testing.T) {
	dir, srv, port, b, nc, real := restartable(t)
	cfg := config.Pipeline{}
	restarted := make(chan bool, 1)
	cons := &downConsumer{
		Consumer: real,
		down: func() {
			srv.Shutdown()
			srv.WaitForShutdown()
			if !awaitStatus(nc, nats.RECONNECTING) {
				t.Errorf("client status %s 15s after the server stopped, want RECONNECTING", nc.Status())
			}
		},
		up: func() {
			s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
			if err != nil {
				restarted <- false
				return
			}
			s.Start()
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
			restarted <- s.ReadyForConnections(bustest.ReadyTimeout) && awaitStatus(nc, nats.CONNECTED)
		},
	}
	p := New(cons, doer, toL2Portal, b, cfg, zaptest.NewLogger(t), nil, WithClock(func() time.Time { return fixedNow }), WithConnection(nc))
	errc := runUntilStopped(t, p)
	select {
	case ok := <-restarted:
		if !ok {
			t.Fatal("server not back, or client not reconnected, within 15s")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server not started again within 30s: Run did not stop the iterator opened during the outage (iterators opened: %d)", cons.opens.Load())
	}

	routeAfterRestart(t, b, nc, errc, "INC32", 10*time.Second)
	if n := cons.opens.Load(); n != 2 {
		t.Errorf("iterators opened = %d, want 2 (the one opened during the outage, then its replacement)", n)
	}
}

// stuckPublisher holds its first routed publish until its context ends,
// as a publish does whose PubAck was lost with the connection; the
// others go through.
type stuckPublisher struct {
	*bus.Bus
	held    chan struct{} // closed once the first publish waits
	stuck   atomic.Bool
	waiting sync.Once
}

func (p *stuckPublisher) PublishRouted(ctx context.Context, msgID string, r *ticket.Routed) error {
	if p.stuck.CompareAndSwap(false, true) {
		p.waiting.Do(func() { close(p.held) })
		<-ctx.Done()
		return fmt.Errorf("publish routed: %w", ctx.Err())
	}
	return p.Bus.PublishRouted(ctx, msgID, r)
}

// TestRunRetriesAMessageInFlightWhenTheConnectionDrops: the connection
// drops while a routed publish waits for its PubAck. Without a hand, the
// publish would wait for the whole ack wait (30s) and the message for its
// redelivery; Run gives up the publish when the connection goes down,
// naks the message once the connection is back, and it is routed after
// the retry delay.
func TestRunRetriesAMessageInFlightWhenTheConnectionDrops(t *testing.T) {
	dir, srv, port, b, nc, cons := restartable(t)
	cfg := config.Pipeline{RetryDelay: 200 * time.Millisecond}
	pub := &stuckPublisher{Bus: b, held: make(chan struct{})}
	p := New(cons, doer, toL2Portal, pub, cfg, zaptest.NewLogger(t), nil, WithClock(func() time.Time { return fixedNow }), WithConnection(nc))
	errc := runUntilStopped(t, p)
	routedCh := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe("deskrelay.routed.>", routedCh)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := b.Ingest(t.Context(), goodTicket("INC33")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	select {
	case <-pub.held:
	case <-time.After(10 * time.Second):
		t.Fatal("routed publish not started within 10s")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	bustest.StartAt(t, dir, port)
	waitConnected(t, nc)
	back := time.Now()
	select {
	case msg := <-routedCh: // the subscription moved to the new server
		if got := msg.Header.Get("Deskrelay-Ticket-Id"); got != "INC33" {
			t.Errorf("routed ticket %q, want INC33", got)
		}
		t.Logf("routed %v after the reconnect", time.Since(back))
	case err := <-errc:
		t.Fatalf("Run = %v after the restart, want it to keep running", err)
	case <-time.After(10 * time.Second):
		t.Fatal("message in flight at the disconnect not routed within 10s of the reconnect")
	}
}

// routeAfterRestart stores ticket id once JetStream takes it again and
// waits, at most within, for its routed message while Run keeps running.
func routeAfterRestart(t *testing.T, b *bus.Bus, nc *nats.Conn, errc <-chan error, id string, within time.Duration) {
	t.Helper()
	routedCh := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe("deskrelay.routed.>", routedCh)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := ingestRetrying(t, b, id); err != nil {
		t.Fatalf("Ingest after the restart: %v", err)
	}
	select {
	case msg := <-routedCh:
		if got := msg.Header.Get("Deskrelay-Ticket-Id"); got != id {
			t.Errorf("routed ticket %q, want %s", got, id)
		}
	case err := <-errc:
		t.Fatalf("Run = %v after the restart, want it to keep running", err)
	case <-time.After(within):
		t.Fatalf("ticket stored after the restart not routed within %s", within)
	}
}

// ingestRetrying stores a ticket, retrying for a bounded time while
// JetStream recovers from the restart.
func ingestRetrying(t *testing.T, b *bus.Bus, id string) error {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := b.Ingest(t.Context(), goodTicket(id))
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-t.Context().Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fastHeartbeat makes the iterator notice a silent server after 1s
// instead of 30s.
var fastHeartbeat = []jetstream.PullMessagesOpt{jetstream.PullExpiry(2 * time.Second), jetstream.PullHeartbeat(500 * time.Millisecond)}

// TestRunSurvivesStall pauses all traffic between the processor and a
// live server (a stalled server or network: no disconnect, no heartbeat)
// for longer than the heartbeat timeout, then resumes it: Run keeps going,
// counts the missed heartbeat and routes the next ticket.
func TestRunSurvivesStall(t *testing.T) {
	srv := bustest.Start(t)
	direct, _ := connectBus(t, srv.ClientURL())
	px := newStallProxy(t, srv.Addr().String())
	b, nc := connectBus(t, "nats://"+px.addr())
	cfg := config.Pipeline{}
	cons, err := b.IngestConsumer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("IngestConsumer: %v", err)
	}
	m := NewMetrics(nil)
	p := New(cons, doer, toL2Portal, b, cfg, zaptest.NewLogger(t), m, WithClock(func() time.Time { return fixedNow }))
	p.pullOpts = fastHeartbeat
	errc := runUntilStopped(t, p)

	px.pause()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for testutil.ToFloat64(m.consumeErrors) == 0 {
		select {
		case err := <-errc:
			t.Fatalf("Run = %v during the stall, want it to keep running", err)
		case <-deadline:
			t.Fatal("no consume error counted within 15s of the stall")
		case <-tick.C:
		}
	}
	px.resume()
	if nc.Status() != nats.CONNECTED {
		t.Errorf("connection status after the stall = %s, want CONNECTED (a stall, not a disconnect)", nc.Status())
	}

	routedCh := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe("deskrelay.routed.>", routedCh)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := direct.Ingest(t.Context(), goodTicket("INC31")); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	select {
	case <-routedCh:
	case err := <-errc:
		t.Fatalf("Run = %v after the stall, want it to keep running", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ticket stored after the stall not routed within 30s")
	}
}

// stallProxy forwards TCP connections to a server; pause stops moving
// bytes in both directions (the connections stay open), resume moves them
// again.
type stallProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	paused chan struct{} // closed when not paused
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	px := &stallProxy{ln: ln, target: target, paused: make(chan struct{})}
	close(px.paused)
	px.wg.Go(px.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		px.resume()
		px.mu.Lock()
		for _, c := range px.conns {
			_ = c.Close()
		}
		px.mu.Unlock()
		px.wg.Wait()
	})
	return px
}

func (px *stallProxy) addr() string { return px.ln.Addr().String() }

func (px *stallProxy) pause() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.paused = make(chan struct{})
}

func (px *stallProxy) resume() {
	px.mu.Lock()
	defer px.mu.Unlock()
	select {
	case <-px.paused:
	default:
		close(px.paused)
	}
}

func (px *stallProxy) gate() <-chan struct{} {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.paused
}

func (px *stallProxy) accept() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", px.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, c, s)
		px.mu.Unlock()
		px.wg.Go(func() { px.copy(s, c) })
		px.wg.Go(func() { px.copy(c, s) })
	}
}

// copy moves bytes from src to dst, holding each chunk while paused.
func (px *stallProxy) copy(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-px.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, or closed by the other direction or the cleanup
			return
		}
	}
}

// TestRunReportsWhyItCannotGoOn checks the exits that are not a stop:
// Run returns a wrapped error naming the consumer and the cause.
func TestRunReportsWhyItCannotGoOn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakIt func(t *testing.T, b *bus.Bus, nc *nats.Conn)
		want    []error // any of them
	}{
		{"a closed connection", func(t *testing.T, _ *bus.Bus, nc *nats.Conn) { nc.Close() },
			[]error{nats.ErrConnectionClosed, jetstream.ErrConnectionClosed}},
		{"a deleted consumer", func(t *testing.T, b *bus.Bus, _ *nats.Conn) {
			if err := b.JetStream().DeleteConsumer(t.Context(), b.StreamName(bus.KindIngest), "deskrelay-pipeline"); err != nil {
				t.Fatalf("DeleteConsumer: %v", err)
			}
		}, []error{jetstream.ErrConsumerDeleted, jetstream.ErrConsumerNotFound}},
	} {
		t.Run(tt.name+" ends Run with an error", func(t *testing.T) {
			b, nc := connectBus(t, bustest.Start(t).ClientURL())
			cons, err := b.IngestConsumer(t.Context(), config.Pipeline{})
			if err != nil {
				t.Fatalf("IngestConsumer: %v", err)
			}
			p := New(cons, doer, toL2Portal, b, config.Pipeline{}, zaptest.NewLogger(t), nil)
			p.pullOpts = fastHeartbeat
			errc := runUntilStopped(t, p)
			tt.breakIt(t, b, nc)
			select {
			case err := <-errc:
				if !slices.ContainsFunc(tt.want, func(w error) bool { return errors.Is(err, w) }) || !strings.HasPrefix(err.Error(), "pipeline: consumer deskrelay-pipeline: ") {
					t.Errorf("Run = %v, want an error starting \"pipeline: consumer deskrelay-pipeline: \" wrapping one of %q", err, tt.want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("Run still running 15s after %s", tt.name)
			}
		})
	}
}
