package enrichment

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/deskrelay/deskrelay/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
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

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// defaultQuadrant is the quadrant of an empty config: scale 10, thresholds 5.
func defaultQuadrant(t testing.TB) Quadrant {
	t.Helper()
	q, err := NewQuadrant(config.Profiles{})
	if err != nil {
		t.Fatalf("NewQuadrant(zero config) = %v", err)
	}
	return q
}

func ptr(f float64) *float64 { return &f }
