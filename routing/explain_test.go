package routing

import (
	"errors"
	"slices"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestExplain(t *testing.T) {
	tree := exampleTree(t)
	cases := loadCases(t, "conf.good.cases.yml")
	for _, tt := range []struct {
		name   string
		golden string
		c      Case
	}{
		{"a doer's device ticket is traced through every sibling it passed", "explain-doer-device", cases[0]},
		{"a vip ticket shows the continue route and the when expression", "explain-vip-supported", Case{
			Ticket: ticket.Ticket{
				ID: "INC9", Source: "servicenow", Title: "Screen is black", Category: "hardware",
				Caller: ticket.Caller{Email: "bob@branch.example.com"}, Tags: []string{"vip"}, Impact: 3, Urgency: 1,
			},
			Profile: ticket.Profile{Name: ticket.Supported, Source: "directory", Confidence: 1},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			routed, e, err := tree.Explain(&tt.c.Ticket, &tt.c.Profile)
			if err != nil {
				t.Fatalf("Explain(%s): %v", tt.c.Ticket.ID, err)
			}
			want, err := tree.Route(&tt.c.Ticket, &tt.c.Profile)
			if err != nil {
				t.Fatal(err)
			}
			if routed.Tier != want.Tier || routed.Channel != want.Channel || routed.Priority != want.Priority || !slices.Equal(routed.Rules, want.Rules) {
				t.Errorf("Explain(%s) decided %+v, Route decided %+v", tt.c.Ticket.ID, routed, want)
			}
			checkGolden(t, tt.golden, []byte(e.String()))
		})
	}
}

func TestExplainReportsAFailingWhen(t *testing.T) {
	tree := mustNew(t, rootWith(config.Route{Name: "third-tag", When: `ticket.tags[2] == "x"`}))
	_, e, err := tree.Explain(&ticket.Ticket{ID: "INC3", Source: "test"}, nil)
	if !errors.Is(err, ErrWhen) {
		t.Fatalf("Explain error = %v, want ErrWhen", err)
	}
	if e == nil {
		t.Fatal("Explain returned no explanation with its error")
	}
	checkGolden(t, "explain-when-error", []byte(e.String()))
}
