package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/ticket"
)

// getCmd runs `deskrelay profiles get args…` against a running deskrelay.
func getCmd(t *testing.T, natsURL string, args ...string) (string, error) {
	t.Helper()
	g := &globals{configPath: exampleConfig}
	cmd := profilesCmd(g)
	cmd.AddCommand(profilesGetCmd(g))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"get", "--nats-url", natsURL}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func TestProfilesGet(t *testing.T) {
	r := startServe(t, nil)
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("serve = %v", err)
		}
	})
	t.Run("a seeded caller: the directory answers", func(t *testing.T) {
		out, err := getCmd(t, r.NATS, "Trier@Example.com", "--keys")
		if err != nil {
			t.Fatalf("profiles get = %v\n%s", err, out)
		}
		for _, want := range []string{"profile:  trier\n", "source:   directory, looked up ", "1. directory        hit ", "key:      email.trier=40example.com"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("an unknown caller, as JSON", func(t *testing.T) {
		out, err := getCmd(t, r.NATS, "--id", "u-nobody", "--json")
		if err != nil {
			t.Fatalf("profiles get = %v\n%s", err, out)
		}
		var got struct {
			Trace enrichment.Trace `json:"trace"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if got.Trace.Profile.Name != ticket.Unknown || got.Trace.Source != enrichment.SourceNone || len(got.Trace.Steps) != 1 || got.Trace.Steps[0].Result != enrichment.ResultMiss {
			t.Errorf("trace = %+v, want unknown after a directory miss", got.Trace)
		}
	})
	t.Run("no caller key", func(t *testing.T) {
		if _, err := getCmd(t, r.NATS); err == nil || !strings.Contains(err.Error(), "give an email, or a caller id with --id") {
			t.Errorf("profiles get without a key = %v", err)
		}
	})
}
