package servicenow

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

const docPage = "../../docs/connectors/servicenow.md"

var fenceRE = regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```")

// TestDocsExamples loads every YAML example of the user page through the
// config loader and the connector registry, and decodes the page's
// example payload, signed as its Business Rule signs it, through the
// first example's webhook.
func TestDocsExamples(t *testing.T) {
	page, err := os.ReadFile(docPage)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SNOW_WEBHOOK_SECRET", "deskrelay-servicenow-example-secret")
	t.Setenv("SNOW_CLIENT_SECRET", "client-secret")
	t.Setenv("SNOW_PASSWORD", "s3cret")
	// The OAuth example asks for a token when it is built.
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":1799}`))
	}))
	t.Cleanup(tokens.Close)

	var built []*connectors.Built
	var payload []byte
	for i, m := range fenceRE.FindAllSubmatch(page, -1) {
		lang, block := string(m[1]), string(m[2])
		if lang == "json" {
			payload = []byte(strings.TrimSpace(block))
			continue
		}
		t.Run(fmt.Sprintf("example %d", i), func(t *testing.T) {
			if !strings.HasPrefix(block, "connectors:") {
				// A fragment of a connector's keys.
				block = "connectors:\n  servicenow:\n    type: servicenow\n    auth: {type: none}\n" + block
			}
			block = strings.ReplaceAll(block, "https://example.service-now.com", tokens.URL)
			cfg, err := config.Parse("servicenow.md", []byte(block))
			if err != nil {
				t.Fatalf("config:\n%s\n%v", block, err)
			}
			b, err := connectors.Build(cfg.Connectors, 1<<20, zaptest.NewLogger(t), nil)
			if err != nil {
				t.Fatalf("Build:\n%s\n%v", block, err)
			}
			built = append(built, b)
		})
	}
	if len(built) < 5 || payload == nil {
		t.Fatalf("found %d YAML examples and payload %v; the page changed shape", len(built), payload != nil)
	}

	ep := built[0].Endpoints["servicenow"]
	wh := ep.Webhook.(*webhook)
	ts := time.Now().Unix()
	stamp := strconv.FormatInt(ts, 10)
	sig := connectors.SignHMAC([]byte("deskrelay-servicenow-example-secret"), append([]byte(stamp+"."), payload...), "base64")
	h := http.Header{}
	h.Set("X-Deskrelay-Timestamp", stamp)
	h.Set("X-Deskrelay-Signature", "v1="+sig)
	if err := wh.Verify(h, payload); err != nil {
		t.Fatalf("the page's payload, signed as its Business Rule signs it, is refused: %v", err)
	}
	tk, err := wh.Normalize(t.Context(), h, payload)
	if err != nil {
		t.Fatal(err)
	}
	want := ticket.Ticket{
		ID: "59a60bfcb9e24a4ba04482e650fb4efd", Number: "INC0010236", Title: "Printer on 3rd floor shows paper jam but is empty",
		Caller:  ticket.Caller{ID: "ed3b7c29563ff74f4fb0f8c15f0043f0", Email: "trina.trier@example.com", Name: "Trina Trier"},
		Channel: ticket.ChannelEmail, Impact: 3, Urgency: 3, Priority: 5, State: "new", AssignmentGroup: "Service Desk",
		Category: "hardware", Subcategory: "printer",
	}
	if tk.ID != want.ID || tk.Number != want.Number || tk.Title != want.Title || tk.Caller != want.Caller || tk.Channel != want.Channel ||
		tk.Impact != want.Impact || tk.Urgency != want.Urgency || tk.Priority != want.Priority || tk.State != want.State ||
		tk.AssignmentGroup != want.AssignmentGroup || tk.ConfigurationItem != "" || tk.Category != want.Category ||
		!tk.UpdatedAt.Equal(time.Date(2024, 5, 13, 10, 15, 42, 0, time.UTC)) {
		t.Errorf("the page's payload normalises to\n%+v\nwant\n%+v", tk, want)
	}
}
