package bus

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
)

// ConnectionName is the client name deskrelay shows in the server's
// connection list.
const ConnectionName = "deskrelay"

// Connect opens the "deskrelay" connection: in-process to srv when srv is
// not nil (cfg.URL is then ignored), else to cfg.URL (comma-separated
// servers) with cfg.User/Password, cfg.Token, cfg.CredsFile and cfg.TLS.
//
// The connection reconnects forever but buffers nothing while
// disconnected (ReconnectBufSize -1), so a publish during an outage fails
// at once and the webhook can answer 503. Disconnects, reconnects, the
// close and asynchronous errors are logged. Connect gives up after
// cfg.ConnectTimeout (default [DefaultConnectTimeout]) or when ctx ends,
// whichever is first. The caller drains the connection (nc.Drain) at
// shutdown.
func Connect(ctx context.Context, cfg config.NATS, srv *server.Server, log *zap.Logger) (*nats.Conn, error) {
	log = log.Named("nats")
	timeout := cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout)
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	opts := []nats.Option{
		nats.Name(ConnectionName),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil && nc.IsClosed() { // our own Close or Drain
				log.Debug("nats disconnected")
				return
			}
			log.Warn("nats disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", zap.Error(err))
				return
			}
			log.Info("nats connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Warn("nats async error", fields...)
		}),
	}
	url := cfg.URL
	if srv != nil {
		url = ""
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		if url == "" {
			return nil, fmt.Errorf("connect nats: no url and no embedded server")
		}
		if cfg.User != "" || cfg.Password.IsSet() {
			opts = append(opts, nats.UserInfo(cfg.User, cfg.Password.Reveal()))
		}
		if cfg.Token.IsSet() {
			opts = append(opts, nats.Token(cfg.Token.Reveal()))
		}
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.TLS.CAFile != "" {
			opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
		}
		if cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" {
			opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		// nats errors do not carry the password; the URL may, so it is
		// not repeated here.
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()), zap.Bool("in_process", srv != nil))
	return nc, nil
}
