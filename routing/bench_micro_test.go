package routing

import (
	"fmt"
	"testing"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// BenchmarkRouteDeployExample routes every case of
// deploy/examples/route-cases.yaml through the tree of
// deploy/examples/deskrelay.yaml, the rules the harness (go run ./bench)
// runs with, including its CEL when. One op is one decision; the cases
// take turns.
//
//	go test -run='^$' -bench=RouteDeployExample -benchmem ./routing
func BenchmarkRouteDeployExample(b *testing.B) {
	tree, err := New(loadRouting(b, "../../deploy/examples/deskrelay.yaml"), WithBaseHints(baseHints))
	if err != nil {
		b.Fatalf("New(deploy example): %v", err)
	}
	cases := loadCases(b, "../../deploy/examples/route-cases.yaml")
	if len(cases) == 0 {
		b.Fatal("no route cases")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := &cases[i%len(cases)]
		i++
		if _, err := tree.Route(&c.Ticket, &c.Profile); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouteWhen measures trees of n rules in which every rule has a
// CEL when besides a matcher, for a ticket that reaches the last group:
// the cost of evaluating compiled expressions rather than matchers.
//
//	go test -run='^$' -bench=RouteWhen -benchmem ./routing
func BenchmarkRouteWhen(b *testing.B) {
	for _, n := range []int{20, 200} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			groups := n / 10
			cfg := config.Routing{Route: config.Route{Tier: "l1", Channel: "portal"}}
			for g := range groups {
				parent := config.Route{
					Name:     fmt.Sprintf("category-%d", g),
					Matchers: []string{fmt.Sprintf("ticket.category = cat-%d", g)},
					When:     "ticket.impact <= 3",
					Tier:     "l2",
				}
				for c := range 9 {
					parent.Routes = append(parent.Routes, config.Route{
						Name:     fmt.Sprintf("child-%d", c),
						Matchers: []string{fmt.Sprintf("ticket.subcategory = sub-%d", c)},
						When:     fmt.Sprintf(`ticket.urgency == %d && ticket.title.contains("keyword%d")`, 1+c%3, c),
					})
				}
				parent.Routes = append(parent.Routes, config.Route{
					Name: "by-profile",
					When: `profile.name in ["doer", "prioritizer"] && !("noisy" in ticket.tags)`,
					Tier: "l3",
				})
				cfg.Route.Routes = append(cfg.Route.Routes, parent)
			}
			tree, err := New(cfg, WithBaseHints(baseHints))
			if err != nil {
				b.Fatal(err)
			}
			tk := &ticket.Ticket{ID: "INC1", Source: "bench", Title: "Laptop will not boot after the update",
				Category: fmt.Sprintf("cat-%d", groups-1), Subcategory: "laptop", Impact: 2, Urgency: 2, Tags: []string{"vip"}}
			p := &ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tree.Route(tk, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
