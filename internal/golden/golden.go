// Package golden compares test output with a golden file under testdata/,
// and rewrites the file when the package's -update flag is set. Each test
// package declares its own flag (packages without one reject -update):
//
//	var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")
//
//	golden.Check(t, "normalised", got, *update) // testdata/normalised.golden
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with testdata/<name>.golden, or writes it there when
// update is set (creating testdata/ if needed).
func Check(t testing.TB, name string, got []byte, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update accepts)\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
