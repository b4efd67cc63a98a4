package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
)

func connectorsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "List connector types and check configured connectors against their vendor",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the connector types this binary knows",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			for _, t := range connectors.Types() {
				s, _ := connectors.Lookup(t)
				var can []string
				if s.NewWebhook != nil {
					can = append(can, "webhook")
				}
				if s.NewPoller != nil {
					can = append(can, "poll")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-13s %-13s %s\n", t, strings.Join(can, "+"), s.Summary)
			}
		},
	})
	var timeout time.Duration
	check := &cobra.Command{
		Use:   "check NAME",
		Short: "Make one authenticated read against the vendor API and report auth, permission, rate limit and clock skew",
		Long: `Check a configured connector against the real vendor API with the configured
credentials: one cheap authenticated read. Reports, in plain words, whether
the credentials are accepted and the read permitted, the rate-limit headroom
and the clock skew between this host and the vendor. Exits 1 if anything is
wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger("console", "error")
			if err != nil {
				return err
			}
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			name := args[0]
			con, ok := cfg.Connectors[name]
			if !ok {
				return fmt.Errorf("no connector %q in %s; configured: %s", name, g.configPath, strings.Join(sortedKeys(cfg.Connectors), ", "))
			}
			spec, ok := connectors.Lookup(con.Type)
			if !ok || spec.Check == nil {
				return fmt.Errorf("connector %q (type %s) has no vendor API to check", name, con.Type)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			src := connectors.Source{Name: name, Config: con, Log: log}
			fs, err := spec.Check(ctx, src)
			if err != nil {
				return cfg.Locate(err)
			}
			fmt.Fprint(cmd.OutOrStdout(), connectors.FormatFindings(name, fs))
			if slices.ContainsFunc(fs, func(f connectors.Finding) bool { return !f.OK }) {
				return exitError{code: 1}
			}
			return nil
		},
	}
	check.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	cmd.AddCommand(check)
	return cmd
}

func sendCmd(g *globals) *cobra.Command {
	var name, url string
	cmd := &cobra.Command{
		Use:   "send --connector NAME FILE",
		Short: "Post a payload to a running deskrelay, signed as the connector expects",
		Long: `Post FILE (or - for stdin) to /webhooks/NAME of a running deskrelay, with
the credentials or signature the connector's configuration demands, so that a
connector can be tried without the vendor. The bytes are sent exactly as they
are in the file. Prints deskrelay's answer; exits 1 unless it is 2xx.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return fmt.Errorf("--connector is required")
			}
			p, err := compile(g.configPath, zap.NewNop(), nil)
			if err != nil {
				return err
			}
			ep, ok := p.endpoints[name]
			if !ok {
				return fmt.Errorf("no webhook connector %q in %s; configured: %s", name, g.configPath, strings.Join(sortedKeys(p.endpoints), ", "))
			}
			body, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			if url == "" {
				url = "http://" + p.cfg.HTTP.Listen
			}
			target := strings.TrimRight(url, "/") + "/webhooks/" + name
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				return err
			}
			h, err := ep.Sign(body, time.Now())
			if err != nil {
				return fmt.Errorf("sign for connector %q: %w", name, err)
			}
			for k, vs := range h {
				req.Header[k] = vs
			}
			req.Header.Set("Content-Type", "application/json")
			client := &http.Client{Timeout: 30 * time.Second}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("post to %s (is deskrelay running?): %w", target, err)
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n%s", resp.Proto, resp.Status, answer)
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "connector", "", "configured connector (webhook source) name")
	cmd.Flags().StringVar(&url, "url", "", "base URL of the running deskrelay (default: http://<http.listen>)")
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
