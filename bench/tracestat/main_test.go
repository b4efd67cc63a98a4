package main

import (
	"bytes"
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

// TestRead traces a run with a goroutine that spins 60 ms, a forced
// collection and goroutines that wake each other, and checks that read
// finds each: long runs with their function (the scheduler may preempt
// the spin every 10 ms, so runs of 5 ms are asked for), a slice with a
// mark phase and one with a stop-the-world, and wake-ups.
func TestRead(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatalf("trace.Start: %v", err)
	}
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
	runtime.GC()
	wg.Wait()
	trace.Stop()

	st, err := read(&buf, time.Millisecond, 5*time.Millisecond)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	wakes, marked, stw := 0, false, false
	for i := range st.wakes {
		wakes += st.wakes[i]
		marked = marked || st.marked[i]
		stw = stw || st.stw[i]
	}
	if wakes < 200 || !marked || !stw {
		t.Errorf("read: %d goroutines set running (want at least 200), gc mark seen %v, stop-the-world seen %v", wakes, marked, stw)
	}
	found := false
	for _, r := range st.runs {
		if r.took <= 5*time.Millisecond {
			t.Errorf("run of %s kept, want only those longer than 5ms", r.took)
		}
		found = found || strings.Contains(r.where, "tracestat.spin")
	}
	if !found {
		t.Errorf("no run longer than 5ms in spin; runs: %+v", st.runs)
	}
	var out bytes.Buffer
	st.print(&out, 3, 3)
	if !strings.Contains(out.String(), "quietest slices:") || !strings.Contains(out.String(), "tracestat.spin") {
		t.Errorf("print:\n%s", out.String())
	}
}

func TestReadNotATrace(t *testing.T) {
	if _, err := read(strings.NewReader("not a trace"), time.Millisecond, time.Millisecond); err == nil {
		t.Error("read of a text = nil error, want one")
	}
}
