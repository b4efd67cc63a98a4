package infer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/ticket"
)

func BenchmarkInfer(b *testing.B) {
	lines := loadLabelled(b)
	typical := lines[0].Ticket
	long := typical
	long.Description = strings.Repeat(typical.Description+" ", maxText/len(typical.Description)+1)
	var hist []ticket.Ticket
	for _, l := range lines[1:11] {
		hist = append(hist, l.Ticket)
	}
	in, err := New()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		tk   ticket.Ticket
		hist []ticket.Ticket
	}{
		{"typical", typical, nil},
		{"typical+history=10", typical, hist},
		{fmt.Sprintf("description=%dB", maxText), long, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = in.Infer(&bc.tk, bc.hist)
			}
		})
	}
}
