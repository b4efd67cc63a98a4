package routing

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/deskrelay/deskrelay/ticket"
)

func TestParseMatcherErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		matcher string
		want    string
	}{
		{"an empty matcher", "", `column 1: empty matcher; want "field op value"`},
		{"a blank matcher", "   ", `column 1: empty matcher; want "field op value"`},
		{"no field name", "= hardware", `column 1: expected a field name, got "="`},
		{"a misspelt field", "ticket.categroy = hardware", `column 1: unknown field "ticket.categroy" (did you mean "ticket.category"?)`},
		{"a misspelt field after blanks", "   ticket.categroy = hardware", `column 4: unknown field "ticket.categroy" (did you mean "ticket.category"?)`},
		{"a field without its prefix", "category = hardware", `column 1: unknown field "category" (did you mean "ticket.category"?)`},
		{"a field nothing is close to", "weather = rain", `column 1: unknown field "weather"`},
		{"no operator", "ticket.category", `column 16: missing operator after "ticket.category"; use one of =, !=, =~, !~, in, not in, <, <=, >, >=`},
		{"a doubled equals sign", "ticket.category == hardware", `column 17: unknown operator "=="; use one of =, !=, =~, !~, in, not in, <, <=, >, >=`},
		{"a word operator", "ticket.category is hardware", `column 17: unknown operator "is"; use one of =, !=, =~, !~, in, not in, <, <=, >, >=`},
		{"not without in", "ticket.category not hardware", `column 17: unknown operator; "not" must be followed by "in"`},
		{"a punctuation operator", "ticket.category : hardware", `column 17: unknown operator ":"; use one of =, !=, =~, !~, in, not in, <, <=, >, >=`},
		{"a numeric operator on text", "ticket.title < 3", `column 14: operator "<" needs a numeric field; ticket.title is text`},
		{"a numeric operator on tags", "ticket.tags >= 2", `column 13: operator ">=" needs a numeric field; ticket.tags is a list of tags`},
		{"a regex on a number", "ticket.impact =~ 1|2", `column 15: operator "=~" needs a text field; ticket.impact is a number`},
		{"a missing value", "ticket.category =", `column 18: missing value; quote an empty value: ""`},
		{"a missing value after blanks", "ticket.category =   ", `column 21: missing value; quote an empty value: ""`},
		{"an unterminated quote", `ticket.title = "laptop`, `column 16: unterminated or malformed quoted value`},
		{"text after a quoted value", `ticket.title = "laptop" x`, `column 25: unexpected "x" after the quoted value`},
		{"an invalid regex", "ticket.title =~ (unclosed", `column 17: invalid regex "(unclosed": missing closing )`},
		{"an invalid regex repetition", "ticket.title !~ a**", `column 17: invalid regex "a**": invalid nested repetition operator`},
		{"a word for a number", "ticket.impact = high", `column 17: "high" is not a number; ticket.impact is a number`},
		{"a fraction for a whole number", "ticket.urgency < 2.5", `column 18: "2.5" is not a whole number; ticket.urgency is a whole number`},
		{"not a number in a list", "ticket.priority in (1, two)", `column 24: "two" is not a number; ticket.priority is a number`},
		{"NaN is not a number", "profile.confidence > NaN", `column 22: "NaN" is not a number; profile.confidence is a number`},
		{"an unknown channel", "ticket.channel = fax", `column 18: "fax" is not a channel; use one of portal, email, phone, chat, virtual_agent, walk_in, other`},
		{"an unknown profile", "profile = wizard", `column 11: "wizard" is not a profile; use one of doer, prioritizer, trier, supported, unknown`},
		{"an unknown profile in a list", "profile.name not in [doer, wizard]", `column 28: "wizard" is not a profile; use one of doer, prioritizer, trier, supported, unknown`},
		{"in without a list", "profile in doer", `column 12: want a list like (a, b) or [a, b]`},
		{"in with nothing after it", "profile in", `column 11: want a list like (a, b) or [a, b]`},
		{"an empty list", "ticket.category in ()", `column 21: empty list`},
		{"an empty list item", "ticket.category in (a, , b)", `column 24: empty list item`},
		{"a trailing comma", "ticket.category in (a, b,)", `column 26: empty list item`},
		{"an unclosed list", "ticket.category in (a, b", `column 25: unclosed list; want ")"`},
		{"a list closed by the wrong bracket", "ticket.category in [a, b)", `column 26: unclosed list; want "]"`},
		{"text after a list", "ticket.category in (a) b", `column 24: unexpected "b" after the list`},
		{"a quoted item followed by junk", `ticket.category in ("a" b)`, `column 25: unexpected "b" in the list; want "," or ")"`},
		{"columns count runes, not bytes", "ticket.title = \"é\" x", `column 20: unexpected "x" after the quoted value`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMatcher(tt.matcher)
			if err == nil {
				t.Fatalf("parseMatcher(%q) = %+v, want error %s", tt.matcher, m, tt.want)
			}
			if m != nil {
				t.Errorf("parseMatcher(%q) returned a matcher with its error", tt.matcher)
			}
			if err.Error() != tt.want {
				t.Errorf("parseMatcher(%q) error =\n%s\nwant\n%s", tt.matcher, err, tt.want)
			}
		})
	}
}

func TestMatcherHolds(t *testing.T) {
	competence := 0.8
	tk := &ticket.Ticket{
		ID: "INC1", Source: "snow", Number: "INC0010001", Title: "Laptop will not boot",
		Description: "Black screen, fan spins.", Caller: ticket.Caller{ID: "u1", Email: "ann@hq.example.com", Name: "Ann"},
		Channel: ticket.ChannelEmail, Category: "hardware", Subcategory: "laptop", Impact: 2, Urgency: 3,
		State: "new", AssignmentGroup: "Service Desk", ConfigurationItem: "LT-042", Tags: []string{"vip", "remote"},
	}
	p := &ticket.Profile{Name: ticket.Doer, Source: "directory", Confidence: 0.9, Competence: &competence}
	in := &input{tk: tk, p: p, prio: 4}

	for _, tt := range []struct {
		matcher string
		want    bool
	}{
		{"ticket.id = INC1", true},
		{"ticket.source != snow", false},
		{"ticket.number =~ INC\\d+", true},
		{"ticket.number =~ INC", false}, // anchored
		{`ticket.title = "Laptop will not boot"`, true},
		{"ticket.title = Laptop will not boot  ", true}, // bare values run to the end, blanks trimmed
		{"ticket.title =~ (?i).*LAPTOP.*", true},
		{"ticket.title !~ .*printer.*", true},
		{"ticket.description =~ .*fan.*", true},
		{"ticket.caller.id = u1", true},
		{"ticket.caller.email =~ .*@hq\\.example\\.com", true},
		{"ticket.caller.name in (Ann, Bob)", true},
		{"ticket.channel = email", true},
		{"ticket.channel in (Walk-In, phone)", false},
		{"ticket.channel not in [portal, phone]", true},
		{"ticket.category = Hardware", false}, // case-sensitive
		{"ticket.subcategory != laptop", false},
		{"ticket.impact = 2", true},
		{"ticket.impact < 2", false},
		{"ticket.urgency >= 3", true},
		{"ticket.priority = 4", true}, // the effective priority
		{"ticket.priority in (1, 2)", false},
		{"ticket.state = new", true},
		{`ticket.assignment_group = "Service Desk"`, true},
		{"ticket.configuration_item =~ LT-\\d+", true},
		{"ticket.tags = vip", true},
		{"ticket.tags != vip", false},
		{"ticket.tags in (onsite, remote)", true},
		{"ticket.tags not in (onsite, outage)", true},
		{"ticket.tags =~ re.*", true},
		{"ticket.tags !~ v.*", false},
		{"profile = doer", true},
		{"profile.name = DOER", true}, // profile names are case-insensitive
		{"profile.source = directory", true},
		{"profile.confidence > 0.5", true},
		{"profile.competence >= 0.8", true},
		{"profile.attitude > 0.5", false}, // not set
		{"profile.attitude <= 0.5", false},
		{"profile.attitude != 0.5", true},
		{"profile.attitude not in (1)", true},
		{`ticket.state in ("new", "in progress")`, true},
		{`ticket.state = ""`, false},
	} {
		t.Run(tt.matcher, func(t *testing.T) {
			m, err := parseMatcher(tt.matcher)
			if err != nil {
				t.Fatalf("parseMatcher(%q): %v", tt.matcher, err)
			}
			if got := m.matches(in); got != tt.want {
				t.Errorf("%q.matches = %v, want %v (got %s, want %s)", tt.matcher, got, tt.want, m.got(in), m.want())
			}
		})
	}
}

// FuzzParseMatcher checks that the parser never panics and never returns
// both a matcher and an error, and that a matcher it accepts can be
// evaluated. It is seeded with every matcher of testdata/conf.*.yml.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{
		"ticket.category = hardware", `ticket.title =~ "(?i).*laptop.*"`, "profile in (doer, trier)",
		"ticket.priority <= 2", "ticket.tags not in [a, b]", `ticket.state in ("a,b", c)`, "x", "",
	} {
		f.Add(s)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "conf.*.yml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		seedMatchers(f, &doc, false)
	}
	competence := 0.5
	in := &input{
		tk:   &ticket.Ticket{Title: "Laptop", Category: "hardware", Tags: []string{"vip"}, Impact: 1},
		p:    &ticket.Profile{Name: ticket.Doer, Competence: &competence},
		prio: 2,
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMatcher(s)
		if (m == nil) == (err == nil) {
			t.Fatalf("parseMatcher(%q) = %v, %v: want exactly one of a matcher and an error", s, m, err)
		}
		if m != nil {
			m.matches(in)
			_ = m.got(in) + m.want()
		}
	})
}

// seedMatchers adds every string under a "matchers" key.
func seedMatchers(f *testing.F, n *yaml.Node, under bool) {
	if n.Kind == yaml.ScalarNode && under {
		f.Add(n.Value)
	}
	for i, c := range n.Content {
		isKey := n.Kind == yaml.MappingNode && i%2 == 0
		if isKey {
			continue
		}
		seedMatchers(f, c, under || (n.Kind == yaml.MappingNode && n.Content[i-1].Value == "matchers"))
	}
}
