package main

import (
	"bytes"
	"os"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// spin holds its P for d without blocking.
//
//go:noinline
func spin(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		n++
	}
	return n
}

// traced returns the execution trace of f.
func traced(t *testing.T, f func()) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatalf("trace.Start: %v", err)
	}
	f()
	trace.Stop()
	return &buf
}

// TestRead traces 10 ms of quiet, a goroutine that spins 60 ms beside
// goroutines that wake each other, a forced collection and 20 ms of quiet,
// and checks what read finds: the spin's runs (the scheduler may preempt
// it every 10 ms, so runs above 5 ms are asked for), no run longer than
// the spin, the wake-ups, a mark phase that ends with the collection and a
// stop-the-world at the collection, not only at the trace's start.
func TestRead(t *testing.T) {
	buf := traced(t, func() {
		time.Sleep(10 * time.Millisecond)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); spin(60 * time.Millisecond) }()
		ping := make(chan int)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ping {
			}
		}()
		for i := range 200 {
			ping <- i
		}
		close(ping)
		wg.Wait()
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	})
	st, err := read(buf, time.Millisecond, 5*time.Millisecond)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	wakes, lastMarked, lastSTW := 0, -1, -1
	for i := range st.wakes {
		wakes += st.wakes[i]
		if st.marked[i] {
			lastMarked = i
		}
		if st.stw[i] {
			lastSTW = i
		}
	}
	n := len(st.wakes)
	if wakes < 100 {
		t.Errorf("%d goroutines set running, want at least 100 (200 pings)", wakes)
	}
	if lastMarked < 0 || lastMarked >= n-10 {
		t.Errorf("last slice with a mark phase: %d of %d, want one, ended at least 10 ms before the end", lastMarked, n)
	}
	if lastSTW < 10 {
		t.Errorf("last stop-the-world in slice %d, want one at the collection, after 10 ms", lastSTW)
	}
	found := false
	for _, r := range st.runs {
		if r.took <= 5*time.Millisecond || r.took > 61*time.Millisecond {
			t.Errorf("run of %s in %s, want only runs of 5…61 ms", r.took, r.where)
		}
		found = found || strings.Contains(r.where, "tracestat.spin")
	}
	if !found {
		t.Errorf("no run of the spin longer than 5ms; runs: %+v", st.runs)
	}
	var out bytes.Buffer
	st.print(&out, 3, 3)
	if !strings.Contains(out.String(), "quietest slices:") || !strings.Contains(out.String(), "tracestat.spin") {
		t.Errorf("print:\n%s", out.String())
	}
}

// TestReadSyscallsAreNotWakeUps: a goroutine that returns from 2,000
// syscalls keeps its P each time; the scheduler set nothing running.
func TestReadSyscallsAreNotWakeUps(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer null.Close()
	buf := traced(t, func() {
		for range 2000 {
			_, _ = null.Write([]byte("x"))
		}
	})
	st, err := read(buf, time.Millisecond, time.Hour)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	wakes := 0
	for _, w := range st.wakes {
		wakes += w
	}
	if wakes > 200 {
		t.Errorf("%d goroutines set running around 2,000 syscalls, want the scheduler's few", wakes)
	}
}

func TestReadNotATrace(t *testing.T) {
	if _, err := read(strings.NewReader("not a trace"), time.Millisecond, time.Millisecond); err == nil {
		t.Error("read of a text = nil error, want one")
	}
}
