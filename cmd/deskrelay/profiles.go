package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/internal/bus"
)

func profilesCmd(g *globals) *cobra.Command {
	var natsURL string
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "Manage the profile directory in the NATS KV bucket",
	}
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS to connect to (default: nats.url of the config, or the embedded server's listen address)")

	var check bool
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Write the profiles of a CSV, JSON or YAML file into the directory",
		Long: `Parse FILE (CSV with a header row, JSON or YAML; see the README) and write
every row into the profile directory of a running deskrelay, overwriting the
keys it names. Every running replica sees the change within a second.
With --check, only parse and report every bad row with its line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			q, err := enrichment.NewQuadrant(cfg.Profiles)
			if err != nil {
				return cfg.Locate(err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			entries, err := enrichment.ParseFile(args[0], data, q)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d rows OK\n", args[0], len(entries))
				return nil
			}
			return withKV(cmd.Context(), cfg, natsURL, func(ctx context.Context, b *bus.Bus) error {
				kv, err := b.ProfilesKV(ctx)
				if err != nil {
					return err
				}
				n, err := enrichment.Import(ctx, kv, entries, "file:"+filepath.Base(args[0]))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %d rows (%d keys) into %s\n", len(entries), n, cfg.NATS.ProfilesBucket)
				return nil
			})
		},
	}
	imp.Flags().BoolVar(&check, "check", false, "only parse the file and report bad rows")

	exp := &cobra.Command{
		Use:   "export",
		Short: "Print the profile directory as CSV",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			return withKV(cmd.Context(), cfg, natsURL, func(ctx context.Context, b *bus.Bus) error {
				kv, err := b.ProfilesKV(ctx)
				if err != nil {
					return err
				}
				entries, err := enrichment.Export(ctx, kv)
				if err != nil && !errors.Is(err, enrichment.ErrSkipped) {
					return err
				}
				skipped := err // printed after the good entries
				w := csv.NewWriter(cmd.OutOrStdout())
				_ = w.Write([]string{"email", "user_id", "profile", "competence", "attitude"})
				for _, e := range entries {
					row := []string{e.Email, e.UserID, string(e.Profile), "", ""}
					if e.Competence != nil && e.Attitude != nil {
						row[2] = ""
						row[3] = strconv.FormatFloat(*e.Competence, 'g', -1, 64)
						row[4] = strconv.FormatFloat(*e.Attitude, 'g', -1, 64)
					}
					_ = w.Write(row)
				}
				w.Flush()
				if err := w.Error(); err != nil {
					return err
				}
				return skipped
			})
		},
	}
	cmd.AddCommand(imp, exp, profilesGetCmd(g), profilesInferCmd(g))
	return cmd
}

// withKV connects to the NATS of a running deskrelay and calls fn.
func withKV(ctx context.Context, cfg *config.Config, natsURL string, fn func(context.Context, *bus.Bus) error) error {
	n := cfg.NATS
	switch {
	case natsURL != "":
		n.URL = natsURL
	case n.URL == "":
		if n.Embedded.Listen == "" || n.Embedded.Listen == "none" {
			return fmt.Errorf("the embedded NATS server has no listen address; pass --nats-url")
		}
		n.URL = "nats://" + n.Embedded.Listen
	}
	log := zap.NewNop()
	nc, err := bus.Connect(ctx, n, nil, log)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s (is deskrelay running?): %w", n.URL, err)
	}
	defer nc.Close()
	b, err := bus.New(nc, n, log, bus.NewMetrics(nil))
	if err != nil {
		return err
	}
	return fn(ctx, b)
}
