//go:build !race

package jsm

const raceEnabled = false
