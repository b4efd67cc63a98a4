package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/deskrelay/deskrelay/enrichment/infer"
)

// maxInferLine is the longest input line profiles infer reads.
const maxInferLine = 4 << 20

// profilesInferCmd is `deskrelay profiles infer FILE`. It needs no config
// and no NATS.
func profilesInferCmd(_ *globals) *cobra.Command {
	var (
		minConfidence float64
		evaluate      bool
	)
	cmd := &cobra.Command{
		Use:   "infer FILE",
		Short: "Infer the profiles of the callers of tickets in a JSON lines file",
		Long: `Read normalised tickets as JSON lines from FILE (- for stdin), each with an
optional "history" array of the caller's earlier tickets (oldest first), and
write one JSON line per ticket:

  {"id":"INC1","profile":"doer","confidence":0.83,"competence":0.91,"attitude":0.88}

profile is unknown when the confidence is below --min-confidence; 0 always
names one of doer, prioritizer, trier and supported. A bad line is reported
on stderr with its line number and skipped; the other lines are still
inferred, and the exit status is 1.

With --evaluate each line also needs a "label" (the caller's true profile),
and instead of the profiles it prints the accuracy, the baseline of always
answering doer, and the confusion matrix. No NATS and no config are needed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := infer.New(infer.WithMinConfidence(minConfidence))
			if err != nil {
				return fmt.Errorf("--min-confidence: %w", err)
			}
			var r io.Reader = cmd.InOrStdin()
			name := "stdin"
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r, name = f, args[0]
			}
			return runInfer(cmd, in, r, name, evaluate)
		},
	}
	cmd.Flags().Float64Var(&minConfidence, "min-confidence", infer.DefaultMinConfidence,
		"confidence (0.25…1) below which the profile is unknown; 0 always names a profile")
	cmd.Flags().BoolVar(&evaluate, "evaluate", false,
		`compare with each line's "label" and print accuracy and the confusion matrix`)
	return cmd
}

func runInfer(cmd *cobra.Command, in *infer.Inferrer, r io.Reader, name string, evaluate bool) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var report infer.Report
	bad, n := 0, 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxInferLine)
	for sc.Scan() {
		n++
		if len(sc.Bytes()) == 0 {
			continue
		}
		l, err := infer.DecodeLine(sc.Bytes())
		if err == nil && evaluate && l.Label == "" {
			err = errors.New(`no "label" to evaluate against`)
		}
		if err != nil {
			bad++
			fmt.Fprintf(stderr, "%s:%d: %v\n", name, n, err)
			continue
		}
		p := in.Infer(&l.Ticket, l.History)
		if evaluate {
			report.Add(l.Label, p.Name)
			continue
		}
		if err := enc.Encode(infer.NewResult(l.Ticket.ID, p)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxInferLine)
		}
		return fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	if evaluate {
		fmt.Fprintf(w, "min confidence     %v\n", in.MinConfidence())
		if _, err := report.WriteTo(w); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "%d of %d lines skipped\n", bad, n)
		return exitError{code: 1}
	}
	return nil
}
