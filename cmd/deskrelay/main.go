// Command deskrelay takes tickets out of ITSM tools, attaches the caller's
// IT profile, decides tier, channel and priority, and publishes the result
// over NATS JetStream. See the README for the quick start.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/deskrelay/deskrelay/config"
)

// version is set at build time with -ldflags "-X main.version=…"; it falls
// back to the module version recorded by the Go toolchain.
var version = ""

func init() {
	if version != "" {
		return
	}
	version = "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
}

// globals are the flags every command shares.
type globals struct {
	configPath string
	logFormat  string
	pprofAddr  string // serve --pprof
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ces config.Errors
	if errors.As(err, &ces) {
		fmt.Fprintf(stderr, "%s\n%d error(s) in the configuration\n", ces.Error(), len(ces))
		return 2
	}
	fmt.Fprintf(stderr, "deskrelay: %v\n", err)
	return 1
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "deskrelay",
		Short:         "Route IT service desk tickets by the caller's IT profile, over NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "deploy/examples/deskrelay.yaml", "configuration file (env DESKRELAY_CONFIG)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: json or console (default: log.format of the config)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("config") {
			if p := os.Getenv("DESKRELAY_CONFIG"); p != "" {
				g.configPath = p
			}
		}
		return nil
	}
	root.AddCommand(serveCmd(g), validateCmd(g), routeCmd(g), profilesCmd(g), connectorsCmd(g), sendCmd(g), versionCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "deskrelay %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

func validateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and report every mistake with its position",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger("console", "error")
			if err != nil {
				return err
			}
			p, err := compile(g.configPath, log, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (%d webhook sources, %d pollers, %d profile rows)\n", g.configPath, len(p.endpoints), len(p.pollers), len(p.profiles))
			return nil
		},
	}
}
