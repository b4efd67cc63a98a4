package bus

import (
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
)

func TestLeases(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	if err := b.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err := b.Leases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	ctx := t.Context()
	step := func(what, holder string, want bool) {
		t.Helper()
		got, err := l.Acquire(ctx, "snow", holder, 30*time.Second)
		if err != nil || got != want {
			t.Fatalf("%s: Acquire(%s) = %v, %v; want %v", what, holder, got, err, want)
		}
	}
	step("a free lease is taken", "a", true)
	step("the holder renews", "a", true)
	step("another replica is refused while it runs", "b", false)
	now = now.Add(29 * time.Second)
	step("still refused just before expiry", "b", false)
	now = now.Add(2 * time.Second)
	step("a lapsed lease is taken over", "b", true)
	step("the old holder is now refused", "a", false)
	if h, _ := l.Holder(ctx, "snow"); h != "b" {
		t.Errorf("Holder = %q, want b", h)
	}
	if err := l.Release(ctx, "snow", "a"); err != nil {
		t.Fatal(err)
	}
	if h, _ := l.Holder(ctx, "snow"); h != "b" {
		t.Errorf("after a non-holder's Release, Holder = %q, want b", h)
	}
	if err := l.Release(ctx, "snow", "b"); err != nil {
		t.Fatal(err)
	}
	step("a released lease is free at once", "a", true)
}

func TestCursors(t *testing.T) {
	b, _ := newBus(t, bustest.Start(t), config.NATS{})
	if err := b.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := b.Cursors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Load(t.Context(), "snow"); got != nil || err != nil {
		t.Fatalf("Load before Store = %q, %v; want nil, nil", got, err)
	}
	if err := c.Store(t.Context(), "snow", []byte(`{"t":"2024-05-13 10:00:00"}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Load(t.Context(), "snow"); string(got) != `{"t":"2024-05-13 10:00:00"}` {
		t.Errorf("Load = %q", got)
	}
}
