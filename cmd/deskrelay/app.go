package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	_ "github.com/deskrelay/deskrelay/connectors/all"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/routing"
	"github.com/deskrelay/deskrelay/ticket"
)

// plan is a configuration that passed every check: the config and the
// parts compiled from it.
type plan struct {
	cfg       *config.Config
	endpoints map[string]*connectors.Endpoint
	surveys   *connectors.Auth // nil: POST /surveys is off
	pollers   map[string]connectors.Poller
	hints     map[ticket.ProfileName]ticket.Hints
	quadrant  enrichment.Quadrant
	tree      *routing.Tree
	profiles  []enrichment.Entry // from profiles.file, nil when unset
}

// compile loads the config file and has every package check its part, so
// that all mistakes are reported at once, each with its position. pm counts
// the vendor API calls of the built connectors (nil: unregistered).
func compile(path string, log *zap.Logger, pm *connectors.PollMetrics) (*plan, error) {
	cfg, err := config.Load(path)
	if cfg == nil {
		return nil, err
	}
	errs := config.AsErrors(err)
	p := &plan{cfg: cfg}
	if built, err := connectors.Build(cfg.Connectors, cfg.HTTP.MaxBodyBytes, log, pm); err != nil {
		errs = append(errs, config.AsErrors(err)...)
	} else {
		p.endpoints, p.pollers = built.Endpoints, built.Pollers
	}
	if cfg.Profiles.Surveys.Auth.Type != "" {
		if p.surveys, err = connectors.NewAuth("profiles.surveys.auth", cfg.Profiles.Surveys.Auth); err != nil {
			errs = append(errs, config.AsErrors(err)...)
		}
	}
	if err := enrichment.Check(cfg.Profiles, cfg.Connectors); err != nil {
		errs = append(errs, config.AsErrors(err)...)
	}
	if p.hints, err = enrichment.Hints(cfg.Profiles.Hints); err != nil {
		errs = append(errs, config.AsErrors(err)...)
	}
	qerr := error(nil)
	if p.quadrant, qerr = enrichment.NewQuadrant(cfg.Profiles); qerr != nil {
		errs = append(errs, config.AsErrors(qerr)...)
	}
	if p.tree, err = routing.New(cfg.Routing, routing.WithBaseHints(p.hints)); err != nil {
		errs = append(errs, config.AsErrors(err)...)
	}
	if f := cfg.Profiles.File; f != "" && qerr == nil {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		data, rerr := os.ReadFile(f)
		if rerr != nil {
			errs = append(errs, config.Errorf("profiles.file", "cannot read profile directory: %v", rerr))
		} else if p.profiles, err = enrichment.ParseFile(f, data, p.quadrant); err != nil {
			errs = append(errs, config.Errorf("profiles.file", "%v", err))
		}
	}
	if len(errs) > 0 {
		return nil, cfg.Locate(errs)
	}
	return p, nil
}

// newLogger builds the process logger: JSON (default) or console.
func newLogger(format, level string) (*zap.Logger, error) {
	var zc zap.Config
	switch format {
	case "", "json":
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console":
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("log format %q is not allowed; use json or console", format)
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q is not allowed; use debug, info, warn or error", level)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	return zc.Build()
}
