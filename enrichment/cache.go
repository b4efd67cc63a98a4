package enrichment

import (
	"container/list"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deskrelay/deskrelay/ticket"
)

// ErrInvalidOption wraps the error of an option given a bad value.
var ErrInvalidOption = errors.New("invalid enrichment option")

// Cache keeps the profiles a [Chain] found, so that a caller's next ticket
// does not ask slow sources again: a known profile for the TTL, "nobody
// knows this caller" for the (shorter) negative TTL, at most MaxEntries
// callers (least recently used go first). [Cache.Invalidate] drops what is
// cached for an email or an id, which the [Directory] does for every change
// of the bucket, so that a put, an import or a survey is seen at once.
//
// A Cache is safe for concurrent use. Build it with [NewCache].
type Cache struct {
	ttl, negTTL time.Duration
	max         int
	now         func() time.Time
	m           *Metrics

	mu      sync.Mutex
	gen     uint64 // incremented by every invalidation
	ll      *list.List
	items   map[cacheKey]*list.Element
	byEmail map[string][]cacheKey // lower-case email → keys
	byID    map[string][]cacheKey
}

// cacheKey is the caller as given; a struct of strings is a map key that
// needs no allocation.
type cacheKey struct{ id, email string }

type cacheEntry struct {
	key     cacheKey
	p       ticket.Profile
	at      time.Time // when the sources answered
	expires time.Time
}

// CacheOption configures [NewCache].
type CacheOption func(*Cache) error

// WithTTL sets how long a known profile is kept (default 5m).
func WithTTL(d time.Duration) CacheOption {
	return func(c *Cache) error {
		if d <= 0 {
			return fmt.Errorf("%w: profile cache ttl must be > 0, got %s", ErrInvalidOption, d)
		}
		c.ttl = d
		return nil
	}
}

// WithNegativeTTL sets how long an unknown caller is kept (default 30s).
func WithNegativeTTL(d time.Duration) CacheOption {
	return func(c *Cache) error {
		if d <= 0 {
			return fmt.Errorf("%w: profile cache negative ttl must be > 0, got %s", ErrInvalidOption, d)
		}
		c.negTTL = d
		return nil
	}
}

// WithMaxEntries bounds the number of cached callers (default 10000).
func WithMaxEntries(n int) CacheOption {
	return func(c *Cache) error {
		if n <= 0 {
			return fmt.Errorf("%w: profile cache max entries must be > 0, got %d", ErrInvalidOption, n)
		}
		c.max = n
		return nil
	}
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) CacheOption {
	return func(c *Cache) error {
		if now == nil {
			return fmt.Errorf("%w: profile cache clock must not be nil", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithCacheMetrics counts hits, misses and evictions into m.
func WithCacheMetrics(m *Metrics) CacheOption {
	return func(c *Cache) error {
		if m == nil {
			return fmt.Errorf("%w: profile cache metrics must not be nil", ErrInvalidOption)
		}
		c.m = m
		return nil
	}
}

// NewCache returns an empty cache. Bad options give an error wrapping
// [ErrInvalidOption].
func NewCache(opts ...CacheOption) (*Cache, error) {
	c := &Cache{
		ttl: 5 * time.Minute, negTTL: 30 * time.Second, max: 10000, now: time.Now,
		ll: list.New(), items: map[cacheKey]*list.Element{},
		byEmail: map[string][]cacheKey{}, byID: map[string][]cacheKey{},
	}
	var errs []error
	for _, o := range opts {
		if err := o(c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.m == nil {
		c.m = NewMetrics(nil)
	}
	return c, nil
}

// get returns the cached profile of the caller and when the sources gave
// it. It does not allocate.
func (c *Cache) get(caller ticket.Caller) (ticket.Profile, time.Time, bool) {
	k := cacheKey{caller.ID, caller.Email}
	now := c.now()
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		c.m.cacheMiss.Inc()
		return ticket.Profile{}, time.Time{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		c.mu.Unlock()
		c.m.cacheExpired.Inc()
		c.m.cacheMiss.Inc()
		return ticket.Profile{}, time.Time{}, false
	}
	c.ll.MoveToFront(el)
	p, at := e.p, e.at
	c.mu.Unlock()
	if p.Name == ticket.Unknown {
		c.m.cacheNegHit.Inc()
	} else {
		c.m.cacheHit.Inc()
	}
	return p, at, true
}

// generation returns the invalidation counter; pass it to put.
func (c *Cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores the profile the sources gave at time at, unless something was
// invalidated since gen was read: the answer may predate that change.
func (c *Cache) put(caller ticket.Caller, p ticket.Profile, at time.Time, gen uint64) {
	ttl := c.ttl
	if p.Name == ticket.Unknown {
		ttl = c.negTTL
	}
	k := cacheKey{caller.ID, caller.Email}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if el, ok := c.items[k]; ok {
		c.remove(el)
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, p: p, at: at, expires: c.now().Add(ttl)})
	if k.email != "" {
		le := strings.ToLower(k.email)
		c.byEmail[le] = append(c.byEmail[le], k)
	}
	if k.id != "" {
		c.byID[k.id] = append(c.byID[k.id], k)
	}
	for c.ll.Len() > c.max {
		c.remove(c.ll.Back())
		c.m.cacheEvicted.Inc()
	}
	c.m.cacheEntries.Set(float64(c.ll.Len()))
}

// remove drops one entry and its index references. The caller holds c.mu.
func (c *Cache) remove(el *list.Element) {
	e := c.ll.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	if e.key.email != "" {
		le := strings.ToLower(e.key.email)
		if ks := deleteKey(c.byEmail[le], e.key); len(ks) == 0 {
			delete(c.byEmail, le)
		} else {
			c.byEmail[le] = ks
		}
	}
	if e.key.id != "" {
		if ks := deleteKey(c.byID[e.key.id], e.key); len(ks) == 0 {
			delete(c.byID, e.key.id)
		} else {
			c.byID[e.key.id] = ks
		}
	}
	c.m.cacheEntries.Set(float64(c.ll.Len()))
}

func deleteKey(ks []cacheKey, k cacheKey) []cacheKey {
	for i := range ks {
		if ks[i] == k {
			return append(ks[:i], ks[i+1:]...)
		}
	}
	return ks
}

// InvalidateEmail drops every cached caller with this email (any case).
func (c *Cache) InvalidateEmail(email string) { c.invalidate(&c.byEmail, strings.ToLower(email)) }

// InvalidateID drops every cached caller with this id.
func (c *Cache) InvalidateID(id string) { c.invalidate(&c.byID, id) }

func (c *Cache) invalidate(index *map[string][]cacheKey, k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, key := range append([]cacheKey(nil), (*index)[k]...) {
		if el, ok := c.items[key]; ok {
			c.remove(el)
			c.m.cacheInvalidated.Inc()
		}
	}
}

// Len returns the number of cached callers, expired ones included until
// they are asked for or pushed out.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
