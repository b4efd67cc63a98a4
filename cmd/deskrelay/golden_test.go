package main

import (
	"flag"
	"testing"

	"github.com/deskrelay/deskrelay/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}
