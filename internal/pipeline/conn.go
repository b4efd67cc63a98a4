package pipeline

import (
	"context"
	"errors"
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
	events chan nats.Status // the connection going down
	work   context.Context  // parent of the epochs

	epoch atomic.Pointer[epoch]
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
	l := &link{nc: nc, work: work}
	l.epoch.Store(newEpoch(work))
	l.events = nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	go func() {
		for range l.events { // until stop
			l.epoch.Swap(newEpoch(l.work)).cancel(errConnectionLost)
		}
	}()
	return l
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

// settlePoll is how often settle looks at the connection's state.
const settlePoll = 10 * time.Millisecond

// settle waits until the connection is up, or closed or draining (the
// iterator then says so). It returns false when ctx ended first. It looks
// at the state every settlePoll: it waits only while the connection is
// down, where 10ms do not matter.
func (l *link) settle(ctx context.Context) bool {
	if l == nil {
		return ctx.Err() == nil
	}
	var tick *time.Ticker
	for {
		switch l.nc.Status() {
		case nats.CONNECTED, nats.CLOSED, nats.DRAINING_SUBS, nats.DRAINING_PUBS:
			return ctx.Err() == nil
		}
		if tick == nil {
			tick = time.NewTicker(settlePoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
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
