package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/routing"
	"github.com/deskrelay/deskrelay/ticket"
)

func routeCmd(g *globals) *cobra.Command {
	var ticketPath, profileName string
	var explain bool
	cmd := &cobra.Command{
		Use:   "route --ticket T.json",
		Short: "Dry run: print the routed message for a ticket, without NATS",
		Long: `Route one normalised ticket (JSON, "-" for stdin) with the configured rules
and print the routed message that deskrelay would publish. The caller's
profile comes from profiles.file of the config, or from --profile.
With --explain, also print why each rule matched or not (on stderr, so that
stdout stays the JSON message).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ticketPath == "" {
				return fmt.Errorf("--ticket is required (a normalised ticket as JSON, or - for stdin)")
			}
			log, err := newLogger("console", "error")
			if err != nil {
				return err
			}
			p, err := compile(g.configPath, log, nil)
			if err != nil {
				return err
			}
			data, err := readInput(cmd.InOrStdin(), ticketPath)
			if err != nil {
				return err
			}
			var tk ticket.Ticket
			if err := json.Unmarshal(data, &tk); err != nil {
				return fmt.Errorf("%s: not a ticket: %w", ticketPath, err)
			}
			if tk.Source == "" {
				tk.Source = "route"
			}
			if err := tk.Validate(); err != nil {
				return fmt.Errorf("%s: %w", ticketPath, err)
			}
			prof, err := dryRunProfile(cmd, p, tk.Caller, profileName)
			if err != nil {
				return err
			}
			dec, why, err := p.tree.Explain(&tk, &prof)
			if err != nil {
				return fmt.Errorf("route %s: %w", ticketPath, err)
			}
			out := cmd.OutOrStdout()
			if explain { // on stderr, so that stdout stays one JSON document
				fmt.Fprintln(cmd.ErrOrStderr(), why.String())
			}
			msg := ticket.Routed{Schema: ticket.RoutedSchema, Ticket: tk, Profile: prof, Routing: dec, RoutedAt: time.Now().UTC()}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(msg)
		},
	}
	cmd.Flags().StringVarP(&ticketPath, "ticket", "t", "", "normalised ticket JSON file, - for stdin")
	cmd.Flags().StringVarP(&profileName, "profile", "p", "", "use this profile instead of looking the caller up: doer, prioritizer, trier, supported, unknown")
	cmd.Flags().BoolVar(&explain, "explain", false, "print why each rule matched or not")
	cmd.AddCommand(routeTestCmd(g))
	return cmd
}

func routeTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test CASES.yaml...",
		Short: "Check routing against a file of cases; exit 1 on any mismatch",
		Long: `Route every case (a ticket, the caller's profile, and the expected tier,
channel, priority and rule path) with the configured rules. Prints a diff for
each mismatch and exits 1 if any case fails, so routing can be kept under
test in CI.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger("console", "error")
			if err != nil {
				return err
			}
			p, err := compile(g.configPath, log, nil)
			if err != nil {
				return err
			}
			failed := 0
			for _, path := range args {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				cases, err := routing.ParseCases(data)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				report := routing.RunCases(p.tree, cases)
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s", path, report.String())
				failed += report.Failed()
			}
			if failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

// dryRunProfile returns the profile named on the command line, or the one
// profiles.file gives the caller.
func dryRunProfile(cmd *cobra.Command, p *plan, c ticket.Caller, name string) (ticket.Profile, error) {
	if name != "" {
		n, err := ticket.ParseProfileName(name)
		if err != nil {
			return ticket.Profile{}, fmt.Errorf("--profile: %w", err)
		}
		return ticket.Profile{Name: n, Source: "cli", Confidence: 1}, nil
	}
	chain := enrichment.NewChain(zap.NewNop(), nil, time.Second, enrichment.NewStatic(p.profiles, p.quadrant))
	return chain.Lookup(cmd.Context(), c)
}

func readInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}
