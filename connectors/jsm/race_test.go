//go:build race

package jsm

// raceEnabled: the race detector slows JetStream round trips about
// fivefold, so the backlog test drains a smaller backlog under it.
const raceEnabled = true
