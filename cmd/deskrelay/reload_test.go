package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/ticket"
)

// copyExample writes the example config (and the files it references) to a
// temporary directory and returns the config's path.
func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"deskrelay.yaml", "profiles.csv", "generic.token"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(exampleConfig), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "deskrelay.yaml")
}

func TestSIGHUPReloadsTheRoutingRules(t *testing.T) {
	path := copyExample(t)
	r := startServeWith(t, path, nil)
	next := routedReader(t, r.NATS, "DESKRELAY_ROUTED")
	route := func(id string) ticket.Routing {
		t.Helper()
		if code, body := r.post(t, laptop(id, "doer@example.com")); code != http.StatusAccepted {
			t.Fatalf("POST = %d %s", code, body)
		}
		var rt ticket.Routed
		_ = json.Unmarshal(next().Data(), &rt)
		if rt.Ticket.ID != id {
			t.Fatalf("routed %q, want %q", rt.Ticket.ID, id)
		}
		return rt.Routing
	}
	reloadGauge := func() string {
		resp, err := http.Get("http://" + r.HTTP + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "deskrelay_config_last_reload_successful ") {
				return strings.TrimPrefix(line, "deskrelay_config_last_reload_successful ")
			}
		}
		return "missing"
	}
	hup := func(want string) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The reload runs on serve's goroutine: wait for the gauge.
		deadline := time.Now().Add(10 * time.Second)
		for reloadGauge() != want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := reloadGauge(); got != want {
			t.Fatalf("reload gauge = %s after SIGHUP, want %s", got, want)
		}
	}

	if got := route("HUP-1"); got.Tier != ticket.TierL2 || got.Channel != ticket.ChannelPortal {
		t.Fatalf("before the reload a doer's laptop goes to %s/%s, want l2/portal", got.Tier, got.Channel)
	}

	// A broken config is refused and the running rules stay.
	orig, _ := os.ReadFile(path)
	broken := strings.Replace(string(orig), "matchers: ['profile = doer']", "matchers: ['profile = doerr']", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("0")
	if got := route("HUP-2"); got.Tier != ticket.TierL2 {
		t.Errorf("after a failed reload a doer's laptop goes to %s, want the old l2", got.Tier)
	}

	// A good config replaces the rules.
	changed := strings.Replace(string(orig), "matchers: ['profile = doer']\n        tier: l2\n        channel: portal", "matchers: ['profile = doer']\n        tier: l2\n        channel: chat", 1)
	if changed == string(orig) {
		t.Fatal("the example config's doer route changed shape; update this test")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("1")
	for i := 3; ; i++ {
		got := route(fmt.Sprintf("HUP-%d", i))
		if got.Channel == ticket.ChannelChat {
			break
		}
		if i > 5 {
			t.Fatalf("after the reload a doer's laptop still goes to %s", got.Channel)
		}
	}
}
