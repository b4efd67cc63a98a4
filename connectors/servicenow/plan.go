package servicenow

import (
	"slices"
	"strings"

	"github.com/deskrelay/deskrelay/internal/jsonpick"
	"github.com/deskrelay/deskrelay/ticket"
)

// planStack is how many distinct record paths a mapping may read before
// reading a record allocates; the default mapping has 23.
const planStack = 32

// plan reads every record path of a mapping in one pass over the
// record's keys (BenchmarkWebhook: 80% of a webhook's CPU went into
// asking gjson for each path in turn). It finds what [lookup] finds for
// each path: the path as a literal key (the Table API's dot-walked
// "caller_id.email") before the path walked through nested objects.
type plan struct {
	pick   jsonpick.Plan
	fields []fieldPlan // the mapped fields, in ticket.MappableFields order
}

// fieldPlan is one ticket field: its record paths, first one present wins.
type fieldPlan struct {
	name    string
	paths   []string
	slots   []int // of each path, into what read returns
	display bool  // prefer a reference's display_value (nameFields)
}

func newPlan(paths map[string][]string) *plan {
	p := &plan{}
	for _, name := range ticket.MappableFields {
		if len(paths[name]) == 0 {
			continue
		}
		f := fieldPlan{name: name, paths: paths[name], display: slices.Contains(nameFields, name)}
		for _, path := range f.paths {
			jp := jsonpick.Path{Literal: path}
			if first, rest, nested := strings.Cut(path, "."); nested {
				jp.Key, jp.Rest = first, rest
			}
			f.slots = append(f.slots, p.pick.Add(jp))
		}
		p.fields = append(p.fields, f)
	}
	return p
}

// get returns the first present non-empty value of the field's paths and
// the path it came from, or the error of the first path holding something
// that is not a value.
func (f *fieldPlan) get(hits []jsonpick.Hit) (string, string, error) {
	for i, slot := range f.slots {
		s, ok, err := value(hits[slot].Result, f.display)
		if err != nil {
			return "", f.paths[i], err
		}
		if ok {
			return s, f.paths[i], nil
		}
	}
	return "", "", nil
}
