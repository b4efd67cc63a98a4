package pipeline

import (
	"context"

	"github.com/nats-io/nats.go"
)

// connWatch follows the state of the consumer's connection, so that a
// message iterator is opened while it is up.
//
// An iterator asks the server for messages on its first Next, and asks
// again after a reconnect only when it saw the disconnect: the client
// library takes the connection to be up when the iterator is opened. One
// opened while the connection is reconnecting thus misses the reconnect,
// and its first request fails, since deskrelay's connection buffers
// nothing while it reconnects (bus.Connect). It would then wait for its
// missed heartbeats (twice the heartbeat: 30s by default) while the
// stream fills up.
//
// A nil *connWatch (no connection given) takes the connection to be up.
type connWatch struct {
	nc     *nats.Conn
	events chan nats.Status
}

// watchConn starts watching nc; nil for a nil nc. Close it when done.
func watchConn(nc *nats.Conn) *connWatch {
	if nc == nil {
		return nil
	}
	return &connWatch{nc: nc, events: nc.StatusChanged(nats.CONNECTED, nats.CLOSED)}
}

// close stops the watch.
func (w *connWatch) close() {
	if w != nil {
		w.nc.RemoveStatusListener(w.events)
	}
}

// settle waits until the connection is up, or closed (the iterator then
// says so). It returns false when ctx ended first.
func (w *connWatch) settle(ctx context.Context) bool {
	if w == nil {
		return ctx.Err() == nil
	}
	for {
		// The library sends an event before the state it announces is
		// visible, so an event sent after this read is not missed.
		switch w.nc.Status() {
		case nats.CONNECTED, nats.CLOSED:
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-w.events: // a stale event only costs a second look
		}
	}
}

// connected reports whether the connection is up now.
func (w *connWatch) connected() bool {
	return w == nil || w.nc.Status() == nats.CONNECTED
}
