package servicenow

import (
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/ticket"
)

// planStack is how many distinct record paths a mapping may read before
// reading a record allocates; the default mapping has 25.
const planStack = 32

// plan reads every record path of a mapping in one pass over the record's
// top-level keys. Asking gjson for each path in turn reads the record
// from its start every time: with the default mapping that was 80% of a
// webhook's CPU (BenchmarkWebhook).
//
// It finds what [lookup] finds for each path: the path as a literal key
// (the Table API's dot-walked "caller_id.email") before the path walked
// through nested objects; of duplicate keys the first literal one, or the
// first whose nested value has the rest of the path.
type plan struct {
	fields []fieldPlan      // the mapped fields, in ticket.MappableFields order
	uses   map[string][]use // top-level key → the paths it may answer
	n      int              // distinct paths
}

// fieldPlan is one ticket field: its record paths, first one present wins.
type fieldPlan struct {
	name    string
	paths   []string
	slots   []int // of each path, into what read returns
	display bool  // prefer a reference's display_value (nameFields)
}

// use is one path a top-level key may answer.
type use struct {
	slot int
	rest string // "": the key is the whole path; else the path inside its value
}

// hit is what read found for one path.
type hit struct {
	res     gjson.Result // !res.Exists(): nothing yet
	literal bool         // res is the path's literal key: final
}

func newPlan(paths map[string][]string) plan {
	p := plan{uses: map[string][]use{}}
	slot := map[string]int{}
	for _, name := range ticket.MappableFields {
		if len(paths[name]) == 0 {
			continue
		}
		f := fieldPlan{name: name, paths: paths[name], display: slices.Contains(nameFields, name)}
		for _, path := range f.paths {
			s, ok := slot[path]
			if !ok {
				s = len(slot)
				slot[path] = s
				p.uses[path] = append(p.uses[path], use{slot: s})
				if first, rest, nested := strings.Cut(path, "."); nested {
					p.uses[first] = append(p.uses[first], use{slot: s, rest: rest})
				}
			}
			f.slots = append(f.slots, s)
		}
		p.fields = append(p.fields, f)
	}
	p.n = len(slot)
	return p
}

// read returns what rec, a JSON object, holds for each path, indexed by
// slot. It uses buf's array when it is large enough.
func (p *plan) read(rec gjson.Result, buf []hit) []hit {
	if cap(buf) < p.n {
		buf = make([]hit, p.n)
	}
	hits := buf[:p.n]
	clear(hits)
	rec.ForEach(func(key, val gjson.Result) bool {
		for _, u := range p.uses[key.Str] {
			h := &hits[u.slot]
			switch {
			case h.literal:
			case u.rest == "":
				*h = hit{res: val, literal: true}
			case !h.res.Exists():
				h.res = val.Get(u.rest)
			}
		}
		return true
	})
	return hits
}

// get returns the first present non-empty value of the field's paths and
// the path it came from, or the error of the first path holding something
// that is not a value.
func (f *fieldPlan) get(hits []hit) (string, string, error) {
	for i, slot := range f.slots {
		s, ok, err := value(hits[slot].res, f.display)
		if err != nil {
			return "", f.paths[i], err
		}
		if ok {
			return s, f.paths[i], nil
		}
	}
	return "", "", nil
}
