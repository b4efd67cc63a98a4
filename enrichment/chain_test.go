package enrichment

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deskrelay/deskrelay/ticket"
)

// fakeSource answers every lookup the same way; a hanging one blocks until
// its context is done.
type fakeSource struct {
	name  string
	p     ticket.Profile
	ok    bool
	err   error
	hang  bool
	calls atomic.Int32

	deadline bool // localSource: a lookup had a deadline
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Lookup(ctx context.Context, _ ticket.Caller) (ticket.Profile, bool, error) {
	f.calls.Add(1)
	if f.hang {
		<-ctx.Done()
		return ticket.Profile{}, false, ctx.Err()
	}
	return f.p, f.ok, f.err
}

// localSource is a fakeSource that says it is Local and records whether
// it was given a deadline.
type localSource struct {
	fakeSource
}

func (l *localSource) Local() bool { return true }

func (l *localSource) Lookup(ctx context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	if _, ok := ctx.Deadline(); ok {
		l.deadline = true
	}
	return l.fakeSource.Lookup(ctx, c)
}

var (
	doerProfile = ticket.Profile{Name: ticket.Doer, Source: "fake", Confidence: 1}
	bothKeys    = ticket.Caller{ID: "u-1", Email: "someone@example.com", Name: "Some One"}
)

func TestChainLookup(t *testing.T) {
	for _, tt := range []struct {
		name       string
		sources    func() []Source
		caller     ticket.Caller
		want       ticket.Profile
		wantCounts map[string]float64 // "source/result" → count
	}{
		{"the first source that knows the caller wins",
			func() []Source {
				return []Source{&fakeSource{name: "a", p: doerProfile, ok: true}, &fakeSource{name: "b", p: ticket.Profile{Name: ticket.Trier}, ok: true}}
			},
			bothKeys, doerProfile,
			map[string]float64{"a/hit": 1, "b/hit": 0}},
		{"a miss falls through to the next source",
			func() []Source {
				return []Source{&fakeSource{name: "a"}, &fakeSource{name: "b", p: doerProfile, ok: true}}
			},
			bothKeys, doerProfile,
			map[string]float64{"a/miss": 1, "b/hit": 1}},
		{"a failing and a hanging source fall through to the next",
			func() []Source {
				return []Source{
					&fakeSource{name: "broken", err: errors.New("lookup api: 500")},
					&fakeSource{name: "slow", hang: true},
					&fakeSource{name: "directory", p: doerProfile, ok: true},
				}
			},
			bothKeys, doerProfile,
			map[string]float64{"broken/error": 1, "slow/timeout": 1, "directory/hit": 1}},
		{"a hit without a source is labelled with the source's name",
			func() []Source {
				return []Source{&fakeSource{name: "survey", p: ticket.Profile{Name: ticket.Trier}, ok: true}}
			},
			bothKeys, ticket.Profile{Name: ticket.Trier, Source: "survey"},
			map[string]float64{"survey/hit": 1}},
		{"nobody knows the caller: unknown, saying which keys were tried",
			func() []Source { return []Source{&fakeSource{name: "a"}} },
			bothKeys, ticket.Profile{Name: ticket.Unknown, Source: SourceNone, Reason: "caller email and id not in any profile source"},
			map[string]float64{"a/miss": 1}},
		{"only an email was tried",
			func() []Source { return []Source{&fakeSource{name: "a"}} },
			ticket.Caller{Email: "someone@example.com"},
			ticket.Profile{Name: ticket.Unknown, Source: SourceNone, Reason: "caller email not in any profile source"},
			map[string]float64{"a/miss": 1}},
		{"only an id was tried, and the sources that did not answer are named",
			func() []Source {
				return []Source{&fakeSource{name: "a", err: errors.New("down")}, &fakeSource{name: "b", hang: true}, &fakeSource{name: "c"}}
			},
			ticket.Caller{ID: "u-1"},
			ticket.Profile{Name: ticket.Unknown, Source: SourceNone,
				Reason: "caller id not in any profile source; no answer from a (error), b (timeout)"},
			map[string]float64{"a/error": 1, "b/timeout": 1, "c/miss": 1}},
		{"a ticket without caller keys asks no source",
			func() []Source { return []Source{&fakeSource{name: "a", p: doerProfile, ok: true}} },
			ticket.Caller{Name: "Some One"},
			ticket.Profile{Name: ticket.Unknown, Source: SourceNone, Reason: "no caller id or email on the ticket"},
			map[string]float64{"a/hit": 0, "a/miss": 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			core, logs := observer.New(zapcore.WarnLevel)
			const timeout = 50 * time.Millisecond
			c := NewChain(zap.New(core), m, timeout, tt.sources()...)
			done := make(chan struct{})
			var (
				got ticket.Profile
				err error
			)
			go func() {
				defer close(done)
				got, err = c.Lookup(t.Context(), tt.caller)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second): // a hang would be forever: the timeout must cut it
				t.Fatalf("Lookup still running after 10s with a %s per-source timeout", timeout)
			}
			if err != nil {
				t.Fatalf("Lookup = %v", err)
			}
			if got.Name != ticket.Unknown && got.At.IsZero() {
				t.Errorf("Lookup = %+v: a hit has no At", got)
			}
			if withoutAt(got) != tt.want {
				t.Errorf("Lookup = %+v, want %+v", got, tt.want)
			}
			for k, want := range tt.wantCounts {
				source, result, _ := strings.Cut(k, "/")
				if n := testutil.ToFloat64(m.lookups.WithLabelValues(source, result)); n != want {
					t.Errorf("lookups{source=%q,result=%q} = %v, want %v", source, result, n, want)
				}
			}
			for _, e := range logs.All() {
				for _, f := range e.Context {
					if strings.Contains(f.String, "example.com") || strings.Contains(f.String, "u-1") {
						t.Errorf("log %q field %s = %q holds caller data", e.Message, f.Key, f.String)
					}
				}
			}
		})
	}
}

func TestChainLogsFailures(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c := NewChain(zap.New(core), nil, time.Second,
		&fakeSource{name: "broken", err: errors.New("lookup api: 500")}, &fakeSource{name: "directory"})
	if _, err := c.Lookup(t.Context(), bothKeys); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterMessage("profile source failed, trying the next").All()
	if len(got) != 1 {
		t.Fatalf("warn logs = %v, want one for the broken source", logs.All())
	}
	fields := got[0].ContextMap()
	if fields["profile_source"] != "broken" || fields["result"] != ResultError || fields["error"] != "lookup api: 500" {
		t.Errorf("warn fields = %v, want profile_source=broken result=error error=lookup api: 500", fields)
	}
}

func TestChainStopsWhenContextIsDone(t *testing.T) {
	t.Run("a context already done is an error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		src := &fakeSource{name: "a", p: doerProfile, ok: true}
		c := NewChain(zap.NewNop(), nil, time.Second, src)
		if _, err := c.Lookup(ctx, bothKeys); !errors.Is(err, context.Canceled) {
			t.Errorf("Lookup(cancelled ctx) error = %v, want context.Canceled", err)
		}
		if n := src.calls.Load(); n != 0 {
			t.Errorf("source called %d times after cancel, want 0", n)
		}
	})
	t.Run("a context that ends during a lookup is an error, not a timeout", func(t *testing.T) {
		m := NewMetrics(nil)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		next := &fakeSource{name: "next", p: doerProfile, ok: true}
		c := NewChain(zap.NewNop(), m, time.Hour, &fakeSource{name: "slow", hang: true}, next)
		if _, err := c.Lookup(ctx, bothKeys); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Lookup error = %v, want context.DeadlineExceeded", err)
		}
		if n := next.calls.Load(); n != 0 {
			t.Errorf("next source called %d times after the context ended, want 0", n)
		}
		if n := testutil.ToFloat64(m.lookups.WithLabelValues("slow", ResultTimeout)); n != 0 {
			t.Errorf("lookups{slow,timeout} = %v, want 0: the caller gave up", n)
		}
	})
}

func TestChainWithoutAnyAnswerIsAnError(t *testing.T) {
	c := NewChain(zap.NewNop(), nil, 50*time.Millisecond,
		&fakeSource{name: "a", err: errors.New("down")}, &fakeSource{name: "b", hang: true})
	p, err := c.Lookup(t.Context(), ticket.Caller{Email: "x@example.com"})
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Lookup = %+v, %v; want ErrNoAnswer so that the ticket is retried, not served as unknown", p, err)
	}
	if !strings.Contains(err.Error(), "a (error), b (timeout)") {
		t.Errorf("error %q does not name the failed sources", err)
	}
}

func TestChainNeverCachesAnInference(t *testing.T) {
	dir := &fakeSource{name: "directory"}
	inferred := &fakeSource{name: SourceInferred, ok: true, p: ticket.Profile{Name: ticket.Trier, Source: SourceInferred, Confidence: 0.7}}
	cache, err := NewCache(WithTTL(time.Minute), WithNegativeTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(zap.NewNop(), nil, time.Second, dir, inferred).WithCache(cache)
	for i := range 3 {
		p, err := c.Lookup(t.Context(), bothKeys)
		if err != nil || p.Name != ticket.Trier || p.Source != SourceInferred {
			t.Fatalf("lookup %d = %+v, %v; want the inference", i+1, p, err)
		}
	}
	if n := dir.calls.Load(); n != 1 {
		t.Errorf("directory asked %d times, want once (its miss is cached)", n)
	}
	if n := inferred.calls.Load(); n != 3 {
		t.Errorf("inference ran %d times, want 3: it depends on the ticket, so it is never cached", n)
	}

	p, err := c.Lookup(t.Context(), ticket.Caller{Name: "No Keys"})
	if err != nil || p.Source != SourceInferred {
		t.Errorf("a caller without keys = %+v, %v; want the inference from the ticket", p, err)
	}

	down := &fakeSource{name: "directory", err: errors.New("not synced")}
	c2 := NewChain(zap.NewNop(), nil, time.Second, down, inferred)
	if _, err := c2.Lookup(t.Context(), bothKeys); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("directory down with inference behind it: Lookup error = %v, want ErrNoAnswer (retry, do not guess)", err)
	}
}

// withoutAt drops the time a profile was looked up, for comparisons.
func withoutAt(p ticket.Profile) ticket.Profile {
	p.At = time.Time{}
	return p
}
