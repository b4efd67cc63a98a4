package zendesk

import (
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
)

// TestConfigFiles loads whole config files the way `deskrelay validate`
// does: config.Parse, then connectors.Build, errors located in the file.
func TestConfigFiles(t *testing.T) {
	t.Setenv("ZENDESK_WEBHOOK_SECRET", testSecret)
	t.Setenv("ZENDESK_API_TOKEN", fakeToken)
	for _, name := range []string{"conf.good.yml", "conf.bad-options.yml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("testdata/"+name, fixture.Read(t, "testdata", name))
			if cfg == nil {
				t.Fatalf("Parse: %v", err)
			}
			errs := config.AsErrors(err)
			built, err := connectors.Build(cfg.Connectors, cfg.HTTP.MaxBodyBytes, zaptest.NewLogger(t), nil)
			errs = append(errs, cfg.Locate(err)...)
			if name == "conf.good.yml" {
				if len(errs) > 0 {
					t.Fatalf("errors in the documented example:\n%v", errs)
				}
				if built.Endpoints["zendesk"] == nil || built.Pollers["zendesk"] == nil {
					t.Errorf("Build made endpoints %v and pollers %v, want both for zendesk", built.Endpoints, built.Pollers)
				}
				p := built.Pollers["zendesk"].(*poller)
				if p.codes.priority["normal"] != 4 || p.codes.priority["urgent"] != 1 || p.codes.channel["phone_call_incoming"] != "phone" || p.codes.impact.Values["impact_low"] != 3 {
					t.Errorf("overrides not applied: %+v", p.codes)
				}
				return
			}
			checkGolden(t, name, []byte(errs.Error()+"\n"))
		})
	}
}
