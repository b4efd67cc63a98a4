package main

import (
	"slices"
)

// median returns the median of vs (the mean of the middle two for an even
// count), or 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// byRepeat groups targets by their repetition, in order.
func byRepeat(all []*TargetResult) [][]*TargetResult {
	var reps [][]*TargetResult
	idx := map[int]int{}
	for _, t := range all {
		i, ok := idx[t.Repeat]
		if !ok {
			i = len(reps)
			idx[t.Repeat] = i
			reps = append(reps, nil)
		}
		reps[i] = append(reps[i], t)
	}
	return reps
}

// medianTargets returns one target per name whose phases hold, for every
// figure of the table, the median over the repetitions (-repeat). Counts
// (sent, accepted, dropped, received) are medians too.
func medianTargets(all []*TargetResult) []*TargetResult {
	var out []*TargetResult
	for _, first := range byRepeat(all)[0] {
		var same []*TargetResult
		for _, t := range all {
			if t.Name == first.Name {
				same = append(same, t)
			}
		}
		mt := &TargetResult{Name: first.Name}
		var starts []float64
		for _, t := range same {
			starts = append(starts, t.StartSeconds)
		}
		mt.StartSeconds = median(starts)
		for _, fp := range first.Phases {
			var ps []*PhaseResult
			for _, t := range same {
				if p := phaseNamed(t, fp.Name); p != nil {
					ps = append(ps, p)
				}
			}
			mt.Phases = append(mt.Phases, medianPhase(fp, ps))
		}
		out = append(out, mt)
	}
	return out
}

// medianPhase returns a phase named as first whose figures are the
// medians of ps.
func medianPhase(first PhaseResult, ps []*PhaseResult) PhaseResult {
	m := func(get func(*PhaseResult) float64) float64 {
		vs := make([]float64, len(ps))
		for i, p := range ps {
			vs[i] = get(p)
		}
		return median(vs)
	}
	mi := func(get func(*PhaseResult) int64) int64 {
		return int64(m(func(p *PhaseResult) float64 { return float64(get(p)) }))
	}
	lat := func(get func(*PhaseResult) Latency) Latency {
		return Latency{
			P50:  m(func(p *PhaseResult) float64 { return get(p).P50 }),
			P90:  m(func(p *PhaseResult) float64 { return get(p).P90 }),
			P99:  m(func(p *PhaseResult) float64 { return get(p).P99 }),
			P999: m(func(p *PhaseResult) float64 { return get(p).P999 }),
			Max:  m(func(p *PhaseResult) float64 { return get(p).Max }),
			Mean: m(func(p *PhaseResult) float64 { return get(p).Mean }),
			N:    int64(m(func(p *PhaseResult) float64 { return float64(get(p).N) })),
		}
	}
	return PhaseResult{
		Name: first.Name, Senders: first.Senders,
		OfferedRate:    m(func(p *PhaseResult) float64 { return p.OfferedRate }),
		SendSeconds:    m(func(p *PhaseResult) float64 { return p.SendSeconds }),
		Sent:           mi(func(p *PhaseResult) int64 { return p.Sent }),
		Accepted:       mi(func(p *PhaseResult) int64 { return p.Accepted }),
		Errors:         mi(func(p *PhaseResult) int64 { return p.Errors }),
		Dropped:        mi(func(p *PhaseResult) int64 { return p.Dropped }),
		Received:       mi(func(p *PhaseResult) int64 { return p.Received }),
		Lost:           mi(func(p *PhaseResult) int64 { return p.Lost }),
		IngressRate:    m(func(p *PhaseResult) float64 { return p.IngressRate }),
		E2ERate:        m(func(p *PhaseResult) float64 { return p.E2ERate }),
		Ingress:        lat(func(p *PhaseResult) Latency { return p.Ingress }),
		E2E:            lat(func(p *PhaseResult) Latency { return p.E2E }),
		SendLag:        lat(func(p *PhaseResult) Latency { return p.SendLag }),
		MsgBytes:       m(func(p *PhaseResult) float64 { return p.MsgBytes }),
		RSSPeakMB:      m(func(p *PhaseResult) float64 { return p.RSSPeakMB }),
		RSSEndMB:       m(func(p *PhaseResult) float64 { return p.RSSEndMB }),
		CPUSeconds:     m(func(p *PhaseResult) float64 { return p.CPUSeconds }),
		CPUPer1000:     m(func(p *PhaseResult) float64 { return p.CPUPer1000 }),
		LoadCPU1000:    m(func(p *PhaseResult) float64 { return p.LoadCPU1000 }),
		NATSRSSPeakMB:  m(func(p *PhaseResult) float64 { return p.NATSRSSPeakMB }),
		NATSCPUPer1000: m(func(p *PhaseResult) float64 { return p.NATSCPUPer1000 }),
	}
}

// medianRatios takes the ratios of the target named num to the one named
// by within each repetition, then the median of each over the
// repetitions: a ratio is only meaningful between servers measured in the
// same stretch of time.
func medianRatios(all []*TargetResult, num, by string) []PhaseRatios {
	vals := map[string]map[string][]float64{} // phase → figure → per repetition
	var order []string
	for _, rep := range byRepeat(all) {
		for _, pr := range ratios(rep, num, by) {
			if vals[pr.Phase] == nil {
				vals[pr.Phase] = map[string][]float64{}
				order = append(order, pr.Phase)
			}
			for k, v := range pr.Ratios {
				vals[pr.Phase][k] = append(vals[pr.Phase][k], v)
			}
		}
	}
	var out []PhaseRatios
	for _, phase := range order {
		pr := PhaseRatios{Phase: phase, Ratios: map[string]float64{}}
		for k, vs := range vals[phase] {
			pr.Ratios[k] = median(vs)
		}
		out = append(out, pr)
	}
	return out
}
