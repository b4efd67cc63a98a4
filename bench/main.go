// Command bench measures deskrelay against its own ceiling in one run.
//
//	go run ./bench -duration 20s
//
// It builds deskrelay, starts it as a subprocess on the example config
// (embedded NATS, file storage, the full rule set) with a generated
// directory of 50,000 callers, once with pipeline.inline (target inline)
// and once as the config has it (target deskrelay, two stages), and
// drives each over keep-alive HTTP with about 1.5 KB webhooks: first
// closed loop (N senders, as fast as it answers: the maximum
// throughput), then open loop at fixed rates (by default half of the
// first target's maximum, the same rate for every server), measuring ingress latency (POST → 202) and end
// to end latency (POST → routed message at a JetStream consumer) with HDR
// histograms, throughput, errors, and the subprocess's RSS and CPU time.
// Then it does the same to the ceiling, a bare handler on the same NATS
// settings that only decodes the body and stores it with a Nats-Msg-Id
// (see serveCeiling), and to the relay, the ceiling plus a bare processing
// stage that moves each stored ticket unchanged to the routed stream (the
// NATS work deskrelay's two stages need, without deskrelay's own), and
// prints every figure with the ratios inline ÷ ceiling, deskrelay ÷
// ceiling and deskrelay ÷ relay. Results go to bench/results/<date>-<git hash>.json.
//
// Traffic goes only to 127.0.0.1, every phase is bounded in time and in
// requests, and the subprocesses and temporary directories are removed on
// exit and on Ctrl-C. docs/performance.md explains every flag and figure.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// options are the command-line flags.
type options struct {
	duration, warmup, drain, startTimeout time.Duration
	senders, workers, callers             int
	maxRequests                           int64
	openRates                             string
	source                                string
	syncInterval                          string
	targets                               string
	config                                string
	out                                   string
	bin                                   string
	serveArgs                             string
	env                                   []string // KEY=VALUE settings for deskrelay
	pprofAddr                             string
	logs                                  bool
	repeat                                int
	nats                                  string // "embedded" or "external"
	natsURL                               string // internal: the ceiling's external server
	natsDir                               string // internal: run as the NATS server subprocess
	ceilingDir                            string // internal: run as the ceiling subprocess
	relay                                 bool   // internal: with ceilingDir, run as the relay
	ceilingBytes                          int    // the ceiling's and relay's stored body, 0: as posted
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "length of each measured phase (closed loop, each open-loop rate)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "closed-loop load before the measured phases of each server, not reported")
	fs.DurationVar(&o.drain, "drain", 60*time.Second, "after a phase, how long to wait for the accepted tickets to arrive at the consumer")
	fs.DurationVar(&o.startTimeout, "start-timeout", 3*time.Minute, "how long a server may take to become ready (deskrelay seeds its directory)")
	fs.IntVar(&o.senders, "senders", 32, "closed loop: concurrent senders, each with its own keep-alive connection")
	fs.IntVar(&o.workers, "max-inflight", 512, "open loop: most requests in flight; a request due beyond that is dropped and counted")
	fs.IntVar(&o.callers, "callers", 50000, "callers in the generated profile directory")
	fs.Int64Var(&o.maxRequests, "max-requests", 2_000_000, "most requests per phase")
	fs.StringVar(&o.openRates, "rates", "0.5x", "open-loop rates, comma-separated: requests/s (\"2000\") or multiples (\"0.5x\", \"2x\") of the first target's closed-loop end-to-end throughput, the same for every server (with inline or deskrelay among the targets, one of them must be first); empty: no open loop")
	fs.StringVar(&o.source, "source", "generic", "webhook kind: generic (normalised tickets, the example config's source) or servicenow (Table API records to a servicenow source added to the config copy)")
	fs.StringVar(&o.syncInterval, "sync-interval", "2m", "JetStream sync_interval of both servers: a duration or \"always\"")
	fs.StringVar(&o.targets, "targets", "inline,deskrelay,ceiling,relay", "which servers to measure, in order: inline (deskrelay, the example config with pipeline.inline: true), deskrelay (the example config as it is: two stages), the ceiling, the relay (the ceiling plus a bare ingest → routed stage: the NATS work deskrelay's two stages need)")
	fs.StringVar(&o.config, "config", "deploy/examples/deskrelay.yaml", "deskrelay config to copy (relative to the module root)")
	fs.StringVar(&o.out, "out", "bench/results", "directory of the JSON result and profiles (relative to the module root)")
	fs.StringVar(&o.bin, "deskrelay-bin", "", "use this deskrelay binary instead of building ./cmd/deskrelay")
	fs.StringVar(&o.serveArgs, "serve-args", "", "extra arguments for deskrelay serve, space-separated (e.g. \"--pprof 127.0.0.1:6060\")")
	fs.Func("deskrelay-env", "extra environment for deskrelay, KEY=VALUE, comma-separated or the flag repeated: DESKRELAY_* settings (e.g. \"DESKRELAY_PIPELINE_WORKERS=32\"), config experiments without editing the copy, or the Go runtime's GOGC, GOMEMLIMIT, GOMAXPROCS and GODEBUG, for deskrelay alone (GODEBUG takes the rest of its flag, commas and all: -deskrelay-env GODEBUG=gctrace=1,madvdontneed=1)", func(v string) error {
		kvs, err := parseEnv(v)
		o.env = append(o.env, kvs...)
		return err
	})
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "deskrelay's pprof listener (host:port): fetch a CPU profile during the closed loop and heap and allocs profiles after it; the ceiling's are fetched too")
	fs.StringVar(&o.nats, "nats", "embedded", "embedded: each server embeds its nats-server, as deskrelay's quick start does; external: the harness starts a nats-server process (same settings) beside each server, whose RSS and CPU are then reported apart")
	fs.StringVar(&o.natsURL, "nats-url", "", "internal: with -serve-ceiling, the external NATS server")
	fs.StringVar(&o.natsDir, "serve-nats", "", "internal: run a nats-server with its store in this directory")
	fs.IntVar(&o.repeat, "repeat", 1, "run the whole sequence of servers this many times and report the median of each figure and of each ratio (ratios are taken within each repetition)")
	fs.BoolVar(&o.logs, "logs", false, "keep each server's stderr (deskrelay's log) as <out>/<result>.<server>.log")
	fs.IntVar(&o.ceilingBytes, "ceiling-body-bytes", 0, "the ceiling and the relay store each body shorter than this padded with trailing spaces to this many bytes (a longer one as it is), with the seven Deskrelay-* headers of a routed message: a stored message of the weight of deskrelay's routed one (\"stored message body\" in deskrelay's column), to tell what the contract's bytes cost from what deskrelay's work costs; 0: the body as posted, with the ticket id header")
	fs.StringVar(&o.ceilingDir, "serve-ceiling", "", "internal: run the ceiling server with its store in this directory")
	fs.BoolVar(&o.relay, "relay", false, "internal: with -serve-ceiling, run the relay")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.duration <= 0 || o.duration > time.Hour:
		return nil, fmt.Errorf("-duration %s: use 1s…1h", o.duration)
	case o.senders < 1 || o.senders > 4096:
		return nil, fmt.Errorf("-senders %d: use 1…4096", o.senders)
	case o.workers < 1 || o.workers > 65536:
		return nil, fmt.Errorf("-max-inflight %d: use 1…65536", o.workers)
	case o.callers < 1 || o.callers > 10_000_000:
		return nil, fmt.Errorf("-callers %d: use 1…10000000", o.callers)
	case o.maxRequests < 1 || o.maxRequests > 100_000_000:
		return nil, fmt.Errorf("-max-requests %d: use 1…100000000", o.maxRequests)
	case o.source != "generic" && o.source != "servicenow":
		return nil, fmt.Errorf("-source %q: use generic or servicenow", o.source)
	case o.repeat < 1 || o.repeat > 20:
		return nil, fmt.Errorf("-repeat %d: use 1…20", o.repeat)
	case o.nats != "embedded" && o.nats != "external":
		return nil, fmt.Errorf("-nats %q: use embedded or external", o.nats)
	case o.ceilingBytes < 0 || o.ceilingBytes > 512<<10:
		return nil, fmt.Errorf("-ceiling-body-bytes %d: use 0…524288", o.ceilingBytes)
	}
	rates, err := parseRates(o.openRates)
	if err != nil {
		return nil, err
	}
	targets := strings.Split(o.targets, ",")
	anyDeskrelay := false
	for _, t := range targets {
		if t != "deskrelay" && t != "inline" && t != "ceiling" && t != "relay" {
			return nil, fmt.Errorf("-targets: %q is not deskrelay, inline, ceiling or relay", t)
		}
		anyDeskrelay = anyDeskrelay || isDeskrelay(t)
	}
	if anyDeskrelay && !isDeskrelay(targets[0]) && slices.ContainsFunc(rates, func(r rate) bool { return r.relative }) {
		return nil, fmt.Errorf("-rates %s: relative rates are multiples of the first target's maximum, and every server runs them; put inline or deskrelay first in -targets (%s), or give requests/s", o.openRates, o.targets)
	}
	return o, nil
}

// parseEnv splits one -deskrelay-env value into KEY=VALUE settings: at
// commas, except that GODEBUG takes the rest of the value (its own
// settings are comma-separated).
func parseEnv(v string) ([]string, error) {
	var out []string
	for v != "" {
		kv := v
		if !strings.HasPrefix(v, "GODEBUG=") {
			kv, v, _ = strings.Cut(v, ",")
		} else {
			v = ""
		}
		if kv == "" {
			continue
		}
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case k == "DESKRELAY_PIPELINE_INLINE":
			return nil, fmt.Errorf("%q: each target sets pipeline.inline itself; measure it with -targets inline (or deskrelay for two stages)", kv)
		case !ok || !deskrelayEnv(k):
			return nil, fmt.Errorf("%q is not KEY=VALUE with a DESKRELAY_* key or GOGC, GOMEMLIMIT, GOMAXPROCS, GODEBUG (a value other than GODEBUG's cannot hold a comma)", kv)
		}
		out = append(out, kv)
	}
	return out, nil
}

// deskrelayEnv tells the variables -deskrelay-env may set.
func deskrelayEnv(key string) bool {
	switch key {
	case "GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS":
		return true
	}
	return strings.HasPrefix(key, "DESKRELAY_")
}

// rate is an open-loop rate: absolute (requests/s) or relative to
// deskrelay's maximum.
type rate struct {
	value    float64
	relative bool
}

func (r rate) String() string {
	if r.relative {
		return strconv.FormatFloat(r.value, 'g', -1, 64) + "x"
	}
	return strconv.FormatFloat(r.value, 'g', -1, 64) + "/s"
}

func parseRates(s string) ([]rate, error) {
	var out []rate
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r := rate{}
		num := f
		if strings.HasSuffix(f, "x") {
			r.relative, num = true, strings.TrimSuffix(f, "x")
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v <= 0 || v > 1e6 {
			return nil, fmt.Errorf("-rates: %q is not a rate; use requests/s (2000) or a multiple of the maximum (0.5x)", f)
		}
		r.value = v
		out = append(out, r)
	}
	return out, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	listening := func(httpAddr, natsURL string) {
		line, _ := json.Marshal(map[string]string{"msg": "listening", "http": httpAddr, "nats": natsURL})
		fmt.Fprintf(os.Stderr, "%s\n", line)
	}
	switch {
	case o.natsDir != "":
		err = serveNATS(ctx, o.natsDir, o.syncInterval, listening)
	case o.ceilingDir != "":
		err = serveCeiling(ctx, o.ceilingDir, o.syncInterval, o.source, o.natsURL, o.relay, o.ceilingBytes, listening)
	default:
		err = run(ctx, o)
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// Result is the JSON result file.
type Result struct {
	Date     string          `json:"date"`
	Git      string          `json:"git"`
	Dirty    bool            `json:"dirty"` // the work tree had uncommitted changes
	Command  string          `json:"command"`
	Machine  Machine         `json:"machine"`
	Source   string          `json:"source"`
	Sync     string          `json:"sync_interval"`
	NATS     string          `json:"nats"` // embedded or external
	Callers  int             `json:"callers"`
	Duration string          `json:"phase_duration"`
	Senders  int             `json:"senders"`
	Targets  []*TargetResult `json:"targets"`
	Ratios   []PhaseRatios   `json:"ratios,omitempty"` // deskrelay ÷ ceiling, by phase
	// RelayRatios are deskrelay ÷ relay, by phase: what deskrelay's own
	// work costs on top of the NATS work its two stages need.
	RelayRatios []PhaseRatios `json:"relay_ratios,omitempty"`
	// InlineRatios are inline ÷ ceiling, by phase: deskrelay with
	// pipeline.inline, one store per ticket as the ceiling does.
	InlineRatios []PhaseRatios `json:"inline_ratios,omitempty"`
	// Repeats holds every repetition's servers with -repeat; Targets and
	// every ratio are then the medians over them.
	Repeats   []*TargetResult `json:"repeats,omitempty"`
	Profiles  []string        `json:"profiles,omitempty"`
	BodyBytes int             `json:"body_bytes"` // of the first request
}

// Machine is where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// TargetResult is one server's phases.
type TargetResult struct {
	Name         string        `json:"name"`
	Repeat       int           `json:"repeat,omitempty"` // which repetition (-repeat); 0 in a median
	StartSeconds float64       `json:"start_seconds"`    // until ready
	Phases       []PhaseResult `json:"phases"`
}

// PhaseResult is what one phase measured.
type PhaseResult struct {
	Name        string           `json:"name"` // "closed" or "open 0.5x"
	Senders     int              `json:"senders,omitempty"`
	OfferedRate float64          `json:"offered_rate,omitempty"` // requests/s
	SendSeconds float64          `json:"send_seconds"`
	Sent        int64            `json:"sent"`     // answered or failed
	Accepted    int64            `json:"accepted"` // 202
	Errors      int64            `json:"errors"`   // not 202, transport errors, dropped
	Dropped     int64            `json:"dropped"`  // open loop: not sent, no free worker
	Codes       map[string]int64 `json:"codes"`
	Received    int64            `json:"received"` // at the consumer
	Lost        int64            `json:"lost"`     // accepted, not received within the drain time
	IngressRate float64          `json:"ingress_per_second"`
	E2ERate     float64          `json:"e2e_per_second"`
	Ingress     Latency          `json:"ingress_ms"`
	E2E         Latency          `json:"e2e_ms"`
	// SendLag is, in the open loop, how late the harness's dispatcher
	// handed each request to its workers after its due time: included in
	// Ingress and E2E, and not the server's doing. Zero in the closed loop.
	SendLag     Latency   `json:"send_lag_ms,omitzero"`
	MsgBytes    float64   `json:"message_bytes"` // mean body received: stored per ticket in the stream read
	RSSPeakMB   float64   `json:"rss_peak_mb"`
	RSSEndMB    float64   `json:"rss_end_mb"`
	RSSSeries   []float64 `json:"rss_mb_every_5s"` // from the phase's start through its drain
	CPUSeconds  float64   `json:"cpu_seconds"`
	CPUPer1000  float64   `json:"cpu_seconds_per_1000"`
	LoadCPU1000 float64   `json:"harness_cpu_seconds_per_1000"`
	// With -nats external, the target's nats-server process.
	NATSRSSPeakMB  float64 `json:"nats_rss_peak_mb,omitempty"`
	NATSCPUPer1000 float64 `json:"nats_cpu_seconds_per_1000,omitempty"`
}

// Latency is a distribution in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
	N    int64   `json:"n"`
}

func latency(h *hdrhistogram.Histogram) Latency {
	ms := func(v int64) float64 { return float64(v) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000, N: h.TotalCount(),
	}
}

// PhaseRatios are one server's figures divided by another's.
type PhaseRatios struct {
	Phase  string             `json:"phase"`
	Ratios map[string]float64 `json:"ratios"`
}

func run(ctx context.Context, o *options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	rates, _ := parseRates(o.openRates)
	tmp, err := os.MkdirTemp("", "deskrelay-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	git, dirty := gitVersion(root)
	now := time.Now()
	res := &Result{
		Date: now.UTC().Format(time.RFC3339), Git: git, Dirty: dirty, Command: command(os.Args[1:]),
		Machine: Machine{CPUs: runtime.NumCPU(), Model: cpuModel(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Source:  o.source, Sync: o.syncInterval, NATS: o.nats, Callers: o.callers, Duration: o.duration.String(), Senders: o.senders,
	}
	res.BodyBytes = len((&payload{source: o.source, run: "0", callers: o.callers, now: now}).body(0))
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	stem := fmt.Sprintf("%s-%s", now.Format("20060102-150405"), git)
	run := strconv.FormatInt(now.Unix()%100000, 36)
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)

	var seq int64
	for rep := 1; rep <= o.repeat; rep++ {
		var maxRate float64 // this repetition's first target's closed-loop end-to-end throughput
		for name := range strings.SplitSeq(o.targets, ",") {
			if err := ctx.Err(); err != nil {
				return err
			}
			suffix := "" // of the files and directories of one repetition
			if o.repeat > 1 {
				suffix = "." + strconv.Itoa(rep)
				fmt.Fprintf(os.Stderr, "bench: repetition %d of %d\n", rep, o.repeat)
			}
			dir := filepath.Join(tmp, name+suffix)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			var natsSrv *server // -nats external: the target's own nats-server process
			if o.nats == "external" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "bench: starting nats-server for %s\n", name)
				nc := exec.Command(self, "-serve-nats", filepath.Join(dir, "nats"), "-sync-interval", o.syncInterval)
				nc.Env = cleanEnv()
				if natsSrv, err = startServer(ctx, name+" nats-server", nc, o.startTimeout, nil); err != nil {
					return err
				}
				defer natsSrv.stop() // also stopped right after its target, below
			}
			var cmd *exec.Cmd
			path, stream := "/webhooks/generic", "DESKRELAY_INGEST"
			switch name {
			case "deskrelay", "inline":
				bin := o.bin
				if bin == "" {
					bin = filepath.Join(tmp, "bin", "deskrelay")
					o.bin = bin // built once for all repetitions
					fmt.Fprintf(os.Stderr, "bench: building ./cmd/deskrelay\n")
					build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/deskrelay")
					build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
					if err := build.Run(); err != nil {
						return fmt.Errorf("build deskrelay: %w", err)
					}
				}
				cfgPath, err := writeConfig(filepath.Join(root, o.config), dir, token, o.callers, o.source)
				if err != nil {
					return err
				}
				cmd = exec.Command(bin, append([]string{"serve", "--config", cfgPath}, strings.Fields(o.serveArgs)...)...)
				cmd.Env = append(cleanEnv(),
					"DESKRELAY_HTTP_LISTEN=127.0.0.1:0",
					"DESKRELAY_NATS_EMBEDDED_LISTEN=127.0.0.1:0",
					"DESKRELAY_NATS_EMBEDDED_SYNC_INTERVAL="+o.syncInterval)
				if natsSrv != nil {
					cmd.Env = append(cmd.Env, "DESKRELAY_NATS_URL="+natsSrv.NATS)
				}
				cmd.Env = append(cmd.Env, o.env...)
				// Last, so that it wins over -deskrelay-env and the
				// config: each target is the mode it is named for.
				cmd.Env = append(cmd.Env, "DESKRELAY_PIPELINE_INLINE="+strconv.FormatBool(name == "inline"))
				stream = "DESKRELAY_ROUTED"
				if o.source == "servicenow" {
					path = "/webhooks/" + snowSource
				}
			case "ceiling", "relay":
				self, err := os.Executable()
				if err != nil {
					return err
				}
				natsURL := ""
				if natsSrv != nil {
					natsURL = natsSrv.NATS
				}
				cmd = exec.Command(self, ceilingArgs(o, dir, natsURL, name == "relay")...)
				cmd.Env = cleanEnv()
				if name == "relay" {
					stream = "DESKRELAY_ROUTED"
				}
			}
			fmt.Fprintf(os.Stderr, "bench: starting %s\n", name)
			started := time.Now()
			var logTo io.Writer
			if o.logs {
				f, err := os.Create(filepath.Join(out, stem+"."+name+suffix+".log"))
				if err != nil {
					return err
				}
				defer f.Close()
				logTo = f
			}
			srv, err := startServer(ctx, name, cmd, o.startTimeout, logTo)
			if err != nil {
				return err
			}
			tr := &TargetResult{Name: name, Repeat: rep, StartSeconds: time.Since(started).Seconds()}
			res.Targets = append(res.Targets, tr)
			err = func() error {
				defer func() {
					if err := srv.stop(); err != nil {
						fmt.Fprintf(os.Stderr, "bench: %v\n", err)
					}
					if natsSrv != nil {
						if err := natsSrv.stop(); err != nil {
							fmt.Fprintf(os.Stderr, "bench: %v\n", err)
						}
					}
					// The store of a server that stopped, removed now: its
					// dirty pages are dropped, not written back by the
					// kernel while the next server is measured.
					if err := os.RemoveAll(dir); err != nil {
						fmt.Fprintf(os.Stderr, "bench: %v\n", err)
					}
				}()
				l := newLoader("http://"+srv.HTTP+path, token, o.source, run, o.callers, max(o.senders, o.workers), now)
				defer l.client.CloseIdleConnections() // before srv.stop: an unused connection holds a graceful shutdown 5 s
				natsURL := srv.NATS
				if natsSrv != nil {
					natsURL = natsSrv.NATS
				}
				stopConsumer, err := l.consume(ctx, natsURL, stream)
				if err != nil {
					return err
				}
				defer stopConsumer()
				m := &meter{srv: srv, nats: natsSrv, l: l, drain: o.drain}

				if o.warmup > 0 {
					fmt.Fprintf(os.Stderr, "bench: %s: warm-up, %s closed loop\n", name, o.warmup)
					p := newPhase(seq, o.maxRequests)
					m.measure(ctx, p, func() { l.closedLoop(ctx, p, o.senders, o.warmup) })
					seq = p.next.Load()
				}
				fmt.Fprintf(os.Stderr, "bench: %s: closed loop, %d senders, %s\n", name, o.senders, o.duration)
				p := newPhase(seq, o.maxRequests)
				var profiles []string
				var wg sync.WaitGroup
				if o.pprofAddr != "" {
					addr := o.pprofAddr
					if !isDeskrelay(name) {
						addr = srv.HTTP
					}
					secs := max(1, int((o.duration-time.Second)/time.Second))
					wg.Go(func() {
						f := filepath.Join(out, stem+"."+name+suffix+".cpu.pprof")
						if err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), f); err != nil {
							fmt.Fprintf(os.Stderr, "bench: cpu profile of %s: %v\n", name, err)
							return
						}
						profiles = append(profiles, f)
					})
					defer func() {
						wg.Wait()
						for _, kind := range []string{"heap", "allocs"} {
							f := filepath.Join(out, stem+"."+name+suffix+"."+kind+".pprof")
							if err := fetch(ctx, "http://"+addr+"/debug/pprof/"+kind, f); err != nil {
								fmt.Fprintf(os.Stderr, "bench: %s profile of %s: %v\n", kind, name, err)
								continue
							}
							profiles = append(profiles, f)
						}
						res.Profiles = append(res.Profiles, profiles...)
					}()
				}
				pr := m.measure(ctx, p, func() { l.closedLoop(ctx, p, o.senders, o.duration) })
				pr.Name, pr.Senders = "closed", o.senders
				tr.Phases = append(tr.Phases, pr)
				seq = p.next.Load()
				wg.Wait()
				if pr.Accepted == 0 {
					// Nothing to measure: every ratio would be 0 or NaN.
					return fmt.Errorf("%s accepted none of the %d requests of the closed loop (answers %v); -logs keeps its log", name, pr.Sent, pr.Codes)
				}
				// Relative rates are multiples of the first target's
				// maximum (a deskrelay target's, when there is one:
				// parseFlags), for every target: all are compared at the
				// same offered load.
				if maxRate == 0 {
					maxRate = pr.E2ERate
				}

				for _, r := range rates {
					if err := ctx.Err(); err != nil {
						return err
					}
					perSec := r.value
					if r.relative {
						perSec = r.value * maxRate
					}
					if perSec < 1 {
						if maxRate == 0 {
							return fmt.Errorf("open loop %s: the first target's closed loop delivered nothing end to end, so relative rates have no base; give requests/s", r)
						}
						return fmt.Errorf("open loop %s: %.2f requests/s is too low", r, perSec)
					}
					n := min(o.maxRequests, int64(perSec*o.duration.Seconds())+1)
					fmt.Fprintf(os.Stderr, "bench: %s: open loop %s = %.0f requests/s, %s\n", name, r, perSec, o.duration)
					p := newPhase(seq, n)
					pr := m.measure(ctx, p, func() { l.openLoop(ctx, p, perSec, o.workers, o.duration) })
					pr.Name, pr.OfferedRate = "open "+r.String(), perSec
					tr.Phases = append(tr.Phases, pr)
					seq = p.next.Load()
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
	}
	if o.repeat > 1 {
		res.Repeats = res.Targets
		res.Targets = medianTargets(res.Repeats)
		res.Ratios = medianRatios(res.Repeats, "deskrelay", "ceiling")
		res.RelayRatios = medianRatios(res.Repeats, "deskrelay", "relay")
		res.InlineRatios = medianRatios(res.Repeats, "inline", "ceiling")
	} else {
		res.Ratios = ratios(res.Targets, "deskrelay", "ceiling")
		res.RelayRatios = ratios(res.Targets, "deskrelay", "relay")
		res.InlineRatios = ratios(res.Targets, "inline", "ceiling")
	}
	printTable(os.Stdout, res)
	f := filepath.Join(out, stem+".json")
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(f, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", f)
	return nil
}

// isDeskrelay tells the targets that run deskrelay from the references.
func isDeskrelay(target string) bool { return target == "deskrelay" || target == "inline" }

// meter measures phases against one server.
type meter struct {
	srv   *server
	nats  *server // -nats external: the target's nats-server, else nil
	l     *loader
	drain time.Duration
}

// measure runs load as phase p, waits for the accepted tickets to arrive,
// and returns the figures.
func (m *meter) measure(ctx context.Context, p *phase, load func()) PhaseResult {
	pid := m.srv.cmd.Process.Pid
	m.l.cur.Store(p)
	before, _ := readProc(pid)
	selfBefore, _ := readProc(os.Getpid())
	natsPid := 0
	if m.nats != nil {
		natsPid = m.nats.cmd.Process.Pid
	}
	natsBefore, _ := readProc(natsPid)
	var peak, natsPeak int64
	var series []float64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			if st, err := readProc(pid); err == nil {
				peak = max(peak, st.RSS)
				if i%50 == 0 {
					series = append(series, math.Round(float64(st.RSS)/(1<<20)))
				}
			}
			if natsPid != 0 {
				if st, err := readProc(natsPid); err == nil {
					natsPeak = max(natsPeak, st.RSS)
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	load()
	sendEnd := time.Now()
	lost := drain(ctx, p, m.drain)
	close(stop)
	wg.Wait()
	after, _ := readProc(pid)
	selfAfter, _ := readProc(os.Getpid())
	natsAfter, _ := readProc(natsPid)

	// Messages that arrive late still reach p: read what they change under
	// its lock, at one moment.
	p.mu.Lock()
	r := PhaseResult{
		SendSeconds: sendEnd.Sub(start).Seconds(),
		Accepted:    p.accepted.Load(),
		Dropped:     p.dropped.Load(),
		Received:    p.received.Load(),
		Lost:        lost,
		Ingress:     latency(p.ingress),
		E2E:         latency(p.e2e),
		SendLag:     latency(p.lag),
		RSSPeakMB:   float64(max(peak, after.RSS)) / (1 << 20),
		RSSEndMB:    float64(after.RSS) / (1 << 20),
		RSSSeries:   series,
		CPUSeconds:  (after.CPU - before.CPU).Seconds(),
		Codes:       maps.Clone(p.codes),
	}
	receivedBytes := p.bytes.Load()
	p.mu.Unlock()
	for _, n := range r.Codes {
		r.Sent += n
	}
	r.Errors = r.Sent - r.Accepted + r.Dropped
	if r.SendSeconds > 0 {
		r.IngressRate = float64(r.Accepted) / r.SendSeconds
	}
	if last := p.lastRecv.Load(); last > 0 {
		r.E2ERate = float64(r.Received) / time.Unix(0, last).Sub(start).Seconds()
	}
	if r.Received > 0 {
		r.CPUPer1000 = r.CPUSeconds / float64(r.Received) * 1000
		r.MsgBytes = float64(receivedBytes) / float64(r.Received)
		r.LoadCPU1000 = (selfAfter.CPU - selfBefore.CPU).Seconds() / float64(r.Received) * 1000
		if natsPid != 0 {
			r.NATSCPUPer1000 = (natsAfter.CPU - natsBefore.CPU).Seconds() / float64(r.Received) * 1000
		}
	}
	if natsPid != 0 {
		r.NATSRSSPeakMB = float64(max(natsPeak, natsAfter.RSS)) / (1 << 20)
	}
	m.l.cur.Store(nil)
	return r
}

// fetch saves the body of a GET to file.
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeConfig writes a copy of the config at src into dir, with the
// bearer token and the generated profile directory it refers to beside
// it, and for -source servicenow a servicenow source "snow" with the same
// token. It returns the copy's path.
func writeConfig(src, dir, token string, callers int, source string) (string, error) {
	cfg, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	text := string(cfg)
	for _, want := range []string{"token: file:generic.token", "file: profiles.csv", "\nconnectors:\n"} {
		if !strings.Contains(text, want) {
			return "", fmt.Errorf("%s: no %q; the harness expects the example config's layout", src, strings.TrimSpace(want))
		}
	}
	if source == "servicenow" {
		text = strings.Replace(text, "\nconnectors:\n", "\nconnectors:\n"+
			"  "+snowSource+":\n    type: servicenow\n    auth:\n      type: bearer\n      token: file:generic.token\n", 1)
	}
	for name, data := range map[string][]byte{
		"deskrelay.yaml": []byte(text),
		"generic.token":  []byte(token + "\n"),
		"profiles.csv":   profileCSV(callers),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "deskrelay.yaml"), nil
}

// cleanEnv is the environment without DESKRELAY_* overrides, which would
// change the config under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DESKRELAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// ceilingArgs returns the arguments of the harness re-executed as the
// ceiling (or the relay) with its store in dir, on the NATS server at
// natsURL when that is set: the settings of o it must share with the
// other servers of the run.
func ceilingArgs(o *options, dir, natsURL string, relay bool) []string {
	args := []string{"-serve-ceiling", dir, "-sync-interval", o.syncInterval, "-source", o.source,
		"-ceiling-body-bytes", strconv.Itoa(o.ceilingBytes)}
	if natsURL != "" {
		args = append(args, "-nats-url", natsURL)
	}
	if relay {
		args = append(args, "-relay")
	}
	return args
}

// command is how the run was started, quoted for a shell.
func command(args []string) string {
	s := "go run ./bench"
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$") {
			a = strconv.Quote(a)
		}
		s += " " + a
	}
	return s
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the deskrelay module; run from the repository: go run ./bench")
	}
	return filepath.Dir(mod), nil
}

func gitVersion(root string) (hash string, dirty bool) {
	b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "nogit", false
	}
	st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(b)), len(strings.TrimSpace(string(st))) > 0
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
