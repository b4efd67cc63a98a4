// Command tracestat reads a Go execution trace (from a server's
// /debug/pprof/trace) and prints what a CPU profile cannot show about a
// latency tail: how many goroutines the scheduler woke per time slice, the
// quietest slices and whether a GC mark or a stop-the-world fell in them,
// and the goroutine runs that held a P longest without yielding.
//
//	curl -so inline.trace 'http://127.0.0.1:6060/debug/pprof/trace?seconds=10'
//	go run ./bench/tracestat inline.trace
//
// docs/performance.md, "Profiles", shows how to take a trace during a
// harness phase.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	slice := flag.Duration("slice", 10*time.Millisecond, "length of a time slice")
	quiet := flag.Int("quiet", 10, "how many of the quietest slices to print")
	long := flag.Duration("long", 3*time.Millisecond, "print goroutine runs longer than this")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: tracestat [flags] trace.out\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *slice <= 0 || *quiet < 0 || *long < 0 {
		fmt.Fprintln(os.Stderr, "tracestat: -slice must be > 0, -quiet and -long >= 0")
		os.Exit(2)
	}
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracestat:", err)
		os.Exit(1)
	}
	defer f.Close()
	st, err := read(f, *slice, *long)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracestat: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	st.print(os.Stdout, *quiet, 25)
}

// stats is what read found in a trace.
type stats struct {
	slice  time.Duration
	wakes  []int  // goroutines the scheduler set running (runnable → running), by slice
	marked []bool // a GC mark phase was running during the slice
	stw    []bool // a stop-the-world began in the slice
	runs   []run  // goroutine runs longer than the threshold, longest first
}

// run is one stretch in which a goroutine ran without stopping: from its
// becoming running (also from a syscall, or at the trace's start) to its
// blocking, yielding, being preempted or entering a syscall. Runs still
// going when the trace ends are not reported.
type run struct {
	at, took time.Duration // from the trace's start
	g        trace.GoID
	where    string // the innermost frames of its stack when it stopped
}

// read reads the trace from r into stats with slices of length slice,
// keeping the goroutine runs longer than long.
func read(r io.Reader, slice, long time.Duration) (*stats, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	st := &stats{slice: slice}
	var start trace.Time
	begun := false
	running := map[trace.GoID]trace.Time{}
	marking := false
	grow := func(i int) {
		for len(st.wakes) <= i {
			st.wakes = append(st.wakes, 0)
			st.marked = append(st.marked, marking)
			st.stw = append(st.stw, false)
		}
	}
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !begun {
			start, begun = ev.Time(), true
		}
		i := int(time.Duration(ev.Time()-start) / slice)
		grow(i)
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeActive:
			switch name := ev.Range().Name; {
			case name == "GC concurrent mark phase":
				marking = true
				st.marked[i] = true
			case strings.HasPrefix(name, "stop-the-world"):
				st.stw[i] = true
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == "GC concurrent mark phase" {
				marking = false
			}
		case trace.EventStateTransition:
			tr := ev.StateTransition()
			if tr.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := tr.Resource.Goroutine()
			from, to := tr.Goroutine()
			switch {
			case from == to:
				// A new generation of the trace restates every
				// goroutine's state: nothing changed.
			case to == trace.GoRunning:
				// Only the scheduler's wake-ups count: not a return from
				// a syscall (the goroutine kept its P), not a goroutine
				// already running when the trace began.
				if from == trace.GoRunnable {
					st.wakes[i]++
				}
				running[g] = ev.Time()
			case from == trace.GoRunning:
				if at, ok := running[g]; ok {
					if took := time.Duration(ev.Time() - at); took > long {
						st.runs = append(st.runs, run{at: time.Duration(at - start), took: took, g: g, where: frames(ev.Stack(), 4)})
					}
					delete(running, g)
				}
			}
		}
	}
	if !begun {
		return nil, errors.New("no events")
	}
	slices.SortFunc(st.runs, func(a, b run) int { return int(b.took - a.took) })
	return st, nil
}

// frames returns the innermost n function names of s, innermost first.
func frames(s trace.Stack, n int) string {
	var fs []string
	for f := range s.Frames() {
		if len(fs) == n {
			break
		}
		fs = append(fs, f.Func)
	}
	return strings.Join(fs, " < ")
}

// print writes the median wake-ups per slice, the quiet quietest slices
// (the last slice, cut short by the trace's end, left out unless it is
// the only one) and the runs longest runs.
func (st *stats) print(w io.Writer, quiet, runs int) {
	full := st.wakes
	if len(full) > 1 {
		full = full[:len(full)-1] // the last, cut short by the trace's end
	}
	sorted := slices.Sorted(slices.Values(full))
	fmt.Fprintf(w, "%d slices of %s; goroutines the scheduler set running per slice: median %d, min %d, max %d\n",
		len(full), st.slice, sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1])
	order := make([]int, len(full))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return full[a] - full[b] })
	fmt.Fprintf(w, "\nquietest slices:\n")
	for _, i := range order[:min(quiet, len(order))] {
		fmt.Fprintf(w, "  at %8s  %5d set running  gc mark %-5v  stop-the-world %v\n",
			time.Duration(i)*st.slice, full[i], st.marked[i], st.stw[i])
	}
	fmt.Fprintf(w, "\nlongest goroutine runs:\n")
	for _, r := range st.runs[:min(runs, len(st.runs))] {
		fmt.Fprintf(w, "  at %10s  ran %8s  g%d  %s\n", r.at.Round(time.Microsecond), r.took.Round(time.Microsecond), r.g, r.where)
	}
}
