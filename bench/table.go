package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// figure is one row of the table: how to read it from a phase.
type figure struct {
	key, label string
	get        func(*PhaseResult) float64
	format     string
	optional   bool // left out of the table when every server's value is 0
	noRatio    bool // a count, or the harness's send lag: no ratio between servers
}

var figures = []figure{
	{"ingress_per_second", "ingress throughput (202/s)", func(p *PhaseResult) float64 { return p.IngressRate }, "%.0f", false, false},
	{"e2e_per_second", "end-to-end throughput (msg/s)", func(p *PhaseResult) float64 { return p.E2ERate }, "%.0f", false, false},
	{"ingress_p50_ms", "ingress p50 (ms)", func(p *PhaseResult) float64 { return p.Ingress.P50 }, "%.2f", false, false},
	{"ingress_p90_ms", "ingress p90 (ms)", func(p *PhaseResult) float64 { return p.Ingress.P90 }, "%.2f", false, false},
	{"ingress_p99_ms", "ingress p99 (ms)", func(p *PhaseResult) float64 { return p.Ingress.P99 }, "%.2f", false, false},
	{"ingress_p99_9_ms", "ingress p99.9 (ms)", func(p *PhaseResult) float64 { return p.Ingress.P999 }, "%.2f", false, false},
	{"e2e_p50_ms", "end-to-end p50 (ms)", func(p *PhaseResult) float64 { return p.E2E.P50 }, "%.2f", false, false},
	{"e2e_p90_ms", "end-to-end p90 (ms)", func(p *PhaseResult) float64 { return p.E2E.P90 }, "%.2f", false, false},
	{"e2e_p99_ms", "end-to-end p99 (ms)", func(p *PhaseResult) float64 { return p.E2E.P99 }, "%.2f", false, false},
	{"e2e_p99_9_ms", "end-to-end p99.9 (ms)", func(p *PhaseResult) float64 { return p.E2E.P999 }, "%.2f", false, false},
	{"send_lag_p99_ms", "harness send lag p99 (ms)", func(p *PhaseResult) float64 { return p.SendLag.P99 }, "%.2f", true, true},
	{"errors", "errors (not 202, dropped)", func(p *PhaseResult) float64 { return float64(p.Errors) }, "%.0f", false, true},
	{"lost", "accepted, not received", func(p *PhaseResult) float64 { return float64(p.Lost) }, "%.0f", false, true},
	{"message_bytes", "stored message body (bytes)", func(p *PhaseResult) float64 { return p.MsgBytes }, "%.0f", false, false},
	{"rss_peak_mb", "RSS peak (MB)", func(p *PhaseResult) float64 { return p.RSSPeakMB }, "%.1f", false, false},
	{"cpu_seconds_per_1000", "CPU s per 1000 tickets", func(p *PhaseResult) float64 { return p.CPUPer1000 }, "%.3f", false, false},
	{"harness_cpu_seconds_per_1000", "harness CPU s per 1000", func(p *PhaseResult) float64 { return p.LoadCPU1000 }, "%.3f", false, false},
	{"nats_rss_peak_mb", "its nats-server's RSS peak (MB)", func(p *PhaseResult) float64 { return p.NATSRSSPeakMB }, "%.1f", true, false},
	{"nats_cpu_seconds_per_1000", "its nats-server's CPU s per 1000", func(p *PhaseResult) float64 { return p.NATSCPUPer1000 }, "%.3f", true, false},
}

func target(ts []*TargetResult, name string) *TargetResult {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func phaseNamed(t *TargetResult, name string) *PhaseResult {
	if t == nil {
		return nil
	}
	for i := range t.Phases {
		if t.Phases[i].Name == name {
			return &t.Phases[i]
		}
	}
	return nil
}

// ratios divides each of the figures of the target named num by those of
// the target named by (the ceiling, the relay), phase by phase; a figure
// whose value there is 0 has no ratio.
func ratios(ts []*TargetResult, num, by string) []PhaseRatios {
	d, c := target(ts, num), target(ts, by)
	if d == nil || c == nil {
		return nil
	}
	var out []PhaseRatios
	for i := range d.Phases {
		dp := &d.Phases[i]
		cp := phaseNamed(c, dp.Name)
		if cp == nil {
			continue
		}
		pr := PhaseRatios{Phase: dp.Name, Ratios: map[string]float64{}}
		for _, f := range figures {
			if cv := f.get(cp); cv != 0 && !f.noRatio {
				pr.Ratios[f.key] = f.get(dp) / cv
			}
		}
		out = append(out, pr)
	}
	return out
}

// ratioColumn is one column of ratios in the table.
type ratioColumn struct {
	header string
	rs     []PhaseRatios
}

// printTable writes one block per phase: a row per figure, a column per
// server, then the ratios that could be taken: inline ÷ ceiling,
// deskrelay ÷ ceiling and deskrelay ÷ relay.
func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\ndeskrelay benchmark %s (git %s%s), %d CPUs (%s), %s\n", r.Date, r.Git, map[bool]string{true: ", dirty"}[r.Dirty], r.Machine.CPUs, r.Machine.Model, r.Machine.GoVersion)
	fmt.Fprintf(w, "source %s (%d-byte bodies), %d callers, %s NATS, sync_interval %s, %s per phase\n", r.Source, r.BodyBytes, r.Callers, r.NATS, r.Sync, r.Duration)
	fmt.Fprintf(w, "command: %s\n", r.Command)
	if n := len(byRepeat(r.Repeats)); n > 1 {
		fmt.Fprintf(w, "every figure and ratio: the median of %d repetitions (each ratio taken within its repetition)\n", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var names []string
	for _, t := range r.Targets {
		names = append(names, t.Name)
	}
	var cols []ratioColumn
	for _, c := range []ratioColumn{{"inline÷ceiling", r.InlineRatios}, {"deskrelay÷ceiling", r.Ratios}, {"deskrelay÷relay", r.RelayRatios}} {
		if len(c.rs) > 0 {
			cols = append(cols, c)
		}
	}
	header := "\t" + strings.Join(names, "\t") + "\t"
	for _, c := range cols {
		header += c.header + "\t"
	}
	first := r.Targets[0]
	const labelWidth = 44 // AlignRight pads on the left: a padded label stays left-aligned
	for i := range first.Phases {
		name := first.Phases[i].Name
		title := name
		if p := &first.Phases[i]; p.OfferedRate > 0 {
			title = fmt.Sprintf("%s (%.0f requests/s offered)", name, p.OfferedRate)
		} else if p.Senders > 0 {
			title = fmt.Sprintf("%s (%d senders)", name, p.Senders)
		}
		fmt.Fprintf(tw, "%-*s%s\n", labelWidth, title, header)
		for _, f := range figures {
			if f.optional && allZero(r.Targets, name, f) {
				continue
			}
			row := fmt.Sprintf("  %-*s\t", labelWidth-2, f.label)
			for _, t := range r.Targets {
				if p := phaseNamed(t, name); p != nil {
					row += fmt.Sprintf(f.format, f.get(p)) + "\t"
				} else {
					row += "-\t"
				}
			}
			for _, c := range cols {
				row += ratioCell(c.rs, name, f.key) + "\t"
			}
			fmt.Fprintln(tw, row)
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}

func ratioCell(rs []PhaseRatios, phase, key string) string {
	for _, pr := range rs {
		if pr.Phase != phase {
			continue
		}
		if v, ok := pr.Ratios[key]; ok && !math.IsInf(v, 0) && !math.IsNaN(v) {
			return fmt.Sprintf("%.2f×", v)
		}
	}
	return "-"
}

func allZero(ts []*TargetResult, phase string, f figure) bool {
	for _, t := range ts {
		if p := phaseNamed(t, phase); p != nil && f.get(p) != 0 {
			return false
		}
	}
	return true
}
