package routing

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// Errors Route and Explain return; branch on them with [errors.Is]. The
// pipeline dead-letters both with reason [ticket.ReasonRouting].
var (
	// ErrWhen wraps a when expression that failed at run time.
	ErrWhen = errors.New("routing: when expression failed")
	// ErrInvalidTicket is returned for a nil ticket, or one whose
	// priority, impact or urgency is out of range.
	ErrInvalidTicket = errors.New("routing: invalid ticket")
)

// ErrInvalidOption wraps the error of an [Option] given a bad value.
var ErrInvalidOption = errors.New("invalid routing option")

// rootPath is the key path of the root route in the configuration file.
const rootPath = "routing.route"

// itilMatrix is the ITIL priority matrix, [impact-1][urgency-1], used when
// the config has none.
var itilMatrix = [3][3]int{{1, 2, 3}, {2, 3, 4}, {3, 4, 5}}

// DefaultPriority is the priority of a ticket with neither a priority nor
// both impact and urgency, when the config leaves default_priority at 0.
const DefaultPriority = 4

// Tree is a compiled routing tree. It is immutable: build a new one with
// [New] when the configuration changes, and swap it in atomically. Its
// methods are safe for concurrent use.
type Tree struct {
	root    *node
	matrix  [3][3]int
	defPrio int
	base    [numSlots]ticket.Hints
}

// node is one compiled route.
type node struct {
	name     string // as in Routing.Rules
	path     string // config key path: routing.route.routes[2]
	matchers []*matcher
	when     *when
	cont     bool
	tier     ticket.Tier    // "" when the route does not set it
	channel  ticket.Channel // "" when the route does not set it
	adjust   int
	hints    hintPatch
	children []*node
}

// Option configures [New].
type Option func(*options) error

type options struct {
	base [numSlots]ticket.Hints
}

// WithBaseHints sets the hints every decision starts from, per profile
// (enrichment derives them from the profiles of DESIGN.md §1). A caller
// whose profile is not one of the four, or nil, gets the hints of
// [ticket.Unknown]. The map is deep-copied. Without this option hints start
// empty. An invalid profile name, language, channel or duration fails with
// [ErrInvalidOption].
func WithBaseHints(h map[ticket.ProfileName]ticket.Hints) Option {
	return func(o *options) error {
		for _, name := range slices.Sorted(maps.Keys(h)) {
			n, err := ticket.ParseProfileName(string(name))
			if err != nil {
				return fmt.Errorf("%w: base hints: %w", ErrInvalidOption, err)
			}
			if err := checkBaseHints(h[name]); err != nil {
				return fmt.Errorf("%w: base hints of %s: %w", ErrInvalidOption, n, err)
			}
			o.base[profileSlot(n)] = cloneHints(h[name])
		}
		return nil
	}
}

// New compiles cfg into a Tree: matchers are parsed, regexes compiled and
// when expressions type-checked once, here. A bad configuration returns
// [config.Errors] listing every problem, each with the full key path from
// the config root ("routing.route.routes[2].matchers[0]"), to which
// [config.Config.Locate] adds file positions. A bad option returns an error
// wrapping [ErrInvalidOption].
func New(cfg config.Routing, opts ...Option) (*Tree, error) {
	var o options
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	env, err := newWhenEnv()
	if err != nil {
		return nil, fmt.Errorf("routing: declare when variables: %w", err)
	}
	var errs config.Errors
	t := &Tree{base: o.base}
	t.matrix = compileMatrix(cfg.PriorityMatrix, &errs)
	t.defPrio = cfg.DefaultPriority
	switch {
	case t.defPrio == 0:
		t.defPrio = DefaultPriority
	case t.defPrio < 1 || t.defPrio > 5:
		errs = append(errs, config.Errorf("routing.default_priority", "%d is out of range; use 1 (critical) to 5 (planning)", t.defPrio))
	}
	b := builder{env: env, errs: &errs}
	t.root = b.route(cfg.Route, rootPath, cmp.Or(strings.TrimSpace(cfg.Route.Name), "root"), true)
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

func compileMatrix(m [][]int, errs *config.Errors) [3][3]int {
	if len(m) == 0 {
		return itilMatrix
	}
	const path = "routing.priority_matrix"
	var out [3][3]int
	if len(m) != 3 {
		*errs = append(*errs, config.Errorf(path, "has %d rows, want 3 (impact 1 to 3)", len(m)))
	}
	for i, row := range m[:min(len(m), 3)] {
		if len(row) != 3 {
			*errs = append(*errs, config.Errorf(fmt.Sprintf("%s[%d]", path, i), "has %d values, want 3 (urgency 1 to 3)", len(row)))
		}
		for j, v := range row[:min(len(row), 3)] {
			if v < 1 || v > 5 {
				*errs = append(*errs, config.Errorf(fmt.Sprintf("%s[%d][%d]", path, i, j), "%d is out of range; use 1 (critical) to 5 (planning)", v))
			}
			out[i][j] = v
		}
	}
	return out
}

type builder struct {
	env  *cel.Env
	errs *config.Errors
}

func (b *builder) errorf(path, format string, args ...any) {
	*b.errs = append(*b.errs, config.Errorf(path, format, args...))
}

// route compiles r and its children. A child that does not set its tier or
// channel inherits it: the decision folds the settings of every matched
// route, root first, so the nearest matched route that sets one wins.
func (b *builder) route(r config.Route, path, name string, root bool) *node {
	n := &node{name: name, path: path, cont: r.Continue, adjust: r.PriorityAdjust}
	if root {
		if len(r.Matchers) > 0 {
			b.errorf(path+".matchers", "the root route matches every ticket; move its matchers to a child route")
		}
		if strings.TrimSpace(r.When) != "" {
			b.errorf(path+".when", "the root route matches every ticket; move its when to a child route")
		}
		if r.Continue {
			b.errorf(path+".continue", "the root route has no siblings; remove continue")
		}
		if r.Tier == "" {
			b.errorf(path+".tier", "is required: the root's tier is the default for every ticket")
		}
		if r.Channel == "" {
			b.errorf(path+".channel", "is required: the root's channel is the default for every ticket")
		}
	}
	if r.Tier != "" {
		t, err := ticket.ParseTier(r.Tier)
		if err != nil {
			b.errorf(path+".tier", "%v", err)
		}
		n.tier = t
	}
	if r.Channel != "" {
		c, err := ticket.ParseChannel(r.Channel)
		if err != nil {
			b.errorf(path+".channel", "%v", err)
		}
		n.channel = c
	}
	if !root {
		for i, s := range r.Matchers {
			m, err := parseMatcher(s)
			if err != nil {
				b.errorf(fmt.Sprintf("%s.matchers[%d]", path, i), "%v", err)
				continue
			}
			n.matchers = append(n.matchers, m)
		}
		if strings.TrimSpace(r.When) != "" {
			w, err := compileWhen(b.env, r.When)
			if err != nil {
				b.errorf(path+".when", "%v", err)
			}
			n.when = w
		}
	}
	if r.PriorityAdjust < -4 || r.PriorityAdjust > 4 {
		b.errorf(path+".priority_adjust", "%d is out of range; use -4 to 4 (negative is more urgent)", r.PriorityAdjust)
	}
	n.hints = compileHints(r.Hints, path+".hints", b.errs)

	seen := make(map[string]string, len(r.Routes))
	for i, c := range r.Routes {
		cpath := fmt.Sprintf("%s.routes[%d]", path, i)
		cname := strings.TrimSpace(c.Name)
		if cname == "" {
			cname = fmt.Sprintf("%s/routes[%d]", name, i)
		}
		if prev, dup := seen[cname]; dup {
			b.errorf(cpath+".name", "%q is already the name of %s; sibling names must be unique", cname, prev)
		}
		seen[cname] = cpath
		n.children = append(n.children, b.route(c, cpath, cname, false))
	}
	return n
}

// Route decides how tk is served: the routes are tried depth-first, left to
// right, from the root; the settings of every matched route apply in that
// order. p may be nil (unknown profile). Route is pure, safe for concurrent
// use, and shares no slice or map of its result with the tree or with
// another result. It fails with [ErrWhen] when a when expression fails at
// run time, and with [ErrInvalidTicket].
func (t *Tree) Route(tk *ticket.Ticket, p *ticket.Profile) (ticket.Routing, error) {
	in, _, err := t.newInput(tk, p)
	if err != nil {
		return ticket.Routing{}, err
	}
	var stack [16]*node // matched routes; most trees never need more
	matched, _, err := walk(t.root, &in, stack[:0])
	if err != nil {
		return ticket.Routing{}, err
	}
	return t.decide(&in, matched), nil
}

// walk appends n and, if it matches, its matching descendants to out.
// Among siblings the first match stops the search unless it has continue.
func walk(n *node, in *input, out []*node) ([]*node, bool, error) {
	ok, err := n.holds(in)
	if err != nil || !ok {
		return out, false, err
	}
	out = append(out, n)
	for _, c := range n.children {
		var m bool
		if out, m, err = walk(c, in, out); err != nil {
			return out, false, err
		}
		if m && !c.cont {
			break
		}
	}
	return out, true, nil
}

// holds reports whether all of n's matchers and its when expression hold.
func (n *node) holds(in *input) (bool, error) {
	for _, m := range n.matchers {
		if !m.matches(in) {
			return false, nil
		}
	}
	if n.when == nil {
		return true, nil
	}
	return n.evalWhen(in)
}

func (n *node) evalWhen(in *input) (bool, error) {
	if in.act == nil {
		in.act = newActivation(in)
	}
	ok, err := n.when.eval(in.act)
	if err != nil {
		return false, n.whenError(err)
	}
	return ok, nil
}

func (n *node) whenError(err error) error {
	return fmt.Errorf("%w: rule %s: %w", ErrWhen, n.name, err)
}

// decide folds the matched routes, root first, into the decision.
func (t *Tree) decide(in *input, matched []*node) ticket.Routing {
	var r ticket.Routing
	adj := 0
	for _, n := range matched {
		if n.tier != "" {
			r.Tier = n.tier
		}
		if n.channel != "" {
			r.Channel = n.channel
		}
		adj += n.adjust
	}
	r.Priority = min(max(in.prio+adj, 1), 5)
	r.Rules, r.Hints = buildHints(&t.base[profileSlot(in.p.Name)], matched)
	return r
}

// noProfile stands in for a nil profile. Nothing writes to it.
var noProfile = ticket.Profile{Name: ticket.Unknown, Source: "none"}

// prioFrom says where the effective priority came from.
type prioFrom uint8

const (
	fromTicket prioFrom = iota + 1
	fromMatrix
	fromDefault
)

func (t *Tree) newInput(tk *ticket.Ticket, p *ticket.Profile) (input, prioFrom, error) {
	if tk == nil {
		return input{}, 0, fmt.Errorf("%w: no ticket", ErrInvalidTicket)
	}
	if p == nil {
		p = &noProfile
	}
	prio, from, err := t.priority(tk)
	if err != nil {
		return input{}, 0, err
	}
	return input{tk: tk, p: p, prio: prio}, from, nil
}

// priority is the ticket's effective priority before adjustments: its own,
// else the matrix entry for its impact and urgency, else the default.
func (t *Tree) priority(tk *ticket.Ticket) (int, prioFrom, error) {
	if tk.Impact < 0 || tk.Impact > 3 {
		return 0, 0, fmt.Errorf("%w: ticket %s: impact %d is out of range 1 to 3", ErrInvalidTicket, tk.ID, tk.Impact)
	}
	if tk.Urgency < 0 || tk.Urgency > 3 {
		return 0, 0, fmt.Errorf("%w: ticket %s: urgency %d is out of range 1 to 3", ErrInvalidTicket, tk.ID, tk.Urgency)
	}
	switch {
	case tk.Priority < 0 || tk.Priority > 5:
		return 0, 0, fmt.Errorf("%w: ticket %s: priority %d is out of range 1 to 5", ErrInvalidTicket, tk.ID, tk.Priority)
	case tk.Priority != 0:
		return tk.Priority, fromTicket, nil
	case tk.Impact != 0 && tk.Urgency != 0:
		return t.matrix[tk.Impact-1][tk.Urgency-1], fromMatrix, nil
	}
	return t.defPrio, fromDefault, nil
}
