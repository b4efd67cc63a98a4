package enrichment

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

// clock is a settable clock for cache tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestCache(t *testing.T, clk *clock, m *Metrics, opts ...CacheOption) *Cache {
	t.Helper()
	opts = append([]CacheOption{WithTTL(time.Minute), WithNegativeTTL(10 * time.Second), WithClock(clk.now), WithCacheMetrics(m)}, opts...)
	c, err := NewCache(opts...)
	if err != nil {
		t.Fatalf("NewCache = %v", err)
	}
	return c
}

func TestNewCacheRejectsBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  CacheOption
		want string
	}{
		{"a negative ttl", WithTTL(-time.Second), "profile cache ttl must be > 0, got -1s"},
		{"a zero negative ttl", WithNegativeTTL(0), "profile cache negative ttl must be > 0, got 0s"},
		{"no entries", WithMaxEntries(0), "profile cache max entries must be > 0, got 0"},
		{"no clock", WithClock(nil), "profile cache clock must not be nil"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCache(tt.opt)
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewCache = %v, want ErrInvalidOption saying %q", err, tt.want)
			}
		})
	}
}

func TestChainCache(t *testing.T) {
	caller := ticket.Caller{ID: "u-1", Email: "Some.One@Example.com"}
	t.Run("a known profile is served from the cache until its ttl ends", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		src := &fakeSource{name: "api", p: doerProfile, ok: true}
		c := NewChain(zap.NewNop(), m, time.Second, src).WithCache(newTestCache(t, clk, m))
		for i := range 3 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || withoutAt(p) != doerProfile {
				t.Fatalf("Lookup %d = %+v, %v; want %+v", i, p, err, doerProfile)
			}
		}
		if n := src.calls.Load(); n != 1 {
			t.Errorf("source asked %d times for 3 lookups, want 1", n)
		}
		clk.add(time.Minute)
		if _, err := c.Lookup(t.Context(), caller); err != nil {
			t.Fatal(err)
		}
		if n := src.calls.Load(); n != 2 {
			t.Errorf("source asked %d times after the ttl, want 2", n)
		}
		if got := testutil.ToFloat64(m.cacheHit); got != 2 {
			t.Errorf("cache hits = %v, want 2", got)
		}
		if got := testutil.ToFloat64(m.cacheExpired); got != 1 {
			t.Errorf("cache expirations = %v, want 1", got)
		}
	})
	t.Run("an unknown caller is kept for the negative ttl only", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		src := &fakeSource{name: "api"}
		c := NewChain(zap.NewNop(), m, time.Second, src).WithCache(newTestCache(t, clk, m))
		for range 2 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || p.Name != ticket.Unknown {
				t.Fatalf("Lookup = %+v, %v; want unknown", p, err)
			}
		}
		if n := src.calls.Load(); n != 1 {
			t.Errorf("source asked %d times, want 1 (negative cache)", n)
		}
		if got := testutil.ToFloat64(m.cacheNegHit); got != 1 {
			t.Errorf("negative hits = %v, want 1", got)
		}
		clk.add(10 * time.Second)
		if _, err := c.Lookup(t.Context(), caller); err != nil {
			t.Fatal(err)
		}
		if n := src.calls.Load(); n != 2 {
			t.Errorf("source asked %d times after the negative ttl, want 2", n)
		}
	})
	t.Run("answers with a failed source are not kept", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		broken := &fakeSource{name: "broken", err: errors.New("503")}
		c := NewChain(zap.NewNop(), m, time.Second, broken, &fakeSource{name: "directory"}).WithCache(newTestCache(t, clk, m))
		for range 2 {
			if _, err := c.Lookup(t.Context(), caller); err != nil {
				t.Fatal(err)
			}
		}
		if n := broken.calls.Load(); n != 2 {
			t.Errorf("broken source asked %d times, want 2: an unknown with a failure must not be cached", n)
		}
	})
	t.Run("invalidating the email or the id drops the entry", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		src := &fakeSource{name: "api", p: doerProfile, ok: true}
		cache := newTestCache(t, clk, m)
		c := NewChain(zap.NewNop(), m, time.Second, src).WithCache(cache)
		for i, inval := range []func(){
			func() { cache.InvalidateEmail("some.one@example.com") },
			func() { cache.InvalidateID("u-1") },
		} {
			if _, err := c.Lookup(t.Context(), caller); err != nil {
				t.Fatal(err)
			}
			inval()
			if n := cache.Len(); n != 0 {
				t.Errorf("invalidation %d: %d entries left, want 0", i, n)
			}
		}
		if got := testutil.ToFloat64(m.cacheInvalidated); got != 2 {
			t.Errorf("invalidated = %v, want 2", got)
		}
	})
	t.Run("a Local source is asked before the cache and its answers are not kept", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		dir := &localSource{fakeSource{name: "directory", p: doerProfile, ok: true}}
		api := &fakeSource{name: "api", p: ticket.Profile{Name: ticket.Trier}, ok: true}
		cache := newTestCache(t, clk, m)
		c := NewChain(zap.NewNop(), m, time.Second, dir, api).WithCache(cache)
		for range 3 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || withoutAt(p) != doerProfile {
				t.Fatalf("Lookup = %+v, %v; want the directory's %+v", p, err, doerProfile)
			}
		}
		if n := cache.Len(); n != 0 {
			t.Errorf("cache holds %d entries after directory hits, want 0", n)
		}
		if hits, misses := testutil.ToFloat64(m.cacheHit), testutil.ToFloat64(m.cacheMiss); hits+misses != 0 {
			t.Errorf("cache asked %v times for directory hits, want 0", hits+misses)
		}
		if n := api.calls.Load(); n != 0 {
			t.Errorf("api asked %d times, want 0", n)
		}
		if dir.deadline {
			t.Error("the Local source was given a deadline; it must run without a timeout")
		}
	})
	t.Run("a miss in a Local source falls through to the cache and the slow source", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		dir := &localSource{fakeSource{name: "directory"}}
		api := &fakeSource{name: "api", p: doerProfile, ok: true}
		cache := newTestCache(t, clk, m)
		c := NewChain(zap.NewNop(), m, time.Second, dir, api).WithCache(cache)
		for range 3 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || withoutAt(p) != doerProfile {
				t.Fatalf("Lookup = %+v, %v; want the api's %+v", p, err, doerProfile)
			}
		}
		if n := api.calls.Load(); n != 1 {
			t.Errorf("api asked %d times for 3 lookups, want 1 (cached)", n)
		}
		if n := dir.calls.Load(); n != 3 {
			t.Errorf("directory asked %d times, want 3 (before the cache)", n)
		}
		if got := testutil.ToFloat64(m.cacheHit); got != 2 {
			t.Errorf("cache hits = %v, want 2", got)
		}
	})
	t.Run("a Local answer after a slow source's miss is kept", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		api := &fakeSource{name: "api"}
		dir := &localSource{fakeSource{name: "directory", p: doerProfile, ok: true}}
		cache := newTestCache(t, clk, m)
		c := NewChain(zap.NewNop(), m, time.Second, api, dir).WithCache(cache)
		for range 3 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || withoutAt(p) != doerProfile {
				t.Fatalf("Lookup = %+v, %v; want the directory's %+v", p, err, doerProfile)
			}
		}
		if n := api.calls.Load(); n != 1 {
			t.Errorf("api asked %d times for 3 lookups, want 1 (the answer cached)", n)
		}
	})
	t.Run("an unknown caller is not kept when only Local sources were asked", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		dir := &localSource{fakeSource{name: "directory"}}
		cache := newTestCache(t, clk, m)
		c := NewChain(zap.NewNop(), m, time.Second, dir).WithCache(cache)
		for range 2 {
			if p, err := c.Lookup(t.Context(), caller); err != nil || p.Name != ticket.Unknown {
				t.Fatalf("Lookup = %+v, %v; want unknown", p, err)
			}
		}
		if n := cache.Len(); n != 0 {
			t.Errorf("cache holds %d entries, want 0", n)
		}
		if n := dir.calls.Load(); n != 2 {
			t.Errorf("directory asked %d times, want 2", n)
		}
	})
	t.Run("an answer that started before an invalidation is not kept", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		cache := newTestCache(t, clk, m)
		gen := cache.generation()
		cache.InvalidateEmail("other@example.com") // the bucket changed meanwhile
		cache.put(caller, doerProfile, clk.now(), gen)
		if n := cache.Len(); n != 0 {
			t.Errorf("cache holds %d entries, want 0: the answer may predate the change", n)
		}
	})
	t.Run("the least recently used caller goes first", func(t *testing.T) {
		clk, m := newClock(), NewMetrics(nil)
		cache := newTestCache(t, clk, m, WithMaxEntries(2))
		a, b, d := ticket.Caller{ID: "a"}, ticket.Caller{ID: "b"}, ticket.Caller{ID: "d"}
		for _, k := range []ticket.Caller{a, b} {
			cache.put(k, doerProfile, clk.now(), cache.generation())
		}
		cache.get(a) // b is now the oldest
		cache.put(d, doerProfile, clk.now(), cache.generation())
		for _, tt := range []struct {
			c    ticket.Caller
			want bool
		}{{a, true}, {b, false}, {d, true}} {
			if _, _, ok := cache.get(tt.c); ok != tt.want {
				t.Errorf("get(%s) found = %v, want %v", tt.c.ID, ok, tt.want)
			}
		}
		if got := testutil.ToFloat64(m.cacheEvicted); got != 1 {
			t.Errorf("evicted = %v, want 1", got)
		}
		if got := testutil.ToFloat64(m.cacheEntries); got != 2 {
			t.Errorf("entries gauge = %v, want 2", got)
		}
	})
}

// BenchmarkChainLookupCacheHit measures a lookup answered by the cache.
func BenchmarkChainLookupCacheHit(b *testing.B) {
	cache, err := NewCache()
	if err != nil {
		b.Fatal(err)
	}
	src := &fakeSource{name: "api", p: doerProfile, ok: true}
	c := NewChain(zap.NewNop(), nil, time.Second, src).WithCache(cache)
	caller := ticket.Caller{ID: "u-1", Email: "Some.One@Example.com"}
	if _, err := c.Lookup(b.Context(), caller); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Lookup(ctx, caller); err != nil {
			b.Fatal(err)
		}
	}
	if n := src.calls.Load(); n != 1 {
		b.Fatalf("source asked %d times, want 1", n)
	}
}

// BenchmarkChainLookupMiss measures lookups that the cache cannot answer,
// over more callers than it holds: a Local source's hit (the directory's
// case, which skips the cache) and a slow source's answer (a cache miss,
// the source, a put and an eviction).
func BenchmarkChainLookupMiss(b *testing.B) {
	callers := make([]ticket.Caller, 50000)
	for i := range callers {
		callers[i] = ticket.Caller{ID: fmt.Sprintf("u%d", i), Email: fmt.Sprintf("caller%d@example.com", i)}
	}
	for _, bc := range []struct {
		name string
		src  Source
	}{
		{"source=local", &localSource{fakeSource{name: "directory", p: doerProfile, ok: true}}},
		{"source=slow", &fakeSource{name: "api", p: doerProfile, ok: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cache, err := NewCache(WithMaxEntries(10000))
			if err != nil {
				b.Fatal(err)
			}
			c := NewChain(zap.NewNop(), nil, time.Second, bc.src).WithCache(cache)
			ctx := b.Context()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.Lookup(ctx, callers[i%len(callers)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
