package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestWhenIsCheckedAtNew(t *testing.T) {
	for _, tt := range []struct {
		name string
		when string
		want string
	}{
		{"a misspelt ticket field", `ticket.categroy == "hardware"`,
			`column 7: undefined field 'categroy' (did you mean "category"?)`},
		{"a misspelt profile field", `profile.competense > 0.5`,
			`column 8: undefined field 'competense' (did you mean "competence"?)`},
		{"a misspelt nested field", `ticket.caller.emial.endsWith("@hq.example.com")`,
			`column 14: undefined field 'emial' (did you mean "email"?)`},
		{"an undeclared variable", `caller.email == "x"`,
			`column 1: undeclared reference to 'caller'`},
		{"a comparison of mismatched types", `ticket.impact == "high"`,
			`column 15: found no matching overload for '_==_' applied to '(int, string)'`},
		{"a result that is not a bool", `ticket.priority + 1`, `result is int, want bool`},
		{"a syntax error on the second line", "ticket.impact == 1 &&\n  ticket.urgency ==", `line 2, column 20: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`},
		{"an expression over the size limit", strings.Repeat("true || ", 600) + "true",
			fmt.Sprintf("expression code point size exceeds limit: size: %d, limit %d", 600*8+4, whenMaxLength)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(rootWith(config.Route{Name: "r", When: tt.when}))
			es := config.AsErrors(err)
			if len(es) != 1 {
				t.Fatalf("New(when: %.40s) errors = %v, want one", tt.when, err)
			}
			if es[0].Path != "routing.route.routes[0].when" || es[0].Msg != tt.want {
				t.Errorf("New(when: %.40s) error =\n%s: %s\nwant\nrouting.route.routes[0].when: %s", tt.when, es[0].Path, es[0].Msg, tt.want)
			}
		})
	}
}

func TestWhenEvaluation(t *testing.T) {
	competence := 0.9
	doer := &ticket.Profile{Name: ticket.Doer, Source: "survey", Confidence: 1, Competence: &competence}
	tk := &ticket.Ticket{
		ID: "INC7", Title: "VPN drops every hour", Category: "network",
		Caller: ticket.Caller{Email: "ann@hq.example.com"}, Tags: []string{"vip"}, Impact: 2, Urgency: 2,
	}
	for _, tt := range []struct {
		name string
		when string
		want bool
	}{
		{"a field comparison", `ticket.category == "network"`, true},
		{"a string function", `ticket.caller.email.endsWith("@hq.example.com")`, true},
		{"a regex", `ticket.title.matches("(?i)vpn")`, true},
		{"a list membership", `"vip" in ticket.tags`, true},
		{"a macro over tags", `ticket.tags.exists(t, t.startsWith("v"))`, true},
		{"a profile score", `profile.competence > 0.8 && profile.name == "doer"`, true},
		{"an absent score reads as zero", `profile.attitude > 0.0`, false},
		{"the strings extension", `ticket.title.lowerAscii().contains("vpn")`, true},
		{"the effective priority", `ticket.priority == 3`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := mustNew(t, rootWith(config.Route{Name: "w", When: tt.when}))
			got, err := tree.Route(tk, doer)
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			if held := slices.Contains(got.Rules, "w"); held != tt.want {
				t.Errorf("when %s held = %v, want %v", tt.when, held, tt.want)
			}
		})
	}
}

func TestWhenRuntimeErrorFailsRoute(t *testing.T) {
	many := make([]string, 500)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tt := range []struct {
		name string
		when string
		tk   ticket.Ticket
		want string
	}{
		{"an index out of range", `ticket.tags[3] == "x"`, ticket.Ticket{Tags: []string{"a"}},
			"routing: when expression failed: rule w: index out of bounds: 3"},
		{"a failed conversion", `int(ticket.number) > 5`, ticket.Ticket{Number: "INC5"},
			`routing: when expression failed: rule w: type conversion error from 'string' to 'int'`},
		{"the cost limit", `ticket.tags.all(a, ticket.tags.all(b, a != b || a == b))`, ticket.Ticket{Tags: many},
			"routing: when expression failed: rule w: operation cancelled: actual cost limit exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := mustNew(t, rootWith(config.Route{Name: "w", When: tt.when}))
			got, err := tree.Route(&tt.tk, nil)
			if !errors.Is(err, ErrWhen) {
				t.Fatalf("Route = %+v, %v; want ErrWhen", got, err)
			}
			if err.Error() != tt.want {
				t.Errorf("Route error =\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestWhenRunsOnlyAfterMatchers(t *testing.T) {
	// The when expression would fail at run time; the matcher in front of
	// it does not hold, so it never runs.
	tree := mustNew(t, rootWith(config.Route{
		Name: "guarded", Matchers: []string{"ticket.tags = three"}, When: `ticket.tags[2] == "x"`,
	}))
	if _, err := tree.Route(&ticket.Ticket{Tags: []string{"a"}}, nil); err != nil {
		t.Errorf("Route error = %v, want none: the when expression must not run", err)
	}
	if _, _, err := tree.Explain(&ticket.Ticket{Tags: []string{"a"}}, nil); err != nil {
		t.Errorf("Explain error = %v, want none: the when expression must not run", err)
	}
}
