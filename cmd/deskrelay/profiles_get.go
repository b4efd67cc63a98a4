package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/ticket"
)

// syncTimeout bounds how long profiles get waits for the directory to load.
const syncTimeout = 30 * time.Second

// profilesGetCmd is `deskrelay profiles get`; profilesCmd adds it, and
// its --nats-url is the parent's persistent flag.
func profilesGetCmd(g *globals) *cobra.Command {
	var (
		id       string
		all      bool
		asJSON   bool
		timeout  time.Duration
		withKeys bool
	)
	cmd := &cobra.Command{
		Use:   "get [EMAIL]",
		Short: "Look a caller's profile up through the configured sources and explain the answer",
		Long: `Look the caller up as the pipeline does: the directory of a running
deskrelay (its NATS KV bucket), then every source in profiles.order, each
under its timeout. Prints the profile, which source answered and when, what
every source asked answered, and the familiar people on record.

With --all every source is asked, even after the first hit, to compare them.
Give the email as the argument, the caller id with --id, or both.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			caller := ticket.Caller{ID: id}
			if len(args) == 1 {
				caller.Email = args[0]
			}
			if caller.Email == "" && caller.ID == "" {
				return errors.New("give an email, or a caller id with --id")
			}
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			q, err := enrichment.NewQuadrant(cfg.Profiles)
			if err != nil {
				return cfg.Locate(err)
			}
			natsURL := ""
			if f := cmd.Flags().Lookup("nats-url"); f != nil {
				natsURL = f.Value.String()
			}
			return withKV(cmd.Context(), cfg, natsURL, func(ctx context.Context, b *bus.Bus) error {
				kv, err := b.ProfilesKV(ctx)
				if err != nil {
					return err
				}
				built, err := enrichment.Build(cfg.Profiles, enrichment.Deps{KV: kv, Connectors: cfg.Connectors, Quadrant: q, Log: zap.NewNop()})
				if err != nil {
					return cfg.Locate(err)
				}
				tr, known, err := explain(ctx, built, caller, all, timeout)
				if err != nil && !errors.Is(err, enrichment.ErrNoAnswer) {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return errors.Join(enc.Encode(getOutput{Caller: caller, Trace: tr, Familiar: known}), err)
				}
				printTrace(cmd.OutOrStdout(), caller, tr, known, withKeys)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the caller id (as the ITSM gives it)")
	cmd.Flags().BoolVar(&all, "all", false, "ask every source, even after the first hit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the trace as JSON")
	cmd.Flags().BoolVar(&withKeys, "keys", false, "also print the KV keys the directory reads")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "bound on the whole lookup")
	return cmd
}

// getOutput is the --json form of profiles get.
type getOutput struct {
	Caller   ticket.Caller     `json:"caller"`
	Trace    enrichment.Trace  `json:"trace"`
	Familiar *enrichment.Known `json:"familiar,omitempty"`
}

// explain runs the directory until it has loaded the bucket, then asks
// the chain.
func explain(ctx context.Context, built *enrichment.Built, caller ticket.Caller, all bool, timeout time.Duration) (enrichment.Trace, *enrichment.Known, error) {
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- built.Directory.Run(rctx) }()
	defer func() {
		cancel()
		<-errc
	}()
	sctx, scancel := context.WithTimeout(ctx, syncTimeout)
	defer scancel()
	select {
	case <-built.Directory.Synced():
	case err := <-errc:
		errc <- err // for the deferred wait
		return enrichment.Trace{}, nil, fmt.Errorf("profile directory: %w", err)
	case <-sctx.Done():
		return enrichment.Trace{}, nil, fmt.Errorf("profile directory not loaded within %s", syncTimeout)
	}
	lctx, lcancel := context.WithTimeout(ctx, timeout)
	defer lcancel()
	tr, err := built.Chain.Explain(lctx, caller, all)
	var known *enrichment.Known
	if k, ok := built.Familiar.Lookup(caller); ok {
		known = &k
	}
	return tr, known, err
}

func printTrace(w io.Writer, caller ticket.Caller, tr enrichment.Trace, known *enrichment.Known, withKeys bool) {
	p := tr.Profile
	if p.Name != "" {
		fmt.Fprintf(w, "profile:  %s\n", describe(p))
		fmt.Fprintf(w, "source:   %s, looked up %s\n", p.Source, tr.At.UTC().Format(time.RFC3339))
		if p.Reason != "" {
			fmt.Fprintf(w, "reason:   %s\n", p.Reason)
		}
	} else {
		fmt.Fprintln(w, "profile:  none: no source answered; the pipeline would retry this ticket")
	}
	fmt.Fprintln(w, "trace:")
	for i, st := range tr.Steps {
		line := fmt.Sprintf("  %d. %-16s %-8s %8s", i+1, st.Source, st.Result, st.Duration.Round(time.Microsecond))
		if st.Profile != nil {
			line += "  " + describe(*st.Profile)
		}
		if st.Error != "" {
			line += "  " + st.Error
		}
		fmt.Fprintln(w, line)
	}
	if len(tr.Steps) == 0 {
		fmt.Fprintln(w, "  (no source asked)")
	}
	if known != nil {
		var parts []string
		if known.Agent != "" {
			parts = append(parts, "agent "+strconv.Quote(known.Agent))
		}
		if known.Group != "" {
			parts = append(parts, "group "+strconv.Quote(known.Group))
		}
		fmt.Fprintf(w, "familiar: %s\n", strings.Join(parts, ", "))
	}
	if withKeys {
		if caller.Email != "" {
			fmt.Fprintf(w, "key:      %s\n", enrichment.EmailKey(caller.Email))
		}
		if caller.ID != "" {
			fmt.Fprintf(w, "key:      %s\n", enrichment.UserIDKey(caller.ID))
		}
	}
}

func describe(p ticket.Profile) string {
	s := string(p.Name)
	var extra []string
	if p.Competence != nil && p.Attitude != nil {
		extra = append(extra, fmt.Sprintf("competence %.2f, attitude %.2f", *p.Competence, *p.Attitude))
	}
	if p.Confidence != 0 && p.Confidence != 1 {
		extra = append(extra, fmt.Sprintf("confidence %.2f", p.Confidence))
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, "; ") + ")"
	}
	return s
}
