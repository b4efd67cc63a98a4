package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// errConnectionLost is the cause of the cancellation of the messages in
// flight when the connection goes down.
var errConnectionLost = errors.New("the NATS connection went down while the message was in flight")

// link follows the state of the consumer's connection for Run. A nil
// *link (no connection given) takes the connection to be up, and never
// cancels anything.
//
// Iterators. An iterator asks the server for messages on its first Next,
// and asks again after a reconnect only when it saw the disconnect: the
// client library takes the connection to be up when the iterator is
// opened. One opened while the connection is reconnecting thus misses the
// reconnect, and its first request fails, since deskrelay's connection
// buffers nothing while it reconnects (bus.Connect). It would then wait
// for its missed heartbeats (twice the heartbeat: 30s by default) while
// the stream fills up. So Run opens iterators only while connected
// (settle, connected).
//
// Messages in flight. A PubAck whose connection went down never comes (in
// a cluster, the reply went to the node that was lost), and the client
// waits for it until the handler's deadline, the ack wait (30s by
// default). The handlers' contexts derive from the current epoch, which
// is cancelled with [errConnectionLost] when the connection goes down; a
// message so interrupted is nak'd once the connection is back (waitUp),
// and redelivered after the retry delay instead of the ack wait. Its
// routed message, if it was stored, has the same Nats-Msg-Id the second
// time, and JetStream drops the copy.
type link struct {
	nc     *nats.Conn
	events chan nats.Status
	work   context.Context // parent of the epochs

	epoch atomic.Pointer[epoch]

	mu      sync.Mutex
	settled chan struct{} // closed while connected, and for good once closed
}

// epoch is a context cancelled when the connection goes down.
type epoch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newEpoch(parent context.Context) *epoch {
	ctx, cancel := context.WithCancelCause(parent)
	return &epoch{ctx, cancel}
}

// startLink follows nc until stop; epochs derive from work. nil for a nil
// nc.
func startLink(work context.Context, nc *nats.Conn) *link {
	if nc == nil {
		return nil
	}
	l := &link{nc: nc, work: work, settled: make(chan struct{})}
	l.epoch.Store(newEpoch(work))
	// Listen first, then look: a change after the look is an event.
	l.events = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	if st := nc.Status(); st == nats.CONNECTED || st == nats.CLOSED {
		close(l.settled)
	}
	go l.follow()
	return l
}

// follow applies the connection's events until stop.
func (l *link) follow() {
	final := false // closed: nothing changes any more
	for st := range l.events {
		l.mu.Lock()
		settled := closed(l.settled)
		switch {
		case final:
		case st == nats.CONNECTED || st == nats.CLOSED:
			if !settled {
				close(l.settled)
			}
			final = st == nats.CLOSED
		case settled:
			l.settled = make(chan struct{})
		}
		l.mu.Unlock()
		if st != nats.CONNECTED {
			l.epoch.Swap(newEpoch(l.work)).cancel(errConnectionLost)
		}
	}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stop ends the link.
func (l *link) stop() {
	if l != nil {
		l.nc.RemoveStatusListener(l.events)
	}
}

// context returns the context of the current epoch, or fallback without
// a link.
func (l *link) context(fallback context.Context) context.Context {
	if l == nil {
		return fallback
	}
	return l.epoch.Load().ctx
}

// settle waits until the connection is up, or closed or draining (the
// iterator then says so). It returns false when ctx ended first.
func (l *link) settle(ctx context.Context) bool {
	if l == nil {
		return ctx.Err() == nil
	}
	for {
		switch l.nc.Status() {
		case nats.CONNECTED, nats.CLOSED, nats.DRAINING_SUBS, nats.DRAINING_PUBS:
			return ctx.Err() == nil
		}
		l.mu.Lock()
		settled := l.settled
		l.mu.Unlock()
		if closed(settled) { // follow has not seen the change yet
			settled = nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-settled: // then look again: it may be down once more
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitUp waits until the connection is up; false when ctx ended first or
// the connection is closed.
func (l *link) waitUp(ctx context.Context) bool {
	return l.settle(ctx) && l.connected()
}

// connected reports whether the connection is up now.
func (l *link) connected() bool {
	return l == nil || l.nc.Status() == nats.CONNECTED
}
