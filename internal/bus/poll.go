package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deskrelay/deskrelay/ticket"
)

// Cursors stores pollers' cursors in the cursors KV bucket, one key per
// source. It satisfies connectors.Cursors.
type Cursors struct{ kv jetstream.KeyValue }

// Cursors returns the poll cursor store; Provision must have run.
func (b *Bus) Cursors(ctx context.Context) (*Cursors, error) {
	kv, err := b.js.KeyValue(ctx, b.cursors)
	if err != nil {
		return nil, fmt.Errorf("bus: kv bucket %s: %w", b.cursors, err)
	}
	return &Cursors{kv: kv}, nil
}

// Load returns the stored cursor of source, or nil when there is none.
func (c *Cursors) Load(ctx context.Context, source string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	e, err := c.kv.Get(ctx, source)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bus: load cursor of %s: %w", source, err)
	}
	return e.Value(), nil
}

// Store replaces the cursor of source; it returns after the server stored it.
func (c *Cursors) Store(ctx context.Context, source string, cursor []byte) error {
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	if _, err := c.kv.Put(ctx, source, cursor); err != nil {
		return fmt.Errorf("bus: store cursor of %s: %w", source, err)
	}
	return nil
}

// Leases keeps poll leases in the leases KV bucket, one key per source,
// updated with compare-and-set on the key's revision so that two replicas
// never both hold one. It satisfies connectors.Lease. A lease that was not
// renewed within its TTL may be taken by another replica; replicas' clocks
// must agree to well within the TTL.
type Leases struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

type leaseValue struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Leases returns the lease store; Provision must have run.
func (b *Bus) Leases(ctx context.Context) (*Leases, error) {
	kv, err := b.js.KeyValue(ctx, b.leases)
	if err != nil {
		return nil, fmt.Errorf("bus: kv bucket %s: %w", b.leases, err)
	}
	return &Leases{kv: kv, now: b.now}, nil
}

// Acquire takes or renews the lease of source for holder. It returns false
// while another holder's lease is unexpired, or when another replica won a
// race for it.
func (l *Leases) Acquire(ctx context.Context, source, holder string, ttl time.Duration) (bool, error) {
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	val, _ := json.Marshal(leaseValue{Holder: holder, Expires: l.now().Add(ttl).UTC()})
	e, err := l.kv.Get(ctx, source)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if _, err := l.kv.Create(ctx, source, val); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return false, nil // another replica was faster
			}
			return false, fmt.Errorf("bus: create lease of %s: %w", source, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("bus: read lease of %s: %w", source, err)
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder != holder && l.now().Before(cur.Expires) {
		return false, nil
	}
	if _, err := l.kv.Update(ctx, source, val, e.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil // changed under us: someone else renewed or took it
		}
		return false, fmt.Errorf("bus: renew lease of %s: %w", source, err)
	}
	return true, nil
}

// Release gives the lease of source up if holder holds it.
func (l *Leases) Release(ctx context.Context, source, holder string) error {
	ctx, cancel := withTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	e, err := l.kv.Get(ctx, source)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bus: read lease of %s: %w", source, err)
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) != nil || cur.Holder != holder {
		return nil
	}
	if err := l.kv.Delete(ctx, source, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("bus: release lease of %s: %w", source, err)
	}
	return nil
}

// Holder returns who holds the lease of source now, "" if nobody.
func (l *Leases) Holder(ctx context.Context, source string) (string, error) {
	e, err := l.kv.Get(ctx, source)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) != nil || !l.now().Before(cur.Expires) {
		return "", nil
	}
	return cur.Holder, nil
}

// DeadLetter publishes d on <prefix>.dlq.<reason>, de-duplicated by
// source, reason and the payload's hash, so that a record seen again by an
// overlapping poll is dead-lettered once. It satisfies
// connectors.DeadLetters.
func (b *Bus) DeadLetter(ctx context.Context, d *ticket.DeadLetter) error {
	sum := sha256.New()
	sum.Write(d.Payload)
	sum.Write(d.PayloadBase64)
	id := "dlq:" + d.Source + ":" + d.Reason + ":" + d.TicketID + ":" + hex.EncodeToString(sum.Sum(nil)[:12])
	return b.PublishDLQ(ctx, id, d)
}
