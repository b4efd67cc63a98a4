package routing

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deskrelay/deskrelay/ticket"
)

// Case is one route test: a ticket and a profile, and what the decision
// must be. Integration engineers keep them in a YAML file (see
// [ParseCases]) and run them in their CI with [RunCases].
type Case struct {
	Name    string
	Line    int // line of the case in its file; 0 when built in code
	Ticket  ticket.Ticket
	Profile ticket.Profile
	Expect  Expect
}

// Expect is what a case checks. Zero fields are not checked.
type Expect struct {
	Tier     ticket.Tier
	Channel  ticket.Channel
	Priority int
	Rules    []string // the rule path, root first; nil: not checked
}

// CaseError is a problem in a route-test file. Case is the 1-based index
// of the case, 0 for a problem outside the cases; Line is 0 when unknown.
type CaseError struct {
	Line int
	Case int
	Name string
	Msg  string
}

func (e *CaseError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Case > 0 {
		fmt.Fprintf(&b, "case %d", e.Case)
		if e.Name != "" {
			fmt.Fprintf(&b, " %q", e.Name)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Defaults filled into a case ticket and profile.
const (
	CaseSource     = "route-test" // ticket source and profile source when not given
	caseIDPrefix   = "case-"      // ticket id "case-<n>" when not given
	caseConfidence = 1.0
)

// ParseCases reads a route-test file:
//
//	cases:
//	  - name: technical doer with a broken laptop skips L1
//	    profile: doer      # or {name: doer, competence: 0.8, attitude: 0.9}
//	    ticket: {title: "Laptop will not boot", category: hardware, impact: 2, urgency: 2}
//	    expect: {tier: l2, channel: portal, priority: 3, rules: [root, doer]}
//
// Ticket keys are the JSON names of [ticket.Ticket] (caller is a mapping of
// id, email, name); a ticket without id or source gets "case-<n>" and
// "route-test". A profile without source gets "route-test", without
// confidence 1; a case without a profile is routed as unknown. Every expect
// key is optional, but an expect needs at least one. Unknown keys are
// errors. Every problem is reported, joined, each a *[CaseError] naming the
// case and the line.
func ParseCases(data []byte) (cases []Case, err error) {
	defer func() {
		if r := recover(); r != nil {
			cases, err = nil, &CaseError{Msg: fmt.Sprintf("route cases: internal error: %v", r)}
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &CaseError{Msg: err.Error()}
	}
	if len(doc.Content) == 0 {
		return nil, &CaseError{Msg: "empty file; want a list under cases:"}
	}
	p := &caseParser{}
	top := p.mapping(deref(doc.Content[0]), "the file", []string{"cases"})
	list := top["cases"]
	switch {
	case top == nil:
	case list == nil:
		p.errf(doc.Content[0], "missing cases: list")
	case deref(list).Kind != yaml.SequenceNode:
		p.errf(list, "cases: want a list, got %s", nodeKind(list))
	case len(deref(list).Content) == 0:
		p.errf(list, "cases: the list is empty")
	default:
		names := make(map[string]int)
		for i, n := range deref(list).Content {
			c := p.parseCase(i+1, deref(n))
			if prev, dup := names[c.Name]; dup && c.Name != "" {
				p.errs = append(p.errs, &CaseError{Line: n.Line, Case: i + 1, Name: c.Name,
					Msg: fmt.Sprintf("name is already used by case %d; names must be unique", prev)})
			} else {
				names[c.Name] = i + 1
			}
			cases = append(cases, c)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return cases, nil
}

type caseParser struct {
	errs []error
	// index and name of the case being parsed, for messages
	index int
	name  string
}

func (p *caseParser) errf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &CaseError{Line: n.Line, Case: p.index, Name: p.name, Msg: fmt.Sprintf(format, args...)})
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch deref(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// mapping returns the values of a mapping node by key, reporting keys not
// in allowed and repeated keys. It returns nil when n is not a mapping.
func (p *caseParser) mapping(n *yaml.Node, where string, allowed []string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s: want a mapping, got %s", where, nodeKind(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch _, dup := out[k.Value]; {
		case !slices.Contains(allowed, k.Value):
			if s := suggest(k.Value, allowed); s != "" {
				p.errf(k, "%s: unknown key %q (did you mean %q?)", where, k.Value, s)
			} else {
				p.errf(k, "%s: unknown key %q; use %s", where, k.Value, strings.Join(allowed, ", "))
			}
		case dup:
			p.errf(k, "%s: key %q repeated", where, k.Value)
		default:
			out[k.Value] = deref(v)
		}
	}
	return out
}

func (p *caseParser) parseCase(index int, n *yaml.Node) Case {
	p.index, p.name = index, ""
	defer func() { p.index, p.name = 0, "" }()
	c := Case{Line: n.Line}
	if n.Kind == yaml.MappingNode { // name the case in messages about its other keys
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				p.name = n.Content[i+1].Value
				break
			}
		}
	}
	m := p.mapping(n, "case", []string{"name", "profile", "ticket", "expect"})
	if m == nil {
		return c
	}
	if v := m["name"]; v != nil {
		p.decode(v, "name", &c.Name)
	}
	c.Ticket = ticket.Ticket{ID: caseIDPrefix + strconv.Itoa(index), Source: CaseSource}
	if v := m["ticket"]; v != nil {
		p.parseTicket(v, &c.Ticket)
	}
	c.Profile = ticket.Profile{Name: ticket.Unknown, Source: CaseSource}
	if v := m["profile"]; v != nil {
		c.Profile = p.parseProfile(v)
	}
	if v := m["expect"]; v != nil {
		c.Expect = p.parseExpect(v)
	} else {
		p.errf(n, "missing expect: a case must check at least one of tier, channel, priority, rules")
	}
	return c
}

// caseField binds a key of a case mapping to the Go value it fills.
type caseField struct {
	key string
	ptr any
}

func keysOf(fs []caseField) []string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// ticketFields lists the keys a case ticket may have: the JSON names of
// [ticket.Ticket], except raw.
func ticketFields(t *ticket.Ticket) []caseField {
	return []caseField{
		{"id", &t.ID}, {"source", &t.Source}, {"number", &t.Number},
		{"title", &t.Title}, {"description", &t.Description}, {"caller", &t.Caller},
		{"channel", &t.Channel}, {"category", &t.Category}, {"subcategory", &t.Subcategory},
		{"impact", &t.Impact}, {"urgency", &t.Urgency}, {"priority", &t.Priority},
		{"state", &t.State}, {"assignment_group", &t.AssignmentGroup}, {"assigned_to", &t.AssignedTo},
		{"configuration_item", &t.ConfigurationItem},
		{"opened_at", &t.OpenedAt}, {"updated_at", &t.UpdatedAt}, {"version", &t.Version}, {"tags", &t.Tags},
	}
}

func (p *caseParser) fill(n *yaml.Node, where string, fs []caseField) {
	m := p.mapping(n, where, keysOf(fs))
	for _, f := range fs {
		if v := m[f.key]; v != nil {
			p.decode(v, where+"."+f.key, f.ptr)
		}
	}
}

func (p *caseParser) parseTicket(n *yaml.Node, t *ticket.Ticket) {
	p.fill(n, "ticket", ticketFields(t))
	check := *t
	check.Title = "route test" // a case need not have a title
	var ve *ticket.ValidationError
	if errors.As(check.Validate(), &ve) {
		for _, f := range ve.Fields {
			p.errf(n, "ticket.%s", f)
		}
	}
}

func (p *caseParser) parseProfile(n *yaml.Node) ticket.Profile {
	pr := ticket.Profile{Source: CaseSource, Confidence: caseConfidence}
	if n.Kind == yaml.ScalarNode {
		p.decode(n, "profile", &pr.Name)
		return pr
	}
	fs := []caseField{
		{"name", &pr.Name}, {"source", &pr.Source}, {"confidence", &pr.Confidence},
		{"competence", &pr.Competence}, {"attitude", &pr.Attitude}, {"reason", &pr.Reason},
	}
	p.fill(n, "profile", fs)
	if pr.Name == "" && n.Kind == yaml.MappingNode {
		p.errf(n, "profile.name: is required")
	}
	return pr
}

func (p *caseParser) parseExpect(n *yaml.Node) Expect {
	var e Expect
	fs := []caseField{{"tier", &e.Tier}, {"channel", &e.Channel}, {"priority", &e.Priority}, {"rules", &e.Rules}}
	m := p.mapping(n, "expect", keysOf(fs))
	if m == nil {
		return e
	}
	if len(m) == 0 {
		p.errf(n, "expect: check at least one of %s", strings.Join(keysOf(fs), ", "))
	}
	for _, f := range fs {
		if v := m[f.key]; v != nil {
			p.decode(v, "expect."+f.key, f.ptr)
		}
	}
	if v := m["priority"]; v != nil && (e.Priority < 1 || e.Priority > 5) {
		p.errf(v, "expect.priority: %d is out of range; use 1 (critical) to 5 (planning)", e.Priority)
	}
	if v := m["rules"]; v != nil && v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		p.errf(v, "expect.rules: the list is empty; it starts with the root")
	}
	return e
}

// decode fills ptr from the scalar or list n, reporting a value of the
// wrong type or out of its set at n's line.
func (p *caseParser) decode(n *yaml.Node, where string, ptr any) {
	scalar := func() (string, bool) {
		if n.Kind != yaml.ScalarNode {
			p.errf(n, "%s: want a value, got %s", where, nodeKind(n))
			return "", false
		}
		return n.Value, true
	}
	switch v := ptr.(type) {
	case *string:
		*v, _ = scalar()
	case *int:
		if s, ok := scalar(); ok {
			i, err := strconv.Atoi(s)
			if err != nil {
				p.errf(n, "%s: %q is not a whole number", where, s)
			}
			*v = i
		}
	case *float64:
		if s, ok := scalar(); ok {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				p.errf(n, "%s: %q is not a number", where, s)
			}
			*v = f
		}
	case **float64:
		var f float64
		p.decode(n, where, &f)
		*v = &f
	case *time.Time:
		if s, ok := scalar(); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				p.errf(n, "%s: %q is not an RFC 3339 time", where, s)
			}
			*v = t
		}
	case *[]string:
		if n.Kind != yaml.SequenceNode {
			p.errf(n, "%s: want a list, got %s", where, nodeKind(n))
			return
		}
		for _, it := range n.Content {
			var s string
			p.decode(deref(it), where, &s)
			*v = append(*v, s)
		}
	case *ticket.Caller:
		p.fill(n, where, []caseField{{"id", &v.ID}, {"email", &v.Email}, {"name", &v.Name}})
	case *ticket.Channel:
		if s, ok := scalar(); ok {
			c, err := ticket.ParseChannel(s)
			if err != nil {
				p.errf(n, "%s: %v", where, err)
			}
			*v = c
		}
	case *ticket.Tier:
		if s, ok := scalar(); ok {
			t, err := ticket.ParseTier(s)
			if err != nil {
				p.errf(n, "%s: %v", where, err)
			}
			*v = t
		}
	case *ticket.ProfileName:
		if s, ok := scalar(); ok {
			pn, err := ticket.ParseProfileName(s)
			if err != nil {
				p.errf(n, "%s: %v", where, err)
			}
			*v = pn
		}
	default:
		panic(fmt.Sprintf("routing: no case decoder for %T", ptr))
	}
}

// Report is the outcome of [RunCases].
type Report struct {
	Results []Result
}

// Result is the outcome of one case.
type Result struct {
	Case  Case
	Got   ticket.Routing
	Err   error  // Route failed
	Diffs []Diff // the checked fields that differ
}

// Diff is one checked field whose decision differs from the expectation.
type Diff struct {
	Field string // tier, channel, priority or rules
	Want  string
	Got   string
}

// Passed reports whether the case was routed as expected.
func (r *Result) Passed() bool { return r.Err == nil && len(r.Diffs) == 0 }

// Failed returns the number of cases not routed as expected.
func (r Report) Failed() int {
	n := 0
	for i := range r.Results {
		if !r.Results[i].Passed() {
			n++
		}
	}
	return n
}

// RunCases routes every case through t and compares the decision with the
// expectation. It does not stop at the first failure.
func RunCases(t *Tree, cases []Case) Report {
	r := Report{Results: make([]Result, len(cases))}
	for i, c := range cases {
		res := Result{Case: c}
		res.Got, res.Err = t.Route(&c.Ticket, &c.Profile)
		if res.Err == nil {
			res.Diffs = c.Expect.diff(res.Got)
		}
		r.Results[i] = res
	}
	return r
}

func (e Expect) diff(got ticket.Routing) []Diff {
	var ds []Diff
	if e.Tier != "" && e.Tier != got.Tier {
		ds = append(ds, Diff{"tier", string(e.Tier), string(got.Tier)})
	}
	if e.Channel != "" && e.Channel != got.Channel {
		ds = append(ds, Diff{"channel", string(e.Channel), string(got.Channel)})
	}
	if e.Priority != 0 && e.Priority != got.Priority {
		ds = append(ds, Diff{"priority", strconv.Itoa(e.Priority), strconv.Itoa(got.Priority)})
	}
	if e.Rules != nil && !slices.Equal(e.Rules, got.Rules) {
		ds = append(ds, Diff{"rules", strings.Join(e.Rules, " > "), strings.Join(got.Rules, " > ")})
	}
	return ds
}

// String renders one line per case, "ok" or "FAIL", with the differing
// fields (want, then got) or the error below each failure, and a summary
// line.
func (r Report) String() string {
	var b strings.Builder
	for i := range r.Results {
		res := &r.Results[i]
		name := res.Case.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		if res.Case.Line > 0 {
			name += fmt.Sprintf(" (line %d)", res.Case.Line)
		}
		if res.Passed() {
			fmt.Fprintf(&b, "ok    %s\n", name)
			continue
		}
		fmt.Fprintf(&b, "FAIL  %s\n", name)
		if res.Err != nil {
			fmt.Fprintf(&b, "        error: %v\n", res.Err)
		}
		for _, d := range res.Diffs {
			fmt.Fprintf(&b, "        %-9s want %s\n", d.Field+":", d.Want)
			fmt.Fprintf(&b, "        %-9s got  %s\n", "", d.Got)
		}
	}
	n, failed := len(r.Results), r.Failed()
	verdict := "PASS"
	if failed > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %d cases, %d passed, %d failed\n", verdict, n, n-failed, failed)
	return b.String()
}
