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
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, fn func(old []byte) ([]byte, error)) (bool, error) {
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
			return false, fmt.Errorf("read %s: %w", kv.Bucket(), err)
		default:
			old, rev = e.Value(), e.Revision()
		}
		val, err := fn(old)
		if errors.Is(err, errNoChange) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		wctx, cancel := context.WithTimeout(ctx, kvTimeout)
		if rev == 0 {
			_, err = kv.Create(wctx, key, val)
		} else {
			_, err = kv.Update(wctx, key, val, rev)
		}
		cancel()
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another writer was first: read again
		default:
			return false, fmt.Errorf("write %s: %w", kv.Bucket(), err)
		}
	}
	return false, fmt.Errorf("write %s: key changed by others %d times in a row", kv.Bucket(), casAttempts)
}
