package routing

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/deskrelay/deskrelay/ticket"
)

// Explanation traces one decision for people: `deskrelay route` prints its
// String. It is built by [Tree.Explain] and not used by [Tree.Route].
type Explanation struct {
	TicketID string
	Source   string
	Profile  ticket.ProfileName
	// Priority is the effective priority before adjustments; PriorityFrom
	// says where it came from. Adjust is the sum of the matched routes'
	// priority_adjust, applied before clamping to 1…5.
	Priority     int
	PriorityFrom string
	Adjust       int
	// Root is the root route; Children hold the routes visited below it.
	Root *Step
	// Decision is what Route returns for the same input; zero after an
	// error.
	Decision ticket.Routing
}

// Step is one visited route.
type Step struct {
	Rule     string // the name in Routing.Rules
	Path     string // the config key path
	Matched  bool
	Continue bool
	// Conditions are the route's matchers, in order, then its when
	// expression, if any.
	Conditions []Condition
	// Children are the child routes tried, in order.
	Children []*Step
	// NotTried names the children after the one that matched without
	// continue, which were therefore not tried.
	NotTried []string
}

// Condition is one matcher or when expression and its outcome.
type Condition struct {
	Expr string // the matcher as written, or "when <expression>"
	// Evaluated is false for a when expression skipped because a matcher
	// of the route did not hold.
	Evaluated bool
	Held      bool
	Got       string // the actual value: "hardware", 2, not set, [...]
	Want      string // what the condition wants
	Error     string // a when expression that failed at run time
}

// Explain routes like [Tree.Route] and also returns the trace of every
// route visited: each matcher and when expression, whether it held, the
// actual value and the wanted one. Unlike Route it evaluates every matcher
// of a visited route, not only up to the first that fails; when
// expressions still run only where all matchers held, so the decision and
// the errors are those of Route. After a when expression failed, the
// partial explanation is returned with the error.
func (t *Tree) Explain(tk *ticket.Ticket, p *ticket.Profile) (ticket.Routing, *Explanation, error) {
	in, from, err := t.newInput(tk, p)
	if err != nil {
		return ticket.Routing{}, nil, err
	}
	e := &Explanation{
		TicketID: tk.ID,
		Source:   tk.Source,
		Profile:  in.p.Name,
		Priority: in.prio,
	}
	switch from {
	case fromTicket:
		e.PriorityFrom = "given by the ticket"
	case fromMatrix:
		e.PriorityFrom = fmt.Sprintf("from the matrix for impact %d, urgency %d", tk.Impact, tk.Urgency)
	default:
		e.PriorityFrom = "the default (no priority, impact and urgency on the ticket)"
	}
	root, matched, _, err := explain(t.root, &in, nil)
	e.Root = root
	if err != nil {
		return ticket.Routing{}, e, err
	}
	for _, n := range matched {
		e.Adjust += n.adjust
	}
	e.Decision = t.decide(&in, matched)
	return e.Decision, e, nil
}

func explain(n *node, in *input, out []*node) (*Step, []*node, bool, error) {
	s := &Step{Rule: n.name, Path: n.path, Continue: n.cont}
	all := true
	for _, m := range n.matchers {
		held := m.matches(in)
		s.Conditions = append(s.Conditions, Condition{
			Expr: m.src, Evaluated: true, Held: held, Got: m.got(in), Want: m.want(),
		})
		all = all && held
	}
	if n.when != nil {
		c := Condition{Expr: "when " + n.when.src, Want: "true"}
		if all {
			if in.act == nil {
				in.act = newActivation(in)
			}
			ok, err := n.when.eval(in.act)
			c.Evaluated, c.Held, c.Got = true, ok, strconv.FormatBool(ok)
			if err != nil {
				c.Got, c.Error = "an error", err.Error()
				s.Conditions = append(s.Conditions, c)
				return s, out, false, n.whenError(err)
			}
			all = ok
		}
		s.Conditions = append(s.Conditions, c)
	}
	s.Matched = all
	if !all {
		return s, out, false, nil
	}
	out = append(out, n)
	for i, c := range n.children {
		cs, o, m, err := explain(c, in, out)
		out = o
		s.Children = append(s.Children, cs)
		if err != nil {
			return s, out, false, err
		}
		if m && !c.cont {
			for _, rest := range n.children[i+1:] {
				s.NotTried = append(s.NotTried, rest.name)
			}
			break
		}
	}
	return s, out, true, nil
}

// String renders the explanation as indented text: one line per route
// visited, one per condition below it (✓ held, ✗ did not, - not
// evaluated), then the decision and its hints.
func (e *Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ticket %s from %s, profile %s\n", e.TicketID, e.Source, e.Profile)
	fmt.Fprintf(&b, "priority %d before adjustments, %s\n", e.Priority, e.PriorityFrom)
	if e.Root != nil {
		writeStep(&b, e.Root, 0)
	}
	d := e.Decision
	if d.Tier == "" {
		b.WriteString("no decision\n")
		return b.String()
	}
	fmt.Fprintf(&b, "decision: tier %s, channel %s, priority %d", d.Tier, d.Channel, d.Priority)
	if e.Adjust != 0 {
		fmt.Fprintf(&b, " (%d adjusted by %+d)", e.Priority, e.Adjust)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "rules: %s\n", strings.Join(d.Rules, " > "))
	if lines := hintLines(d.Hints); len(lines) > 0 {
		b.WriteString("hints:\n")
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

func writeStep(b *strings.Builder, s *Step, depth int) {
	pad := strings.Repeat("  ", depth)
	outcome := "no match"
	switch {
	case s.Matched && s.Continue:
		outcome = "matched, continue"
	case s.Matched:
		outcome = "matched"
	}
	fmt.Fprintf(b, "%sroute %s (%s): %s\n", pad, s.Rule, s.Path, outcome)
	if len(s.Conditions) == 0 && depth > 0 {
		fmt.Fprintf(b, "%s  (no conditions: matches every ticket)\n", pad)
	}
	for _, c := range s.Conditions {
		switch {
		case c.Error != "":
			fmt.Fprintf(b, "%s  ✗ %s  (error: %s)\n", pad, c.Expr, c.Error)
		case !c.Evaluated:
			fmt.Fprintf(b, "%s  - %s  (not evaluated: a matcher did not hold)\n", pad, c.Expr)
		case c.Held:
			fmt.Fprintf(b, "%s  ✓ %s  (got %s)\n", pad, c.Expr, c.Got)
		default:
			fmt.Fprintf(b, "%s  ✗ %s  (got %s, want %s)\n", pad, c.Expr, c.Got, c.Want)
		}
	}
	for _, c := range s.Children {
		writeStep(b, c, depth+1)
	}
	if len(s.NotTried) > 0 {
		fmt.Fprintf(b, "%s  not tried: %s (an earlier sibling matched without continue)\n", pad, strings.Join(s.NotTried, ", "))
	}
}
