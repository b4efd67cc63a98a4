package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/enrichment/infer"
	"github.com/deskrelay/deskrelay/internal/bus"
	"github.com/deskrelay/deskrelay/internal/pipeline"
)

func serveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run deskrelay: webhook ingress, processing and publishing",
		Long: `Run every stage of deskrelay in one process. With no nats.url in the
config, an embedded NATS server with JetStream is started (file storage under
data_dir) and listens on nats.embedded.listen for downstream consumers.

Stops gracefully on SIGINT or SIGTERM: stops accepting webhooks, finishes the
tickets in flight, flushes NATS and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, g, nil)
		},
	}
	cmd.Flags().StringVar(&g.pprofAddr, "pprof", "", "serve Go's pprof profiles on this loopback address (e.g. 127.0.0.1:6060); off by default")
	return cmd
}

// servePprof serves net/http/pprof on its own loopback listener until ctx
// is done. It refuses an address beyond this host: profiles reveal memory.
func servePprof(ctx context.Context, addr string, log *zap.Logger) error {
	if !loopback(addr) || addr == "" || addr == "none" {
		return fmt.Errorf("--pprof %q: use a loopback address such as 127.0.0.1:6060", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("pprof listening", zap.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// addrs are where a running deskrelay listens.
type addrs struct {
	HTTP string // host:port
	NATS string // nats://host:port, "" when there is no embedded listener
}

// serve runs deskrelay until ctx is done. ready, when not nil, receives the
// listen addresses once deskrelay accepts webhooks (tests use it).
func serve(ctx context.Context, g *globals, ready chan<- addrs) error {
	bootLog, err := newLogger(g.logFormat, "info")
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	pollMetrics := connectors.NewPollMetrics(reg)
	p, err := compile(g.configPath, bootLog, pollMetrics)
	if err != nil {
		return err
	}
	cfg := p.cfg
	log, err := newLogger(firstNonEmpty(g.logFormat, cfg.Log.Format), cfg.Log.Level)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting deskrelay", zap.String("version", version), zap.String("config", g.configPath))

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name:        "deskrelay_build_info",
		Help:        "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	}).Set(1)

	// NATS: embedded unless a URL is given.
	var srv *server.Server
	if cfg.NATS.URL == "" {
		dataDir := cfg.DataDir
		if !filepath.IsAbs(dataDir) {
			dataDir = filepath.Join(filepath.Dir(g.configPath), dataDir)
		}
		if srv, err = bus.StartEmbedded(cfg.NATS, dataDir, log); err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		if !loopback(cfg.NATS.Embedded.Listen) {
			log.Warn("the embedded NATS server listens beyond this host and has no authentication: anyone who reaches it can read tickets and publish on the ingest subjects; keep it on 127.0.0.1, or run an external NATS with auth (nats.url)",
				zap.String("listen", cfg.NATS.Embedded.Listen))
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
			log.Info("embedded NATS stopped")
		}()
	}
	nc, err := bus.Connect(ctx, cfg.NATS, srv, log)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	b, err := bus.New(nc, cfg.NATS, log, bus.NewMetrics(reg))
	if err != nil {
		return err
	}
	if err := b.Provision(ctx); err != nil {
		return fmt.Errorf("provision JetStream streams and buckets: %w", err)
	}
	kv, err := b.ProfilesKV(ctx)
	if err != nil {
		return err
	}
	if p.profiles != nil {
		n, err := enrichment.Seed(ctx, kv, p.profiles, "file:"+filepath.Base(cfg.Profiles.File))
		if err != nil {
			return fmt.Errorf("seed profile directory from %s: %w", cfg.Profiles.File, err)
		}
		log.Info("profile directory seeded", zap.Int("rows", len(p.profiles)), zap.Int("new_keys", n))
	}
	var last []enrichment.Source
	if inf := cfg.Profiles.Inference; inf.Enabled {
		history, err := infer.NewMemory(inf.HistoryCallers, inf.HistoryPerCaller)
		if err != nil {
			return fmt.Errorf("profile inference: %w", err)
		}
		src, err := infer.New(infer.WithMinConfidence(inf.MinConfidence), infer.WithHistory(history), infer.WithMetrics(infer.NewMetrics(reg)))
		if err != nil {
			return fmt.Errorf("profile inference: %w", err)
		}
		last = append(last, src)
	}
	prof, profMetrics, err := buildProfiles(cfg, kv, nc, b.Subject, p.quadrant, log, reg, pollMetrics, last...)
	if err != nil {
		return err
	}
	dir := prof.Directory
	cons, err := b.IngestConsumer(ctx, cfg.Pipeline)
	if err != nil {
		return fmt.Errorf("create ingest consumer: %w", err)
	}
	enricher := profiler{chain: prof.Chain, familiar: prof.Familiar, m: profMetrics, log: log.Named("profiles")}
	proc := pipeline.New(cons, enricher, familiarRouter{tree: p.tree, familiar: prof.Familiar}, b, cfg.Pipeline, log, pipeline.NewMetrics(reg),
		pipeline.WithMaxPending(cfg.Pipeline.MaxPendingAcks), pipeline.WithReady(dir.Synced()), pipeline.WithConnection(nc))

	mux := http.NewServeMux()
	if p.surveys != nil {
		mux.Handle("POST /surveys", authenticated(p.surveys, cfg.HTTP.MaxBodyBytes, prof.Surveys))
	} else {
		log.Info("POST /surveys is off; set profiles.surveys.auth to take survey answers over HTTP")
	}
	ingress := connectors.NewIngress(p.endpoints, b, cfg.HTTP.PublishTimeout, cfg.HTTP.RetryAfter, log, connectors.NewMetrics(reg))
	if err := ingress.SetMaxInFlight(cfg.HTTP.MaxInFlight); err != nil {
		return err
	}
	if cfg.Pipeline.Inline {
		ingress.SetInline(proc)
		log.Info("webhooks are routed in the request (pipeline.inline); the ingest stream takes what cannot be routed at once, and polled tickets")
	}
	if cfg.HTTP.MaxBacklog > 0 {
		if err := ingress.SetMaxBacklog(proc.Backlog, uint64(cfg.HTTP.MaxBacklog)); err != nil {
			return err
		}
	}
	mux.Handle("/webhooks/{source}", ingress)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := b.Ready(rctx); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, "not ready", err.Error())
			return
		}
		select {
		case <-dir.Synced():
		default:
			writeStatus(w, http.StatusServiceUnavailable, "not ready", "profile directory is still loading")
			return
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	log.Info("listening", zap.String("http", ln.Addr().String()), zap.String("nats", natsAddr(cfg.NATS.URL, srv)))
	if ready != nil {
		a := addrs{HTTP: ln.Addr().String()}
		if srv != nil && srv.Addr() != nil {
			a.NATS = "nats://" + srv.Addr().String()
		}
		ready <- a
	}

	// The processor and the directory stop when work is cancelled, which
	// happens only after the HTTP server has stopped accepting.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	eg, ectx := errgroup.WithContext(work)
	eg.Go(func() error { return prof.Run(ectx) })
	if g.pprofAddr != "" {
		eg.Go(func() error { return servePprof(ectx, g.pprofAddr, log) })
	}
	eg.Go(func() error {
		// Until the directory is loaded every caller would look unknown.
		select {
		case <-dir.Synced():
		case <-ectx.Done():
			return nil
		}
		return proc.Run(ectx)
	})
	if len(p.pollers) > 0 {
		cursors, err := b.Cursors(ctx)
		if err != nil {
			return err
		}
		leases, err := b.Leases(ctx)
		if err != nil {
			return err
		}
		holder := replicaName()
		for name, poller := range p.pollers {
			con := cfg.Connectors[name]
			r := &connectors.PollRunner{
				Source: name, Holder: holder, Poller: poller, Sink: b, DLQ: b, Cursors: cursors, Lease: leases,
				Interval: con.Poll.Interval, LeaseTTL: con.Poll.LeaseTTL, Log: log.Named("poll"), Metrics: pollMetrics,
			}
			eg.Go(func() error {
				if err := r.Run(ectx); !errors.Is(err, connectors.ErrPollerStopped) {
					return err
				}
				// Logged and flagged by the runner; webhooks and the
				// other pollers go on.
				return nil
			})
		}
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.Serve(ln) }()

	// SIGHUP reloads the routing rules and profile hints: the whole config
	// is checked again, and only a config without errors replaces the tree.
	reloaded := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "deskrelay_config_last_reload_successful",
		Help: "1 if the last configuration reload (SIGHUP) succeeded or none was asked for, 0 if it failed.",
	})
	reloaded.Set(1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var runErr error
	stageFailed := false
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			break wait
		case err := <-httpErr:
			runErr = fmt.Errorf("http server: %w", err)
			break wait
		case <-ectx.Done():
			stageFailed = true
			break wait
		case <-hup:
			np, err := compile(g.configPath, log, nil)
			if err != nil {
				reloaded.Set(0)
				log.Error("config reload failed; the running rules stay", zap.Error(err))
				continue
			}
			proc.SetRouter(familiarRouter{tree: np.tree, familiar: prof.Familiar})
			reloaded.Set(1)
			log.Info("config reloaded: routing rules and profile hints replaced; other changes need a restart")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown incomplete", zap.Error(err))
	}
	cancelWork()
	if err := eg.Wait(); stageFailed || (err != nil && runErr == nil && !errors.Is(err, context.Canceled)) {
		runErr = fmt.Errorf("a stage stopped unexpectedly: %w", err)
		log.Error("stopping: a stage failed", zap.Error(err))
	}
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", zap.Error(err))
	}
	for nc.IsDraining() {
		select {
		case <-sctx.Done():
			log.Warn("nats drain did not finish in time")
			return runErr
		case <-time.After(10 * time.Millisecond):
		}
	}
	log.Info("stopped")
	return runErr
}

// authenticated checks a request's credentials over its body, as the
// webhook ingress does, before next sees it.
func authenticated(a *connectors.Auth, maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", maxBody))
			return
		}
		if err := a.Verify(r.Header, body); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="deskrelay"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// loopback reports whether a listen address stays on this host.
func loopback(listen string) bool {
	if listen == "" || listen == "none" {
		return true
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// replicaName identifies this process in poll leases: host and pid.
func replicaName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

func writeStatus(w http.ResponseWriter, code int, status, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
	}{status, reason})
}

func natsAddr(url string, srv *server.Server) string {
	if url != "" {
		return "external"
	}
	if addr := srv.Addr(); addr != nil {
		return "nats://" + addr.String()
	}
	return "in-process only"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
