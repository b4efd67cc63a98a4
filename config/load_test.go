package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

func TestLoadGood(t *testing.T) {
	c, err := Load("testdata/conf.good.yml")
	if err != nil {
		t.Fatalf("Load(conf.good.yml) = %v", err)
	}
	if got := c.Connectors["generic"].Auth.Token.Reveal(); got != "s3cret-token" {
		t.Errorf("generic token = %q, want the file's content", got)
	}
	if got := c.Connectors["generic"].Options["mapping"]; got != "identity" {
		t.Errorf("generic options mapping = %v, want identity", got)
	}
	if c.HTTP.PublishTimeout != 3*time.Second || c.HTTP.MaxBodyBytes != 1<<20 {
		t.Errorf("http = %+v, want publish_timeout 3s from the file and the default body limit", c.HTTP)
	}
	if c.NATS.Embedded.SyncInterval != "always" || c.NATS.Streams.Ingest.Name != "DESKRELAY_INGEST" {
		t.Errorf("nats = %+v", c.NATS)
	}
	if len(c.Routing.Route.Routes) != 1 || c.Routing.Route.Routes[0].Matchers[0] != "profile = doer" {
		t.Errorf("routes = %+v", c.Routing.Route)
	}
}

func TestLoadBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/conf.bad-*.yml")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yml")
		t.Run(name, func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) = nil error, want errors", f)
			}
			checkGolden(t, name, []byte(err.Error()+"\n"))
		})
	}
}

func TestLoadEnv(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		check   func(*testing.T, *Config)
		wantErr string
	}{
		{
			name: "an env variable overrides a key in the file",
			env:  map[string]string{"DESKRELAY_HTTP_LISTEN": "127.0.0.1:9999", "DESKRELAY_NATS_URL": "nats://10.0.0.1:4222"},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Listen != "127.0.0.1:9999" || c.NATS.URL != "nats://10.0.0.1:4222" {
					t.Errorf("http.listen = %q, nats.url = %q; want the env values", c.HTTP.Listen, c.NATS.URL)
				}
			},
		},
		{
			name: "a connector secret may be given literally in the environment",
			env:  map[string]string{"DESKRELAY_CONNECTORS_GENERIC_AUTH_TOKEN": "from-env"},
			check: func(t *testing.T, c *Config) {
				if got := c.Connectors["generic"].Auth.Token.Reveal(); got != "from-env" {
					t.Errorf("token = %q, want from-env", got)
				}
			},
		},
		{
			name: "a profile hint can come from the environment",
			env:  map[string]string{"DESKRELAY_PROFILES_HINTS_SUPPORTED_STATUS_UPDATE_EVERY": "1h"},
			check: func(t *testing.T, c *Config) {
				if got := c.Profiles.Hints["supported"].StatusUpdateEvery; got != "1h" {
					t.Errorf("profiles.hints.supported.status_update_every = %q, want 1h from the env", got)
				}
			},
		},
		{
			name: "routing inline can be turned on from the environment",
			env:  map[string]string{"DESKRELAY_PIPELINE_INLINE": "true"},
			check: func(t *testing.T, c *Config) {
				if !c.Pipeline.Inline {
					t.Error("pipeline.inline = false, want true from the env")
				}
			},
		},
		{
			name:    "routing inline needs the routed stream to remember ids as long as the ingest stream",
			env:     map[string]string{"DESKRELAY_PIPELINE_INLINE": "true", "DESKRELAY_NATS_STREAMS_ROUTED_DUPLICATE_WINDOW": "2m"},
			wantErr: `env DESKRELAY_PIPELINE_INLINE: pipeline.inline: needs nats.streams.routed.duplicate_window (2m0s) at least as long as the ingest stream's (24h0m0s): routed inline, a vendor's retry is de-duplicated by the routed stream`,
		},
		{
			name:    "a port that is not a number is refused",
			env:     map[string]string{"DESKRELAY_HTTP_LISTEN": "127.0.0.1:http"},
			wantErr: `env DESKRELAY_HTTP_LISTEN: http.listen: "127.0.0.1:http": port must be a number from 0 to 65535`,
		},
		{
			name:    "a bad env value is reported with the variable's name",
			env:     map[string]string{"DESKRELAY_NATS_URL": "localhost:4222"},
			wantErr: `env DESKRELAY_NATS_URL: nats.url: "localhost:4222": missing or unknown scheme; expected nats://host:port (or tls://, ws://, wss://)`,
		},
		{
			name:    "a bad env duration is reported with the variable's name",
			env:     map[string]string{"DESKRELAY_HTTP_PUBLISH_TIMEOUT": "soon"},
			wantErr: `env DESKRELAY_HTTP_PUBLISH_TIMEOUT: http.publish_timeout: "soon" is not a duration; write e.g. 30s, 5m or 2h`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Load("testdata/conf.good.yml")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Load error = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestSecretReferences(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, env, want, wantErr string
	}{
		{"env reference", "token: env:TEST_DR_TOKEN", "abc", "abc", ""},
		{"unset env reference", "token: env:TEST_DR_UNSET", "", "", `x.yml:7:14: connectors.g.auth.token: environment variable TEST_DR_UNSET is not set (referenced as "env:TEST_DR_UNSET")`},
		{"missing file", "token: file:nope.txt", "", "", `x.yml:7:14: connectors.g.auth.token: cannot read secret file: no such file or directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("TEST_DR_TOKEN", tt.env)
			}
			src := "connectors:\n  g:\n    type: generic\n    mapping: identity\n    auth:\n      type: bearer\n      " + tt.yaml + "\n"
			c, err := Parse("x.yml", []byte(src))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Parse error = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Connectors["g"].Auth.Token.Reveal(); got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	for _, got := range []string{s.String(), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(got, "hunter2") {
			t.Errorf("secret printed as %q", got)
		}
	}
}

func TestLocateNestedPath(t *testing.T) {
	c, err := Load("testdata/conf.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	es := c.Locate(Errors{Errorf("routing.route.routes[0].matchers[0]", "bad matcher"), Errorf("connectors.generic.mapping", "bad mapping")})
	want := "testdata/conf.good.yml:17:14: connectors.generic.mapping: bad mapping\ntestdata/conf.good.yml:24:20: routing.route.routes[0].matchers[0]: bad matcher"
	if es.Error() != want {
		t.Errorf("Locate = \n%s\nwant\n%s", es.Error(), want)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/conf.good.yml", "testdata/conf.bad-three.yml", "../deploy/examples/deskrelay.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("nats: [1, 2]\nhttp: {listen: 3}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yml", data)
		if err == nil && c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		for _, e := range AsErrors(err) {
			if e.Msg == "" {
				t.Fatalf("an error without a message: %+v", e)
			}
		}
	})
}
