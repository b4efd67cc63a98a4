package routing

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// op is a matcher operator.
type op uint8

const (
	opEq op = iota + 1
	opNe
	opRe
	opNotRe
	opIn
	opNotIn
	opLt
	opLe
	opGt
	opGe
)

var opNames = [...]string{
	opEq: "=", opNe: "!=", opRe: "=~", opNotRe: "!~", opIn: "in", opNotIn: "not in",
	opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
}

func (o op) String() string { return opNames[o] }

// symbolOps maps the operators spelt with symbols.
var symbolOps = map[string]op{
	"=": opEq, "!=": opNe, "=~": opRe, "!~": opNotRe,
	"<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
}

const opList = "=, !=, =~, !~, in, not in, <, <=, >, >="

// matcher is one compiled "field op value" condition.
type matcher struct {
	src  string
	f    *field
	op   op
	val  string         // =, != on text and enums and tags; the regex source for =~, !~
	num  float64        // =, !=, <, <=, >, >= on numbers
	set  []string       // in, not in on text, enums and tags
	nums []float64      // in, not in on numbers
	re   *regexp.Regexp // =~, !~, anchored
}

// matcherError is a matcher syntax or validity error at a 1-based column
// of the matcher string.
type matcherError struct {
	col int
	msg string
}

func (e *matcherError) Error() string { return fmt.Sprintf("column %d: %s", e.col, e.msg) }

// parseMatcher compiles a matcher string. It never returns both a matcher
// and an error, and turns a panic into an error: matchers come from
// configuration files and the route-test command line.
func parseMatcher(s string) (m *matcher, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &matcherError{col: 1, msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	p := mparser{s: s}
	return p.parse()
}

type mparser struct {
	s   string
	pos int // byte offset
}

func (p *mparser) errAt(pos int, format string, args ...any) error {
	return &matcherError{col: utf8.RuneCountInString(p.s[:pos]) + 1, msg: fmt.Sprintf(format, args...)}
}

func (p *mparser) eof() bool { return p.pos >= len(p.s) }

// next returns the rune at pos, for messages.
func (p *mparser) next() string {
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return string(r)
}

func (p *mparser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *mparser) take(ok func(byte) bool) string {
	start := p.pos
	for p.pos < len(p.s) && ok(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func isFieldByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isOpSymbol(c byte) bool { return strings.IndexByte("=!~<>", c) >= 0 }

func (p *mparser) parse() (*matcher, error) {
	p.skipSpace()
	if p.eof() {
		return nil, p.errAt(0, "empty matcher; want \"field op value\"")
	}
	fieldPos := p.pos
	name := p.take(isFieldByte)
	if name == "" {
		return nil, p.errAt(p.pos, "expected a field name, got %q", p.next())
	}
	f, ok := fieldsByName[name]
	if !ok {
		if s := suggest(name, fieldNames()); s != "" {
			return nil, p.errAt(fieldPos, "unknown field %q (did you mean %q?)", name, s)
		}
		return nil, p.errAt(fieldPos, "unknown field %q", name)
	}
	m := &matcher{src: p.s, f: f}

	p.skipSpace()
	opPos := p.pos
	var err error
	if m.op, err = p.op(name); err != nil {
		return nil, err
	}
	if err := checkOp(f, m.op); err != nil {
		return nil, p.errAt(opPos, "%s", err)
	}

	p.skipSpace()
	if m.op == opIn || m.op == opNotIn {
		items, pos, err := p.list()
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if err := m.addItem(it); err != nil {
				return nil, p.errAt(pos[i], "%s", err)
			}
		}
		return m, nil
	}
	valPos := p.pos
	v, err := p.scalar()
	if err != nil {
		return nil, err
	}
	if err := m.setValue(v); err != nil {
		return nil, p.errAt(valPos, "%s", err)
	}
	return m, nil
}

func (p *mparser) op(field string) (op, error) {
	start := p.pos
	switch {
	case p.eof():
		return 0, p.errAt(p.pos, "missing operator after %q; use one of %s", field, opList)
	case isOpSymbol(p.s[p.pos]):
		sym := p.take(isOpSymbol)
		if o, ok := symbolOps[sym]; ok {
			return o, nil
		}
		return 0, p.errAt(start, "unknown operator %q; use one of %s", sym, opList)
	case isLetter(p.s[p.pos]):
		word := p.take(isLetter)
		switch word {
		case "in":
			return opIn, nil
		case "not":
			p.skipSpace()
			if p.take(isLetter) == "in" {
				return opNotIn, nil
			}
			return 0, p.errAt(start, "unknown operator; \"not\" must be followed by \"in\"")
		}
		return 0, p.errAt(start, "unknown operator %q; use one of %s", word, opList)
	}
	return 0, p.errAt(start, "unknown operator %q; use one of %s", p.next(), opList)
}

// checkOp reports whether o applies to f.
func checkOp(f *field, o op) error {
	switch o {
	case opLt, opLe, opGt, opGe:
		if f.kind != kindNumber {
			return fmt.Errorf("operator %q needs a numeric field; %s is %s", o, f.name, f.what)
		}
	case opRe, opNotRe:
		if f.kind == kindNumber {
			return fmt.Errorf("operator %q needs a text field; %s is %s", o, f.name, f.what)
		}
	}
	return nil
}

// scalar reads the rest of the matcher as one value: a Go-style quoted
// string, or the bare text with surrounding blanks trimmed.
func (p *mparser) scalar() (string, error) {
	if p.eof() {
		return "", p.errAt(p.pos, "missing value; quote an empty value: \"\"")
	}
	if p.s[p.pos] == '"' {
		v, err := p.quoted()
		if err != nil {
			return "", err
		}
		p.skipSpace()
		if !p.eof() {
			return "", p.errAt(p.pos, "unexpected %q after the quoted value", p.next())
		}
		return v, nil
	}
	v := strings.TrimRight(p.s[p.pos:], " \t")
	p.pos = len(p.s)
	return v, nil
}

func (p *mparser) quoted() (string, error) {
	start := p.pos
	q, err := strconv.QuotedPrefix(p.s[p.pos:])
	if err != nil {
		return "", p.errAt(start, "unterminated or malformed quoted value")
	}
	v, err := strconv.Unquote(q)
	if err != nil { // QuotedPrefix accepted it, so this does not happen
		return "", p.errAt(start, "malformed quoted value")
	}
	p.pos += len(q)
	return v, nil
}

// list reads "(a, b)" or "[a, b]": items bare or quoted, at least one.
// It returns the items and their byte offsets.
func (p *mparser) list() (items []string, pos []int, err error) {
	if p.eof() || (p.s[p.pos] != '(' && p.s[p.pos] != '[') {
		return nil, nil, p.errAt(p.pos, "want a list like (a, b) or [a, b]")
	}
	closer := byte(')')
	if p.s[p.pos] == '[' {
		closer = ']'
	}
	p.pos++
	for {
		p.skipSpace()
		if p.eof() {
			return nil, nil, p.errAt(p.pos, "unclosed list; want %q", string(closer))
		}
		if p.s[p.pos] == closer && len(items) == 0 {
			return nil, nil, p.errAt(p.pos, "empty list")
		}
		itemPos := p.pos
		var it string
		if p.s[p.pos] == '"' {
			if it, err = p.quoted(); err != nil {
				return nil, nil, err
			}
		} else {
			it = strings.TrimRight(p.take(func(c byte) bool { return c != ',' && c != closer }), " \t")
			if it == "" {
				return nil, nil, p.errAt(itemPos, "empty list item")
			}
		}
		items, pos = append(items, it), append(pos, itemPos)
		p.skipSpace()
		switch {
		case p.eof():
			return nil, nil, p.errAt(p.pos, "unclosed list; want %q", string(closer))
		case p.s[p.pos] == ',':
			p.pos++
			continue
		case p.s[p.pos] == closer:
			p.pos++
			p.skipSpace()
			if !p.eof() {
				return nil, nil, p.errAt(p.pos, "unexpected %q after the list", p.next())
			}
			return items, pos, nil
		}
		return nil, nil, p.errAt(p.pos, "unexpected %q in the list; want \",\" or %q", p.next(), string(closer))
	}
}

// setValue checks and stores the value of a matcher with a scalar operator.
func (m *matcher) setValue(v string) error {
	switch {
	case m.op == opRe || m.op == opNotRe:
		re, err := compileAnchored(v)
		if err != nil {
			return err
		}
		m.val, m.re = v, re
	case m.f.kind == kindNumber:
		n, err := parseNumber(m.f, v)
		if err != nil {
			return err
		}
		m.val, m.num = v, n
	case m.f.kind == kindEnum:
		n, err := m.f.parse(v)
		if err != nil {
			return err
		}
		m.val = n
	default:
		m.val = v
	}
	return nil
}

// addItem checks and stores one item of an in / not in list.
func (m *matcher) addItem(v string) error {
	switch m.f.kind {
	case kindNumber:
		n, err := parseNumber(m.f, v)
		if err != nil {
			return err
		}
		m.nums = append(m.nums, n)
		m.set = append(m.set, v)
	case kindEnum:
		n, err := m.f.parse(v)
		if err != nil {
			return err
		}
		m.set = append(m.set, n)
	default:
		m.set = append(m.set, v)
	}
	return nil
}

func compileAnchored(v string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + v + ")$")
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid regex %q: %s", v, se.Code)
		}
		return nil, fmt.Errorf("invalid regex %q: %v", v, err)
	}
	return re, nil
}

func parseNumber(f *field, v string) (float64, error) {
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("%q is not a number; %s is a number", v, f.name)
	}
	if f.whole && n != math.Trunc(n) {
		return 0, fmt.Errorf("%q is not a whole number; %s is a whole number", v, f.name)
	}
	return n, nil
}

// matches reports whether the matcher holds for in. It does not allocate.
func (m *matcher) matches(in *input) bool {
	switch m.f.kind {
	case kindNumber:
		v, ok := in.num(m.f.id)
		return m.matchNumber(v, ok)
	case kindList:
		return m.matchList(in.list(m.f.id))
	}
	return m.matchText(in.text(m.f.id))
}

func (m *matcher) matchText(s string) bool {
	switch m.op {
	case opEq:
		return s == m.val
	case opNe:
		return s != m.val
	case opRe:
		return m.re.MatchString(s)
	case opNotRe:
		return !m.re.MatchString(s)
	case opIn:
		return slices.Contains(m.set, s)
	case opNotIn:
		return !slices.Contains(m.set, s)
	}
	return false
}

// matchNumber compares v; an absent value (ok false) satisfies only != and
// not in.
func (m *matcher) matchNumber(v float64, ok bool) bool {
	if !ok {
		return m.op == opNe || m.op == opNotIn
	}
	switch m.op {
	case opEq:
		return v == m.num
	case opNe:
		return v != m.num
	case opLt:
		return v < m.num
	case opLe:
		return v <= m.num
	case opGt:
		return v > m.num
	case opGe:
		return v >= m.num
	case opIn:
		return slices.Contains(m.nums, v)
	case opNotIn:
		return !slices.Contains(m.nums, v)
	}
	return false
}

// matchList applies the operator to a list: = and in hold when some item
// is (or matches) the value, != and not in when none is, =~ when some item
// matches, !~ when none does.
func (m *matcher) matchList(l []string) bool {
	switch m.op {
	case opEq:
		return slices.Contains(l, m.val)
	case opNe:
		return !slices.Contains(l, m.val)
	case opRe:
		return slices.ContainsFunc(l, m.re.MatchString)
	case opNotRe:
		return !slices.ContainsFunc(l, m.re.MatchString)
	case opIn:
		return slices.ContainsFunc(l, m.inSet)
	case opNotIn:
		return !slices.ContainsFunc(l, m.inSet)
	}
	return false
}

func (m *matcher) inSet(s string) bool { return slices.Contains(m.set, s) }

// got describes the actual value of the matcher's field, for Explain.
func (m *matcher) got(in *input) string {
	switch m.f.kind {
	case kindNumber:
		v, ok := in.num(m.f.id)
		if !ok {
			return "not set"
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case kindList:
		return quoteList(in.list(m.f.id))
	}
	return strconv.Quote(in.text(m.f.id))
}

// want describes what the matcher wants, for Explain.
func (m *matcher) want() string {
	if m.f.kind == kindList {
		switch m.op {
		case opEq:
			return "a tag " + m.quoteVal()
		case opNe:
			return "no tag " + m.quoteVal()
		case opRe:
			return "a tag matching " + m.re.String()
		case opNotRe:
			return "no tag matching " + m.re.String()
		case opIn:
			return "a tag in " + m.quoteSet()
		case opNotIn:
			return "no tag in " + m.quoteSet()
		}
	}
	switch m.op {
	case opEq:
		return m.quoteVal()
	case opNe:
		return "anything but " + m.quoteVal()
	case opRe:
		return "a match for " + m.re.String()
	case opNotRe:
		return "no match for " + m.re.String()
	case opIn:
		return "one of " + m.quoteSet()
	case opNotIn:
		return "none of " + m.quoteSet()
	}
	return m.op.String() + " " + m.val
}

func (m *matcher) quoteVal() string {
	if m.f.kind == kindNumber {
		return m.val
	}
	return strconv.Quote(m.val)
}

func (m *matcher) quoteSet() string {
	if m.f.kind == kindNumber {
		return strings.Join(m.set, ", ")
	}
	q := make([]string, len(m.set))
	for i, s := range m.set {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
