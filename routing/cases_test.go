package routing

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestParseCasesFillsDefaults(t *testing.T) {
	cases, err := ParseCases([]byte(`cases:
  - name: bare
    expect: {tier: l1}
  - name: full
    profile: {name: Doer, source: survey, confidence: 0.7, competence: 0.8, attitude: 0.9}
    ticket:
      id: INC1
      source: snow
      channel: Walk-In
      caller: {id: u1, email: a@example.com, name: Ann}
      opened_at: 2025-01-02T03:04:05Z
      tags: [vip]
    expect: {channel: walk-in, rules: [root, x]}
`))
	if err != nil {
		t.Fatalf("ParseCases: %v", err)
	}
	competence, attitude := 0.8, 0.9
	want := []Case{
		{
			Name: "bare", Line: 2,
			Ticket:  ticket.Ticket{ID: "case-1", Source: "route-test"},
			Profile: ticket.Profile{Name: ticket.Unknown, Source: "route-test"},
			Expect:  Expect{Tier: ticket.TierL1},
		},
		{
			Name: "full", Line: 4,
			Ticket: ticket.Ticket{
				ID: "INC1", Source: "snow", Channel: ticket.ChannelWalkIn,
				Caller:   ticket.Caller{ID: "u1", Email: "a@example.com", Name: "Ann"},
				OpenedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Tags: []string{"vip"},
			},
			Profile: ticket.Profile{Name: ticket.Doer, Source: "survey", Confidence: 0.7, Competence: &competence, Attitude: &attitude},
			Expect:  Expect{Channel: ticket.ChannelWalkIn, Rules: []string{"root", "x"}},
		},
	}
	if !reflect.DeepEqual(cases, want) {
		t.Errorf("ParseCases =\n%+v\nwant\n%+v", cases, want)
	}
}

func TestParseCasesErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		yaml string
		want string
	}{
		{"an empty file", "", "empty file; want a list under cases:"},
		{"invalid YAML", "cases: [", "yaml: line 1: did not find expected node content"},
		{"a misspelt top-level key", "case:\n  - expect: {tier: l1}\n", `line 1: the file: unknown key "case" (did you mean "cases"?)` + "\nline 1: missing cases: list"},
		{"cases that are not a list", "cases: {}\n", "line 1: cases: want a list, got a mapping"},
		{"an empty list", "cases: []\n", "line 1: cases: the list is empty"},
		{"a case that is not a mapping", "cases:\n  - just text\n", `line 2: case 1: case: want a mapping, got "just text"`},
		{"a misspelt ticket key", "cases:\n  - name: n\n    ticket:\n      titel: x\n    expect: {tier: l1}\n",
			`line 4: case 1 "n": ticket: unknown key "titel" (did you mean "title"?)`},
		{"a misspelt caller key", "cases:\n  - ticket: {caller: {mail: x}}\n    expect: {tier: l1}\n",
			`line 2: case 1: ticket.caller: unknown key "mail" (did you mean "email"?)`},
		{"a repeated key", "cases:\n  - name: a\n    name: b\n    expect: {tier: l1}\n", `line 3: case 1 "a": case: key "name" repeated`},
		{"a ticket value of the wrong type", "cases:\n  - name: n\n    ticket: {impact: high}\n    expect: {tier: l1}\n",
			`line 3: case 1 "n": ticket.impact: "high" is not a whole number`},
		{"a ticket value out of range", "cases:\n  - name: n\n    ticket: {urgency: 4}\n    expect: {tier: l1}\n",
			`line 3: case 1 "n": ticket.urgency: 4 is out of range; use 1 (high) to 3 (low)`},
		{"an unknown channel", "cases:\n  - name: n\n    ticket: {channel: fax}\n    expect: {tier: l1}\n",
			`line 3: case 1 "n": ticket.channel: "fax" is not a channel; use one of portal, email, phone, chat, virtual_agent, walk_in, other`},
		{"an unknown profile", "cases:\n  - name: n\n    profile: wizard\n    expect: {tier: l1}\n",
			`line 3: case 1 "n": profile: "wizard" is not a profile; use one of doer, prioritizer, trier, supported, unknown`},
		{"a profile without a name", "cases:\n  - name: n\n    profile: {competence: 0.5}\n    expect: {tier: l1}\n",
			`line 3: case 1 "n": profile.name: is required`},
		{"a missing expect", "cases:\n  - name: n\n", `line 2: case 1 "n": missing expect: a case must check at least one of tier, channel, priority, rules`},
		{"an empty expect", "cases:\n  - name: n\n    expect: {}\n", `line 3: case 1 "n": expect: check at least one of tier, channel, priority, rules`},
		{"an unknown tier", "cases:\n  - name: n\n    expect: {tier: l4}\n",
			`line 3: case 1 "n": expect.tier: "l4" is not a tier; use one of l1, l2, l3, desktop, teamlead`},
		{"a priority out of range", "cases:\n  - name: n\n    expect: {priority: 0}\n",
			`line 3: case 1 "n": expect.priority: 0 is out of range; use 1 (critical) to 5 (planning)`},
		{"empty rules", "cases:\n  - name: n\n    expect: {rules: []}\n", `line 3: case 1 "n": expect.rules: the list is empty; it starts with the root`},
		{"rules that are not a list", "cases:\n  - name: n\n    expect: {rules: root}\n", `line 3: case 1 "n": expect.rules: want a list, got "root"`},
		{"duplicate case names", "cases:\n  - {name: n, expect: {tier: l1}}\n  - {name: n, expect: {tier: l2}}\n",
			`line 3: case 2 "n": name is already used by case 1; names must be unique`},
		{"every problem is reported", "cases:\n  - name: a\n    expect: {tier: l9}\n  - name: b\n    ticket: {impact: x}\n    expect: {tier: l1}\n",
			`line 3: case 1 "a": expect.tier: "l9" is not a tier; use one of l1, l2, l3, desktop, teamlead` + "\n" +
				`line 5: case 2 "b": ticket.impact: "x" is not a whole number`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cases, err := ParseCases([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseCases = %+v, want error\n%s", cases, tt.want)
			}
			if cases != nil {
				t.Errorf("ParseCases returned cases with its error")
			}
			var ce *CaseError
			if !errors.As(err, &ce) {
				t.Errorf("ParseCases error is %T, want a *CaseError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseCases error =\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

// TestCaseTicketKeysCoverTicket fails when a field is added to
// ticket.Ticket without a key in route-test files.
func TestCaseTicketKeysCoverTicket(t *testing.T) {
	keys := keysOf(ticketFields(&ticket.Ticket{}))
	for f := range reflect.TypeFor[ticket.Ticket]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "raw" && !slices.Contains(keys, name) {
			t.Errorf("ticket field %s (json %q) has no key in route-test files", f.Name, name)
		}
	}
}

func TestRunCases(t *testing.T) {
	tree := exampleTree(t)
	t.Run("the example cases all pass", func(t *testing.T) {
		r := RunCases(tree, loadCases(t, "conf.good.cases.yml"))
		if r.Failed() != 0 {
			t.Errorf("RunCases(conf.good.cases.yml).Failed() = %d, want 0\n%s", r.Failed(), r)
		}
	})
	t.Run("failing cases are reported with a readable diff", func(t *testing.T) {
		failing := exampleTreeWith(t, config.Route{Name: "boom", Matchers: []string{"profile = trier"}, When: `ticket.tags[1] == "x"`})
		r := RunCases(failing, loadCases(t, "cases.failing.yml"))
		if r.Failed() != 2 {
			t.Errorf("RunCases(cases.failing.yml).Failed() = %d, want 2", r.Failed())
		}
		checkGolden(t, "cases.failing", []byte(r.String()))
	})
}

// exampleTreeWith is the example tree with extra routes in front.
func exampleTreeWith(t *testing.T, first ...config.Route) *Tree {
	t.Helper()
	cfg := loadRouting(t, "conf.good.yml")
	cfg.Route.Routes = append(first, cfg.Route.Routes...)
	return mustNew(t, cfg, WithBaseHints(baseHints))
}
