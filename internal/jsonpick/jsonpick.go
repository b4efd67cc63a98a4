// Package jsonpick picks the values of many paths out of a JSON object in
// one pass over its keys.
//
// Asking gjson for each path in turn reads the object from its start
// every time; with a connector's 15–25 mapped fields that was 60–80% of
// normalising a webhook. A [Plan] is built once, when the mapping is
// loaded, and then read with any number of objects concurrently.
package jsonpick

import "github.com/tidwall/gjson"

// Plan is a set of paths. The zero value is an empty plan; add paths with
// [Plan.Add] before the first [Plan.Read], not after.
type Plan struct {
	uses  map[string][]use // top-level key → the paths it may answer
	slots map[Path]int
}

// Path says where a value is found in an object: as the value of the
// first top-level key named Literal, when Literal is not "", or else as
// the value of the gjson path Rest inside the first top-level key named
// Key whose value has it (gjson.Get(obj, Key+"."+Rest) for plain keys).
// A Path with only Key is that key's first value.
type Path struct {
	Literal   string
	Key, Rest string
}

type use struct {
	slot    int
	rest    string
	literal bool
}

// Hit is what [Plan.Read] found for one path: a Result that does not
// Exist when the object does not have it.
type Hit struct {
	gjson.Result
	final bool // a literal key or a top-level key without rest: the first counts
}

// Add adds p unless the plan has it and returns its slot: its index in
// what [Plan.Read] returns.
func (pl *Plan) Add(p Path) int {
	if s, ok := pl.slots[p]; ok {
		return s
	}
	if pl.slots == nil {
		pl.slots, pl.uses = map[Path]int{}, map[string][]use{}
	}
	s := len(pl.slots)
	pl.slots[p] = s
	if p.Literal != "" {
		pl.uses[p.Literal] = append(pl.uses[p.Literal], use{slot: s, literal: true})
	}
	if p.Key != "" {
		pl.uses[p.Key] = append(pl.uses[p.Key], use{slot: s, rest: p.Rest})
	}
	return s
}

// Len returns the number of paths.
func (pl *Plan) Len() int { return len(pl.slots) }

// Read returns what obj, a JSON object, holds for each path, indexed by
// slot, in buf's array when it is large enough.
func (pl *Plan) Read(obj gjson.Result, buf []Hit) []Hit {
	n := len(pl.slots)
	if cap(buf) < n {
		buf = make([]Hit, n)
	}
	hits := buf[:n]
	clear(hits)
	obj.ForEach(func(key, val gjson.Result) bool {
		for _, u := range pl.uses[key.Str] {
			h := &hits[u.slot]
			switch {
			case h.final:
			case u.literal || u.rest == "":
				*h = Hit{Result: val, final: true}
			case !h.Exists() && val.Type == gjson.JSON:
				// Into objects and arrays only, as gjson.Get: on a
				// string it would parse the JSON text inside it.
				h.Result = val.Get(u.rest)
			}
		}
		return true
	})
	return hits
}
