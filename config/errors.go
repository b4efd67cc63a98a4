package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one configuration problem. Path is the key path in the file
// ("routing.route.routes[2].tier"); File, Line and Col locate it when the
// YAML had it, Env names the environment variable when the value came from
// there. Packages that check their own part of the config return Errors
// with only Path and Msg set; [Config.Locate] fills in the rest.
type Error struct {
	File string
	Line int
	Col  int
	Env  string
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("env " + e.Env + ": ")
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Col)
	case e.File != "":
		b.WriteString(e.File + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf returns an *Error for path with a formatted message.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Errors is a list of configuration problems, reported all at once. Its
// Error method prints one per line, sorted by position.
type Errors []*Error

func (es Errors) Error() string {
	es.Sort()
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the errors by file position, env-sourced and unplaced ones
// last by path.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Line > 0) != (b.Line > 0) {
			return a.Line > 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Path < b.Path
	})
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// AsErrors flattens err into a list of *Error: an Errors, a single *Error,
// or errors joined with errors.Join. Any other error becomes an Error with
// no path.
func AsErrors(err error) Errors {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out Errors
		for _, e := range j.Unwrap() {
			out = append(out, AsErrors(e)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return Errors{{Msg: err.Error()}}
}
