package routing

import (
	"fmt"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// BenchmarkRoute measures one decision: on the example tree for tickets
// that stop at different depths, and on a generated tree of 200 rules for a
// ticket that matches near its end.
func BenchmarkRoute(b *testing.B) {
	tree := exampleTree(b)
	for _, c := range []struct {
		name string
		tk   ticket.Ticket
		p    ticket.Profile
	}{
		{"example/doer-device", ticket.Ticket{ID: "1", Source: "b", Title: "Laptop will not boot", Category: "hardware", Impact: 2, Urgency: 2},
			ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 1}},
		{"example/vip-supported-when", ticket.Ticket{ID: "2", Source: "b", Title: "Screen", Category: "hardware", Tags: []string{"vip"},
			Caller: ticket.Caller{Email: "ann@hq.example.com"}}, ticket.Profile{Name: ticket.Supported, Source: "directory", Confidence: 1}},
		{"example/root-only", ticket.Ticket{ID: "3", Source: "b", Title: "?"}, ticket.Profile{Name: ticket.Unknown, Source: "none"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tree.Route(&c.tk, &c.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, n := range []int{20, 200} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			tree, tk, p := generatedTree(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tree.Route(tk, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// generatedTree builds n rules as n/10 category routes of 10 children each
// (equality, regex, list and numeric matchers), and a ticket that misses
// every category but the last and every child of it but the last.
func generatedTree(b *testing.B, n int) (*Tree, *ticket.Ticket, *ticket.Profile) {
	b.Helper()
	groups := n / 10
	cfg := config.Routing{Route: config.Route{Tier: "l1", Channel: "portal"}}
	for g := range groups {
		parent := config.Route{
			Name:     fmt.Sprintf("category-%d", g),
			Matchers: []string{fmt.Sprintf("ticket.category = cat-%d", g)},
			Tier:     "l2",
		}
		for c := range 9 {
			parent.Routes = append(parent.Routes, config.Route{
				Name: fmt.Sprintf("child-%d", c),
				Matchers: []string{
					fmt.Sprintf("ticket.subcategory in (sub-%d, alt-%d)", c, c),
					fmt.Sprintf(`ticket.title =~ "(?i).*keyword%d.*"`, c),
					"ticket.priority <= 3",
				},
				Hints: map[string]string{"queue": fmt.Sprintf("q-%d-%d", g, c)},
			})
		}
		parent.Routes = append(parent.Routes, config.Route{
			Name:     "by-profile",
			Matchers: []string{"profile in (doer, prioritizer)", "ticket.tags != noisy"},
			Tier:     "l3",
			Hints:    map[string]string{"do": "link the runbook"},
		})
		cfg.Route.Routes = append(cfg.Route.Routes, parent)
	}
	tree, err := New(cfg, WithBaseHints(baseHints))
	if err != nil {
		b.Fatal(err)
	}
	tk := &ticket.Ticket{
		ID: "INC1", Source: "bench", Title: "Laptop will not boot after the update",
		Category: fmt.Sprintf("cat-%d", groups-1), Subcategory: "laptop", Impact: 2, Urgency: 2, Tags: []string{"vip"},
	}
	return tree, tk, &ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 1}
}
