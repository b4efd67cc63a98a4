package routing

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/deskrelay/deskrelay/ticket"
)

// Limits on when expressions. A when expression runs for every ticket that
// reaches its route, so it is bounded both in size (at New) and in cost
// (per evaluation; a cost unit is roughly one operation or ten bytes of
// string scanned).
const (
	whenMaxLength  = 4096
	whenMaxDepth   = 32
	whenCostLimit  = 100_000
	whenTicketType = "ticket.Ticket"
	whenProfile    = "ticket.Profile"
)

// newWhenEnv declares the variables ticket and profile as the real Go
// types, with fields named as in JSON, so that a misspelt field fails the
// type check at New.
func newWhenEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(
			reflect.TypeFor[ticket.Ticket](),
			reflect.TypeFor[ticket.Profile](),
			ext.ParseStructTag("json"),
		),
		ext.Strings(),
		cel.Variable("ticket", cel.ObjectType(whenTicketType)),
		cel.Variable("profile", cel.ObjectType(whenProfile)),
		cel.ParserExpressionSizeLimit(whenMaxLength),
		cel.ParserRecursionLimit(whenMaxDepth),
	)
}

// undefinedField matches CEL's message for a misspelt field.
var undefinedField = regexp.MustCompile(`^undefined field '([^']+)'$`)

// whenFieldNames are the field names of the types a when expression sees,
// for "did you mean" suggestions.
var whenFieldNames = func() []string {
	var names []string
	for _, t := range []reflect.Type{reflect.TypeFor[ticket.Ticket](), reflect.TypeFor[ticket.Caller](), reflect.TypeFor[ticket.Profile]()} {
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				names = append(names, name)
			}
		}
	}
	return names
}()

// when is a compiled, type-checked when expression.
type when struct {
	src string
	prg cel.Program
}

// compileWhen parses, type-checks and plans src. Its error lists every
// issue CEL found, each with its position in the expression.
func compileWhen(env *cel.Env, src string) (*when, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			loc, msg := e.Location, e.Message
			if m := undefinedField.FindStringSubmatch(msg); m != nil {
				if s := suggest(m[1], whenFieldNames); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
			}
			switch {
			case loc == nil || loc.Line() < 1 || loc.Column() < 0:
				msgs = append(msgs, msg)
			case loc.Line() > 1:
				msgs = append(msgs, fmt.Sprintf("line %d, column %d: %s", loc.Line(), loc.Column()+1, msg))
			default:
				msgs = append(msgs, fmt.Sprintf("column %d: %s", loc.Column()+1, msg))
			}
		}
		if len(msgs) == 0 { // not expected: Err() is built from Errors()
			msgs = append(msgs, iss.Err().Error())
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	if out := ast.OutputType(); !out.IsExactType(types.BoolType) {
		return nil, fmt.Errorf("result is %s, want bool", out)
	}
	prg, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize), // folds constants, compiles constant regexes once
		cel.CostLimit(whenCostLimit),
	)
	if err != nil {
		return nil, err
	}
	return &when{src: src, prg: prg}, nil
}

// eval runs the expression. A runtime error (cost limit, overflow, a bad
// regex built at run time) is returned as is.
func (w *when) eval(act *activation) (bool, error) {
	out, _, err := w.prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok { // the type check makes this unreachable
		return false, fmt.Errorf("result is %s, want bool", out.Type())
	}
	return b, nil
}

// activation resolves the variables of a when expression. ticket is the
// ticket with its effective priority, the same value matchers see.
type activation struct {
	tk *ticket.Ticket
	p  *ticket.Profile
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(in *input) *activation {
	tk := in.tk
	if tk.Priority != in.prio {
		cp := *tk
		cp.Priority = in.prio
		tk = &cp
	}
	return &activation{tk: tk, p: in.p}
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "ticket":
		return a.tk, true
	case "profile":
		return a.p, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
