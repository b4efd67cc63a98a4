package enrichment

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// casAttempts bounds how often casUpdate retries a key that another writer
// changed between its read and its write.
const casAttempts = 10

// errNoChange, returned by an update function, leaves the key as it is.
var errNoChange = errors.New("no change")

// casUpdate reads key, calls fn with its value (nil when it has none) and
// writes what fn returns, only if nobody wrote the key in between;
// otherwise it reads again. fn returning errNoChange writes nothing and
// makes casUpdate return (false, nil). Each KV call is bounded by kvTimeout.
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, fn func(old []byte) ([]byte, error)) (uint64, error) {
	for range casAttempts {
		var (
			old []byte
			rev uint64
		)
		gctx, cancel := context.WithTimeout(ctx, kvTimeout)
		e, err := kv.Get(gctx, key)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound): // none yet, or deleted
		case err != nil:
			return 0, fmt.Errorf("read %s: %w", kv.Bucket(), err)
		default:
			old, rev = e.Value(), e.Revision()
		}
		val, err := fn(old)
		if errors.Is(err, errNoChange) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		wctx, cancel := context.WithTimeout(ctx, kvTimeout)
		var wrote uint64
		if rev == 0 {
			wrote, err = kv.Create(wctx, key, val)
		} else {
			wrote, err = kv.Update(wctx, key, val, rev)
		}
		cancel()
		switch {
		case err == nil:
			return wrote, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another writer was first: read again
		default:
			return 0, fmt.Errorf("write %s: %w", kv.Bucket(), err)
		}
	}
	return 0, fmt.Errorf("write %s: key changed by others %d times in a row", kv.Bucket(), casAttempts)
}
