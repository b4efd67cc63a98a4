package main

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/enrichment"
)

// surveysKind is the subject kind of survey answers: <prefix>.surveys.
// No stream captures it: answers are core NATS requests.
const surveysKind = "surveys"

// buildProfiles builds serve's profile machinery from the config: the
// chain (cache, then profiles.order, then last, e.g. inference), the
// directory, POST /surveys and the <prefix>.surveys subscriber, and the
// familiar-people memory. Its metrics are registered with reg (once per
// process); pm counts the itsm and http sources' API calls. Run the
// result with Built.Run; mount Built.Surveys on "POST /surveys".
func buildProfiles(cfg *config.Config, kv jetstream.KeyValue, nc *nats.Conn, subject func(kind string, tokens ...string) string,
	q enrichment.Quadrant, log *zap.Logger, reg prometheus.Registerer, pm *connectors.PollMetrics, last ...enrichment.Source,
) (*enrichment.Built, *enrichment.Metrics, error) {
	m := enrichment.NewMetrics(reg)
	built, err := enrichment.Build(cfg.Profiles, enrichment.Deps{
		KV: kv, Conn: nc, SurveySubject: subject(surveysKind),
		Connectors: cfg.Connectors, Quadrant: q, Log: log,
		Metrics: m, APIMetrics: pm, Last: last,
	})
	if err != nil {
		return nil, nil, cfg.Locate(err)
	}
	return built, m, nil
}
