package bus

import (
	"cmp"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
)

// EmbeddedReadyTimeout bounds how long StartEmbedded waits for the server.
const EmbeddedReadyTimeout = 30 * time.Second

// SyncAlways is the sync_interval value that fsyncs every write.
const SyncAlways = "always"

// StartEmbedded starts an in-process nats-server with JetStream and waits
// (at most [EmbeddedReadyTimeout]) until it accepts connections. The
// caller owns the server and stops it with Shutdown then WaitForShutdown,
// after draining its connections.
//
// Storage is file-based. nats-server keeps its files in a "jetstream"
// folder it adds under the store dir it is given, so the store dir passed
// is cfg.Embedded.StoreDir or, by default, dataDir itself: the files land
// in <dataDir>/jetstream. An explicit store_dir gets the same subfolder
// (<store_dir>/jetstream); its files are found again there on the next
// start. (Until this rule the default store sat in
// <dataDir>/jetstream/jetstream; deskrelay had no release then, so nothing
// is migrated.) The server listens on cfg.Embedded.Listen (host:port,
// default [DefaultListen]; port 0 picks a free port; [ListenNone] opens no
// TCP listener, so only Connect with the server works).
// cfg.Embedded.SyncInterval is "" for the server default (2m), "always"
// ([SyncAlways]) to fsync every write, or a Go duration. MaxMemory and
// MaxStore limit JetStream (0: the server picks from the host).
func StartEmbedded(cfg config.NATS, dataDir string, log *zap.Logger) (*server.Server, error) {
	emb := cfg.Embedded
	opts := &server.Options{
		ServerName:         "deskrelay",
		JetStream:          true,
		StoreDir:           cmp.Or(emb.StoreDir, dataDir), // the server appends "jetstream"
		JetStreamMaxMemory: emb.MaxMemory,
		JetStreamMaxStore:  emb.MaxStore,
		NoSigs:             true,
		NoLog:              true,
	}
	if emb.StoreDir == "" && dataDir == "" {
		return nil, fmt.Errorf("embedded nats: no store dir; set data_dir or nats.embedded.store_dir")
	}
	switch listen := strings.TrimSpace(emb.Listen); listen {
	case ListenNone:
		opts.DontListen = true
	default:
		host, port, err := parseListen(cmp.Or(listen, DefaultListen))
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen %q: %w", listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	switch si := strings.TrimSpace(emb.SyncInterval); si {
	case "":
	case SyncAlways:
		opts.SyncAlways = true
	default:
		d, err := time.ParseDuration(si)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("embedded nats: sync_interval %q: use \"always\" or a positive duration such as \"2m\"", si)
		}
		opts.SyncInterval = d
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	log = log.Named("nats-server")
	srv.SetLoggerV2(serverLogger{log.Sugar()}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(EmbeddedReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready after %s", EmbeddedReadyTimeout)
	}
	fields := []zap.Field{zap.String("store_dir", srv.JetStreamConfig().StoreDir), zap.Bool("sync_always", opts.SyncAlways)}
	if opts.SyncInterval > 0 {
		fields = append(fields, zap.Duration("sync_interval", opts.SyncInterval))
	}
	if opts.DontListen {
		fields = append(fields, zap.String("listen", ListenNone))
	} else {
		fields = append(fields, zap.String("listen", srv.Addr().String()))
	}
	log.Info("embedded nats-server started", fields...)
	return srv, nil
}

// parseListen splits host:port; port 0 becomes server.RANDOM_PORT.
func parseListen(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not 0…65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return cmp.Or(host, "0.0.0.0"), port, nil
}

// serverLogger routes nats-server log lines into zap. Fatalf is logged as
// an error: the embedded server must not exit the process.
type serverLogger struct{ s *zap.SugaredLogger }

func (l serverLogger) Noticef(format string, v ...any) { l.s.Debugf(format, v...) } // banner and start-up chatter; deskrelay logs its own summary
func (l serverLogger) Warnf(format string, v ...any)   { l.s.Warnf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.s.Debugf(format, v...) }
