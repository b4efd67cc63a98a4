package infer

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	"github.com/deskrelay/deskrelay/ticket"
)

// FuzzInfer feeds input lines to the decoder and the inference: never a
// panic, and every inferred profile is inferred, with scores in 0…1 and a
// confidence in 0.25…1.
func FuzzInfer(f *testing.F) {
	file, err := os.Open(filepath.Join("testdata", labelledFile))
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan() && i < 40; i++ {
		f.Add(append([]byte(nil), sc.Bytes()...))
	}
	file.Close()
	in, err := New(WithMinConfidence(0))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := DecodeLine(data)
		if err != nil {
			return
		}
		p := in.Infer(&l.Ticket, l.History)
		if p.Source != SourceName || p.Name == ticket.Unknown || p.Name == "" ||
			!(p.Confidence >= 0.25 && p.Confidence <= 1) ||
			!(*p.Competence >= 0 && *p.Competence <= 1) || !(*p.Attitude >= 0 && *p.Attitude <= 1) {
			t.Fatalf("Infer = %+v (c=%v a=%v)", p, *p.Competence, *p.Attitude)
		}
	})
}
