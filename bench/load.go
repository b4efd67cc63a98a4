package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/ticket"
)

// Histograms hold microseconds from 1µs to 2 minutes with 3 significant
// digits (0.1% resolution).
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 120_000_000, 3) }

func micros(d time.Duration) int64 { return max(1, min(d.Microseconds(), 120_000_000)) }

// phase is one measured stretch of load: the tickets with sequence numbers
// in [first, limit), their send times, and what came back.
type phase struct {
	first, limit int64
	sent         []atomic.Int64 // intended send time (unix ns) by seq-first; 0: not sent
	got          []atomic.Bool

	next     atomic.Int64 // next seq to send
	accepted atomic.Int64
	received atomic.Int64
	dropped  atomic.Int64 // open loop: no free worker, not sent
	lastRecv atomic.Int64 // unix ns
	bytes    atomic.Int64 // bodies of the messages received, each counted once

	mu      sync.Mutex
	ingress *hdrhistogram.Histogram
	e2e     *hdrhistogram.Histogram
	// lag: open loop, from a request's due time until the dispatcher
	// handed it to the workers: how late the harness's own timer loop
	// ran, on a machine it shares with the server. It is part of both
	// latencies (they count from the due time), and when it is long the
	// whole machine stalled, not the server alone. Time a request then
	// waits for a free worker is not in it: workers are busy because
	// answers are slow.
	lag   *hdrhistogram.Histogram
	codes map[string]int64 // "202", "503", "transport" …
}

func newPhase(first, n int64) *phase {
	p := &phase{first: first, limit: first + n, sent: make([]atomic.Int64, n), got: make([]atomic.Bool, n),
		ingress: newHist(), e2e: newHist(), lag: newHist(), codes: map[string]int64{}}
	p.next.Store(first)
	return p
}

// take returns the next sequence number, or false when the phase has
// used all of its.
func (p *phase) take() (int64, bool) {
	seq := p.next.Add(1) - 1
	return seq, seq < p.limit
}

func (p *phase) markSent(seq int64, at time.Time) { p.sent[seq-p.first].Store(at.UnixNano()) }

// done records a request's outcome; h is the caller's own histogram.
func (p *phase) done(h *hdrhistogram.Histogram, code int, err error, lat time.Duration) {
	_ = h.RecordValue(micros(lat))
	if code == http.StatusAccepted {
		p.accepted.Add(1)
	}
	key := strconv.Itoa(code)
	if err != nil {
		key = "transport"
	}
	p.mu.Lock()
	p.codes[key]++
	p.mu.Unlock()
}

// merge adds a sender's or the dispatcher's histogram h into dst
// (p.ingress or p.lag) under the phase's lock.
func (p *phase) merge(dst, h *hdrhistogram.Histogram) {
	p.mu.Lock()
	dst.Merge(h)
	p.mu.Unlock()
}

// receive records the arrival of ticket seq, a message body of size
// bytes, at the consumer.
func (p *phase) receive(seq int64, size int, at time.Time) {
	if seq < p.first || seq >= p.limit {
		return
	}
	i := seq - p.first
	sent := p.sent[i].Load()
	if sent == 0 || p.got[i].Swap(true) {
		return
	}
	// Under the lock, so that measure reads the count, the bytes and the
	// latencies of the same messages.
	p.mu.Lock()
	_ = p.e2e.RecordValue(micros(at.Sub(time.Unix(0, sent))))
	p.received.Add(1)
	p.bytes.Add(int64(size))
	p.mu.Unlock()
	p.lastRecv.Store(at.UnixNano())
}

// loader posts tickets to one server.
type loader struct {
	client  *http.Client
	url     string
	token   string
	source  string
	run     string
	callers int                   // size of the profile directory
	epoch   time.Time             // opened_at of every ticket; updated_at counts from it
	cur     atomic.Pointer[phase] // what the consumer records into
}

func newLoader(url, token, source, run string, callers, conns int, epoch time.Time) *loader {
	return &loader{
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
		},
		url: url, token: token, source: source, run: run, callers: callers, epoch: epoch,
	}
}

func (l *loader) payload() *payload {
	return &payload{source: l.source, run: l.run, callers: l.callers, now: l.epoch}
}

// post sends one body and reads the whole answer, so that the connection
// is kept alive.
func (l *loader) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// closedLoop runs senders that each post their next ticket as soon as the
// previous one was answered, for d or until the phase has no numbers left.
func (l *loader) closedLoop(ctx context.Context, p *phase, senders int, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			h, pl := newHist(), l.payload()
			defer p.merge(p.ingress, h)
			for ctx.Err() == nil {
				seq, ok := p.take()
				if !ok {
					return
				}
				body := pl.body(seq)
				start := time.Now()
				p.markSent(seq, start)
				code, err := l.post(ctx, body)
				if err != nil && ctx.Err() != nil {
					// Cut by the end of the phase: not counted, and not
					// expected at the consumer should it have been stored.
					p.sent[seq-p.first].Store(0)
					return
				}
				p.done(h, code, err, time.Since(start))
			}
		})
	}
	wg.Wait()
}

// openLoop posts at a fixed rate for d, whatever the answers: request i is
// due at start + i/rate, and its latencies count from that moment, so a
// slow server is charged for the requests it delayed (no coordinated
// omission). At most workers requests are in flight; a request due while
// all are busy and the queue is full is counted as dropped.
func (l *loader) openLoop(ctx context.Context, p *phase, rate float64, workers int, d time.Duration) {
	type job struct {
		seq int64
		due time.Time
	}
	jobs := make(chan job, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			h, pl := newHist(), l.payload()
			defer p.merge(p.ingress, h)
			for j := range jobs {
				body := pl.body(j.seq)
				code, err := l.post(ctx, body)
				if err != nil && ctx.Err() != nil {
					p.sent[j.seq-p.first].Store(0)
					continue
				}
				p.done(h, code, err, time.Since(j.due))
			}
		})
	}
	lag := newHist()
	defer p.merge(p.lag, lag)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	n := int64(d / interval)
	for i := int64(0); i < n && ctx.Err() == nil; {
		now := time.Now()
		for ; i < n; i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) {
				break
			}
			seq, ok := p.take()
			if !ok {
				i = n
				break
			}
			p.markSent(seq, due)
			select {
			case jobs <- job{seq, due}:
				_ = lag.RecordValue(micros(now.Sub(due)))
			default:
				p.sent[seq-p.first].Store(0)
				p.dropped.Add(1)
			}
		}
		if i < n {
			wait := time.Until(start.Add(time.Duration(i) * interval))
			select {
			case <-ctx.Done():
			case <-time.After(max(wait, 0)):
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// consume receives every message stored on stream from now on through an
// ordered JetStream consumer and hands its ticket id to the current phase.
// The returned stop ends it.
func (l *loader) consume(ctx context.Context, natsURL, stream string) (stop func(), err error) {
	nc, err := nats.Connect(natsURL, nats.Name("deskrelay-bench"))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(cctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer on %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		if p := l.cur.Load(); p != nil {
			p.receive(parseSeq(l.run, m.Headers().Get(ticket.HeaderTicketID)), len(m.Data()), now)
		}
	}, jetstream.PullMaxMessages(4096), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			fmt.Fprintf(os.Stderr, "bench: consumer on %s: %v\n", stream, err)
		}
	}))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return func() { cc.Stop(); nc.Close() }, nil
}

// drain waits, at most timeout, until every accepted ticket of p has
// arrived at the consumer, and returns how many are missing.
func drain(ctx context.Context, p *phase, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for {
		missing := p.accepted.Load() - p.received.Load()
		if missing <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return max(missing, 0)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
