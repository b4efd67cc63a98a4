package routing

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/golden"
	"github.com/deskrelay/deskrelay/ticket"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from current output")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// loadRouting decodes the routing section of a testdata config the way the
// config package does: YAML, then mapstructure with unknown keys rejected.
func loadRouting(t testing.TB, name string) config.Routing {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Routing map[string]any `yaml:"routing"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var r config.Routing
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: &r, ErrorUnused: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(doc.Routing); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func loadCases(t testing.TB, name string) []Case {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseCases(data)
	if err != nil {
		t.Fatalf("ParseCases(%s): %v", name, err)
	}
	return cases
}

// baseHints are per-profile hints as enrichment derives them from
// DESIGN.md §1.
var baseHints = map[ticket.ProfileName]ticket.Hints{
	ticket.Doer: {
		CommunicationStyle: "IT terms; ask what they already tried",
		Language:           LanguageTechnical,
		PreferredChannels:  []ticket.Channel{ticket.ChannelPortal},
		Do:                 []string{"link knowledge articles", "offer 2nd-level contact"},
		Avoid:              []string{"asking them to restart"},
		StatusUpdateEvery:  "8h",
		VirtualAgent:       "knowledge_links",
	},
	ticket.Prioritizer: {
		Language:          LanguageTechnical,
		PreferredChannels: []ticket.Channel{ticket.ChannelPhone},
		Do:                []string{"solve it in the session"},
		Avoid:             []string{"unscheduled calls"},
		StatusUpdateEvery: "4h",
		VirtualAgent:      "solve_in_session",
	},
	ticket.Trier: {
		Language:          LanguagePlain,
		PreferredChannels: []ticket.Channel{ticket.ChannelEmail, ticket.ChannelPortal},
		Do:                []string{"send clear self-help steps"},
		Avoid:             []string{"IT jargon"},
		StatusUpdateEvery: "8h",
		VirtualAgent:      "guided_steps",
	},
	ticket.Supported: {
		Language:          LanguagePlain,
		PreferredChannels: []ticket.Channel{ticket.ChannelPhone, ticket.ChannelWalkIn},
		Do:                []string{"offer screen sharing"},
		Avoid:             []string{"IT language"},
		StatusUpdateEvery: "4h",
		VirtualAgent:      "handoff_to_human",
	},
	ticket.Unknown: {StatusUpdateEvery: "8h", Extra: map[string]string{"profile": "ask two survey questions"}},
}

func exampleTree(t testing.TB) *Tree {
	t.Helper()
	tree, err := New(loadRouting(t, "conf.good.yml"), WithBaseHints(baseHints))
	if err != nil {
		t.Fatalf("New(conf.good.yml): %v", err)
	}
	return tree
}

func TestRouteExampleTree(t *testing.T) {
	tree := exampleTree(t)
	for _, c := range loadCases(t, "conf.good.cases.yml") {
		t.Run(c.Name, func(t *testing.T) {
			got, err := tree.Route(&c.Ticket, &c.Profile)
			if err != nil {
				t.Fatalf("Route(%s) error: %v", c.Ticket.ID, err)
			}
			if c.Expect.Tier != "" && got.Tier != c.Expect.Tier {
				t.Errorf("Route(%s).Tier = %s, want %s", c.Ticket.ID, got.Tier, c.Expect.Tier)
			}
			if c.Expect.Channel != "" && got.Channel != c.Expect.Channel {
				t.Errorf("Route(%s).Channel = %s, want %s", c.Ticket.ID, got.Channel, c.Expect.Channel)
			}
			if c.Expect.Priority != 0 && got.Priority != c.Expect.Priority {
				t.Errorf("Route(%s).Priority = %d, want %d", c.Ticket.ID, got.Priority, c.Expect.Priority)
			}
			if !slices.Equal(got.Rules, c.Expect.Rules) {
				t.Errorf("Route(%s).Rules = %q, want %q", c.Ticket.ID, got.Rules, c.Expect.Rules)
			}
		})
	}
}

// TestNewReportsEveryProblem checks each testdata/conf.bad-*.yml against
// the errors in its golden file, one "path: message" per line.
func TestNewReportsEveryProblem(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "conf.bad-*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs in testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		t.Run(name, func(t *testing.T) {
			tree, err := New(loadRouting(t, filepath.Base(file)))
			if err == nil {
				t.Fatalf("New(%s) = %v, want errors", name, tree)
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("New(%s) error is %T, want config.Errors: %v", name, err, err)
			}
			if tree != nil {
				t.Errorf("New(%s) returned a tree with its errors", name)
			}
			var b strings.Builder
			for _, e := range es { // in tree order, as New found them
				fmt.Fprintf(&b, "%s: %s\n", e.Path, e.Msg)
			}
			checkGolden(t, name, []byte(b.String()))
		})
	}
}

// route is a small helper to build a child route in code.
func route(name string, matchers ...string) config.Route {
	return config.Route{Name: name, Matchers: matchers}
}

func rootWith(routes ...config.Route) config.Routing {
	return config.Routing{Route: config.Route{Tier: "l1", Channel: "portal", Routes: routes}}
}

func mustNew(t *testing.T, cfg config.Routing, opts ...Option) *Tree {
	t.Helper()
	tree, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tree
}

func TestContinue(t *testing.T) {
	vip := route("vip", "ticket.tags = vip")
	vip.Continue, vip.PriorityAdjust, vip.Tier = true, -1, "l2"
	vip.Hints = map[string]string{"do": "call ahead", "queue": "vip"}
	hw := route("hardware", "ticket.category = hardware")
	hw.Channel = "walk_in"
	hw.Hints = map[string]string{"do": "bring a spare", "queue": "desk"}
	any := route("catch-all")
	any.Hints = map[string]string{"seen": "yes"}
	tree := mustNew(t, rootWith(vip, hw, any))

	for _, tt := range []struct {
		name     string
		tk       ticket.Ticket
		rules    []string
		tier     ticket.Tier
		channel  ticket.Channel
		priority int
		do       []string
		extra    map[string]string
	}{
		{
			"a continue route applies and a later sibling adds on top",
			ticket.Ticket{ID: "1", Category: "hardware", Tags: []string{"vip"}, Priority: 3},
			[]string{"root", "vip", "hardware"}, "l2", "walk_in", 2,
			[]string{"call ahead", "bring a spare"}, map[string]string{"queue": "desk"},
		},
		{
			"matching stops at the first sibling without continue",
			ticket.Ticket{ID: "2", Category: "hardware", Priority: 3},
			[]string{"root", "hardware"}, "l1", "walk_in", 3,
			[]string{"bring a spare"}, map[string]string{"queue": "desk"},
		},
		{
			"a continue route whose later siblings miss falls through to the catch-all",
			ticket.Ticket{ID: "3", Category: "software", Tags: []string{"vip"}, Priority: 3},
			[]string{"root", "vip", "catch-all"}, "l2", "portal", 2,
			[]string{"call ahead"}, map[string]string{"queue": "vip", "seen": "yes"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tree.Route(&tt.tk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Rules, tt.rules) {
				t.Errorf("Route(%s).Rules = %q, want %q", tt.tk.ID, got.Rules, tt.rules)
			}
			if got.Tier != tt.tier || got.Channel != tt.channel || got.Priority != tt.priority {
				t.Errorf("Route(%s) = %s/%s/%d, want %s/%s/%d", tt.tk.ID, got.Tier, got.Channel, got.Priority, tt.tier, tt.channel, tt.priority)
			}
			if !slices.Equal(got.Hints.Do, tt.do) {
				t.Errorf("Route(%s).Hints.Do = %q, want %q", tt.tk.ID, got.Hints.Do, tt.do)
			}
			if fmt.Sprint(got.Hints.Extra) != fmt.Sprint(tt.extra) {
				t.Errorf("Route(%s).Hints.Extra = %v, want %v", tt.tk.ID, got.Hints.Extra, tt.extra)
			}
		})
	}
}

func TestInheritance(t *testing.T) {
	leaf := route("leaf", "ticket.subcategory = laptop")
	leafWithTier := route("leaf-l3", "ticket.subcategory = server")
	leafWithTier.Tier = "l3"
	mid := route("hardware", "ticket.category = hardware")
	mid.Tier, mid.Routes = "desktop", []config.Route{leaf, leafWithTier}
	unnamed := route("", "ticket.category = network")
	unnamed.Routes = []config.Route{route("", "ticket.subcategory = wifi")}
	tree := mustNew(t, rootWith(mid, unnamed))

	for _, tt := range []struct {
		name    string
		tk      ticket.Ticket
		rules   []string
		tier    ticket.Tier
		channel ticket.Channel
	}{
		{"a child without a tier inherits its parent's", ticket.Ticket{Category: "hardware", Subcategory: "laptop"},
			[]string{"root", "hardware", "leaf"}, "desktop", "portal"},
		{"a child's own tier overrides its parent's", ticket.Ticket{Category: "hardware", Subcategory: "server"},
			[]string{"root", "hardware", "leaf-l3"}, "l3", "portal"},
		{"a route whose children all miss decides itself", ticket.Ticket{Category: "hardware", Subcategory: "mouse"},
			[]string{"root", "hardware"}, "desktop", "portal"},
		{"no rule matches: the root decides", ticket.Ticket{Category: "access"},
			[]string{"root"}, "l1", "portal"},
		{"unnamed routes are named by their position", ticket.Ticket{Category: "network", Subcategory: "wifi"},
			[]string{"root", "root/routes[1]", "root/routes[1]/routes[0]"}, "l1", "portal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tree.Route(&tt.tk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Rules, tt.rules) || got.Tier != tt.tier || got.Channel != tt.channel {
				t.Errorf("Route = %s/%s %q, want %s/%s %q", got.Tier, got.Channel, got.Rules, tt.tier, tt.channel, tt.rules)
			}
		})
	}
}

func TestPriority(t *testing.T) {
	custom := rootWith()
	custom.PriorityMatrix = [][]int{{1, 1, 2}, {2, 3, 3}, {4, 5, 5}}
	custom.DefaultPriority = 3
	up := route("urgent", "ticket.tags = urgent")
	up.PriorityAdjust = -3
	down := route("later", "ticket.tags = later")
	down.PriorityAdjust = 4
	adjusted := rootWith(up, down)
	adjusted.Route.PriorityAdjust = 1

	for _, tt := range []struct {
		name string
		cfg  config.Routing
		tk   ticket.Ticket
		want int
	}{
		{"the ticket's own priority wins over the matrix", rootWith(), ticket.Ticket{Priority: 2, Impact: 3, Urgency: 3}, 2},
		{"impact and urgency pick from the ITIL matrix by default", rootWith(), ticket.Ticket{Impact: 1, Urgency: 3}, 3},
		{"the worst cell of the ITIL matrix is 5", rootWith(), ticket.Ticket{Impact: 3, Urgency: 3}, 5},
		{"impact without urgency uses the default priority", rootWith(), ticket.Ticket{Impact: 1}, 4},
		{"a configured matrix replaces the ITIL one", custom, ticket.Ticket{Impact: 2, Urgency: 1}, 2},
		{"a configured default priority replaces 4", custom, ticket.Ticket{}, 3},
		{"adjustments of every matched route add up", adjusted, ticket.Ticket{Priority: 4, Tags: []string{"urgent"}}, 2},
		{"adjusted priority is clamped to 1", adjusted, ticket.Ticket{Priority: 1, Tags: []string{"urgent"}}, 1},
		{"adjusted priority is clamped to 5", adjusted, ticket.Ticket{Priority: 3, Tags: []string{"later"}}, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustNew(t, tt.cfg).Route(&tt.tk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Priority != tt.want {
				t.Errorf("Route(impact %d, urgency %d, priority %d).Priority = %d, want %d",
					tt.tk.Impact, tt.tk.Urgency, tt.tk.Priority, got.Priority, tt.want)
			}
		})
	}
}

func TestConditionsSeeEffectivePriority(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    config.Route
	}{
		{"a matcher sees the priority from the matrix", config.Route{Name: "p1", Matchers: []string{"ticket.priority = 1"}}},
		{"a when expression sees the priority from the matrix", config.Route{Name: "p1", When: "ticket.priority == 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk := ticket.Ticket{Impact: 1, Urgency: 1}
			got, err := mustNew(t, rootWith(tt.r)).Route(&tk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"root", "p1"}; !slices.Equal(got.Rules, want) {
				t.Errorf("Route(impact 1, urgency 1).Rules = %q, want %q", got.Rules, want)
			}
			if tk.Priority != 0 {
				t.Errorf("Route wrote priority %d into the caller's ticket", tk.Priority)
			}
		})
	}
}

func TestHints(t *testing.T) {
	trier := route("trier", "profile = trier")
	trier.Hints = map[string]string{
		"language":            "technical",
		"preferred_channels":  "chat, Walk-In",
		"do":                  "explain the cause | link the FAQ",
		"avoid":               "long calls",
		"status_update_every": "2h",
		"virtual_agent":       "solve_in_session",
		"communication_style": "friendly",
		"team":                "learning desk",
	}
	tree := mustNew(t, rootWith(trier), WithBaseHints(baseHints))

	t.Run("route hints override, append and extend the profile's base hints", func(t *testing.T) {
		got, err := tree.Route(&ticket.Ticket{ID: "1"}, &ticket.Profile{Name: ticket.Trier})
		if err != nil {
			t.Fatal(err)
		}
		want := ticket.Hints{
			CommunicationStyle: "friendly",
			Language:           "technical",
			PreferredChannels:  []ticket.Channel{ticket.ChannelChat, ticket.ChannelWalkIn},
			Do:                 []string{"send clear self-help steps", "explain the cause", "link the FAQ"},
			Avoid:              []string{"IT jargon", "long calls"},
			StatusUpdateEvery:  "2h",
			VirtualAgent:       "solve_in_session",
			Extra:              map[string]string{"team": "learning desk"},
		}
		if fmt.Sprintf("%+v", got.Hints) != fmt.Sprintf("%+v", want) {
			t.Errorf("Route.Hints =\n%+v\nwant\n%+v", got.Hints, want)
		}
	})
	t.Run("an unknown or missing profile starts from the unknown base hints", func(t *testing.T) {
		for _, p := range []*ticket.Profile{nil, {Name: "wizard"}, {Name: ticket.Unknown}} {
			got, err := tree.Route(&ticket.Ticket{ID: "1"}, p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Hints.StatusUpdateEvery != "8h" || got.Hints.Extra["profile"] == "" {
				t.Errorf("Route(profile %v).Hints = %+v, want the unknown base hints", p, got.Hints)
			}
		}
	})
	t.Run("decisions share nothing with the tree or each other", func(t *testing.T) {
		doer := &ticket.Profile{Name: ticket.Doer}
		first, _ := tree.Route(&ticket.Ticket{ID: "1"}, doer)
		first.Hints.Do[0] = "scribbled"
		first.Hints.PreferredChannels[0] = ticket.ChannelOther
		first.Rules[0] = "scribbled"
		_ = append(first.Rules, "appended") // must not write into Do
		unknown, _ := tree.Route(&ticket.Ticket{ID: "1"}, nil)
		unknown.Hints.Extra["profile"] = "scribbled"

		second, _ := tree.Route(&ticket.Ticket{ID: "1"}, doer)
		if second.Hints.Do[0] != "link knowledge articles" || second.Hints.PreferredChannels[0] != ticket.ChannelPortal || second.Rules[0] != "root" {
			t.Errorf("a second Route sees the first decision's writes: %+v", second)
		}
		if again, _ := tree.Route(&ticket.Ticket{ID: "1"}, nil); again.Hints.Extra["profile"] != "ask two survey questions" {
			t.Errorf("a second Route sees a write to the first's Extra: %v", again.Hints.Extra)
		}
		if baseHints[ticket.Doer].Do[0] != "link knowledge articles" {
			t.Errorf("Route wrote into the caller's base hints")
		}
	})
	t.Run("base hints are copied when the option is applied", func(t *testing.T) {
		h := map[ticket.ProfileName]ticket.Hints{ticket.Doer: {Do: []string{"original"}}}
		tree := mustNew(t, rootWith(), WithBaseHints(h))
		h[ticket.Doer].Do[0] = "changed later"
		got, _ := tree.Route(&ticket.Ticket{}, &ticket.Profile{Name: ticket.Doer})
		if !slices.Equal(got.Hints.Do, []string{"original"}) {
			t.Errorf("Route.Hints.Do = %q, want [original]", got.Hints.Do)
		}
	})
}

func TestWithBaseHintsRejectsBadValues(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hints map[ticket.ProfileName]ticket.Hints
		want  string
	}{
		{"an unknown profile name", map[ticket.ProfileName]ticket.Hints{"wizard": {}},
			`invalid routing option: base hints: "wizard" is not a profile; use one of doer, prioritizer, trier, supported, unknown`},
		{"a language that is neither technical nor plain", map[ticket.ProfileName]ticket.Hints{ticket.Doer: {Language: "geek"}},
			`invalid routing option: base hints of doer: "geek" is not a language; use "technical" or "plain"`},
		{"an invalid channel", map[ticket.ProfileName]ticket.Hints{ticket.Doer: {PreferredChannels: []ticket.Channel{"fax"}}},
			`invalid routing option: base hints of doer: preferred_channels: "fax" is not a channel`},
		{"a status cadence that is not a duration", map[ticket.ProfileName]ticket.Hints{ticket.Doer: {StatusUpdateEvery: "daily"}},
			`invalid routing option: base hints of doer: status_update_every: "daily" is not a positive duration; write it like "4h" or "90m"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(rootWith(), WithBaseHints(tt.hints))
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("New(WithBaseHints) error = %v, want ErrInvalidOption", err)
			}
			if err.Error() != tt.want {
				t.Errorf("New(WithBaseHints) error =\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestRouteRejectsInvalidTickets(t *testing.T) {
	tree := mustNew(t, rootWith())
	for _, tt := range []struct {
		name string
		tk   *ticket.Ticket
		want string
	}{
		{"a nil ticket", nil, "routing: invalid ticket: no ticket"},
		{"a priority out of range", &ticket.Ticket{ID: "X", Priority: 9}, "routing: invalid ticket: ticket X: priority 9 is out of range 1 to 5"},
		{"an impact out of range", &ticket.Ticket{ID: "X", Impact: 4, Urgency: 1}, "routing: invalid ticket: ticket X: impact 4 is out of range 1 to 3"},
		{"an urgency out of range", &ticket.Ticket{ID: "X", Impact: 1, Urgency: -1}, "routing: invalid ticket: ticket X: urgency -1 is out of range 1 to 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tree.Route(tt.tk, nil)
			if !errors.Is(err, ErrInvalidTicket) || err.Error() != tt.want {
				t.Errorf("Route error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestRouteIsSafeForConcurrentUse(t *testing.T) {
	tree := exampleTree(t)
	cases := loadCases(t, "conf.good.cases.yml")
	want := RunCases(tree, cases)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got := RunCases(tree, cases); got.String() != want.String() {
					t.Errorf("concurrent RunCases =\n%s\nwant\n%s", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
