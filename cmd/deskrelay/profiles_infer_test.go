package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/enrichment/infer"
	"github.com/deskrelay/deskrelay/ticket"
)

const labelledSet = "../../enrichment/infer/testdata/labelled.jsonl"

// runInferCmd runs profiles infer with args and stdin, and returns its
// stdout, stderr and exit code as run would.
func runInferCmd(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := profilesInferCmd(&globals{})
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(t.Context())
	code := 0
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		stderr.WriteString(err.Error())
		code = 1
	}
	return stdout.String(), stderr.String(), code
}

func results(t *testing.T, out string) []infer.Result {
	t.Helper()
	var rs []infer.Result
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r infer.Result
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestProfilesInfer(t *testing.T) {
	t.Run("one line per ticket of the labelled set, never unknown at min confidence 0", func(t *testing.T) {
		out, stderr, code := runInferCmd(t, "", labelledSet, "--min-confidence", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		rs := results(t, out)
		if len(rs) < 200 {
			t.Fatalf("%d output lines, want one per labelled ticket", len(rs))
		}
		for _, r := range rs {
			if r.ID == "" || r.Profile == ticket.Unknown || r.Confidence < 0.25 || r.Confidence > 1 {
				t.Errorf("result %+v: want an id, a named profile and a confidence in 0.25…1", r)
			}
		}
	})
	t.Run("reads stdin and uses the history", func(t *testing.T) {
		in := `{"id":"A","title":"Outlook","description":"Outlook shows a message.","channel":"email",` +
			`"history":[{"id":"H1","title":"Can someone come? I'm not good with computers","channel":"phone"},` +
			`{"id":"H2","title":"Please call me, something is strange","channel":"walk_in"}]}` + "\n"
		out, stderr, code := runInferCmd(t, in, "-", "--min-confidence", "0")
		rs := results(t, out)
		if code != 0 || len(rs) != 1 || rs[0].ID != "A" || rs[0].Profile != ticket.Supported {
			t.Errorf("infer - = %+v, exit %d, stderr %q; want A supported", rs, code, stderr)
		}
	})
	t.Run("a bad line is reported with its number and skipped", func(t *testing.T) {
		in := `{"id":"A","title":"How do I add a printer?"}` + "\n" + `{"id":` + "\n\n" + `{"title":"no id"}` + "\n" + `{"id":"B","title":"DNS fails"}` + "\n"
		out, stderr, code := runInferCmd(t, in, "-")
		rs := results(t, out)
		if code != 1 || len(rs) != 2 || rs[0].ID != "A" || rs[1].ID != "B" {
			t.Errorf("exit %d, results %+v; want exit 1 with A and B", code, rs)
		}
		for _, want := range []string{"stdin:2: bad input line: not a ticket JSON object", "stdin:4: bad input line: id is required", "2 of 5 lines skipped"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, want)
			}
		}
	})
	t.Run("min confidence 1 leaves every profile unknown", func(t *testing.T) {
		out, _, _ := runInferCmd(t, `{"id":"A","title":"DNS and DHCP fail, already tried ipconfig /renew"}`, "-", "--min-confidence", "1")
		if rs := results(t, out); len(rs) != 1 || rs[0].Profile != ticket.Unknown || rs[0].Competence == 0 {
			t.Errorf("results = %+v, want one unknown with scores", rs)
		}
	})
	t.Run("a min confidence out of range is refused", func(t *testing.T) {
		_, stderr, code := runInferCmd(t, "", "-", "--min-confidence", "2")
		if code != 1 || !strings.Contains(stderr, "min confidence must be within 0…1") {
			t.Errorf("exit %d, stderr %q; want 1 naming the range", code, stderr)
		}
	})
	t.Run("evaluate prints accuracy, baseline and the confusion matrix", func(t *testing.T) {
		out, stderr, code := runInferCmd(t, "", labelledSet, "--evaluate", "--min-confidence", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"min confidence     0\n", "accuracy ", "baseline (doer) ", "label \\ got", "supported"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("evaluate wants a label on every line", func(t *testing.T) {
		_, stderr, code := runInferCmd(t, `{"id":"A","title":"x"}`, "-", "--evaluate")
		if code != 1 || !strings.Contains(stderr, `stdin:1: no "label"`) {
			t.Errorf("exit %d, stderr %q; want 1 naming line 1", code, stderr)
		}
	})
}
