package servicenow

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/ticket"
)

// planMappings are the mappings the plan is checked with: the default
// incident mapping, the Business Rule example's nested caller, and one
// with deep, overlapping and alternative paths.
var planMappings = []struct {
	name string
	opts map[string]any
}{
	{"default", nil},
	{"business rule", businessRuleFields},
	{"deep", map[string]any{"fields": map[string]any{
		"category":     []any{"a.b.c", "a.b", "a"},
		"subcategory":  []any{"a.b", "u_sub"},
		"caller.email": []any{"caller_id.email", "u.caller.email"},
		"tags":         "u.tags",
		"description":  []any{"x.y", "x"},
	}}},
}

// planRecords are records that take every branch of the plan: a literal
// dot-walked key before, after and instead of the nested one, duplicate
// keys, a first nested occurrence without the rest of the path, escaped
// keys, values that are not values.
var planRecords = []string{
	`{}`,
	`{"sys_id":"1","caller_id.email":"lit@x","caller_id":{"email":"nested@x"}}`,
	`{"sys_id":"1","caller_id":{"email":"nested@x"},"caller_id.email":"lit@x"}`,
	`{"sys_id":"1","caller_id":{"email":"nested@x"}}`,
	`{"sys_id":"1","caller_id":{"name":"n"},"caller_id":{"email":"second@x"}}`,
	`{"sys_id":"1","caller_id":"flat","caller_id":{"email":"second@x"}}`,
	`{"sys_id":"1","caller_id.email":null,"caller_id":{"email":"nested@x"}}`,
	`{"sys_id":"1","sys_id":"2","number":"INC1","number":"INC2"}`,
	`{"sys_\u0069d":"esc","short_description":"t\"q"}`,
	`{"a":{"b":{"c":"deep"}},"a.b":"lit-ab","a.b.c":null}`,
	`{"a":{"b":{"c":{"value":"v","display_value":"dv"}}}}`,
	`{"a":{"b":[1,2]},"u_sub":"s","x":{"y":{"link":"l"}}}`,
	`{"a":[{"b":"in-array"}],"a.b":{"display_value":"","value":"val"}}`,
	`{"u":{"tags":"t1, t2","caller":{"email":"u@x"}},"x":{"sys_id":"sid"}}`,
	`{"assignment_group":{"link":"l","value":"g1","display_value":"Group"},"assigned_to":{"display_value":"A"},"cmdb_ci":""}`,
	`{"opened_by":true,"impact":2,"urgency":{"value":3},"priority":[1]}`,
}

// TestPlanFindsWhatLookupFinds checks that reading a record through the
// plan gives, for every mapped field, what asking gjson for each path
// does ([lookup], the reference).
func TestPlanFindsWhatLookupFinds(t *testing.T) {
	records := slices.Clone(planRecords)
	records = append(records, string(readFile(t, "outbound_business_rule.json")))
	for _, f := range []string{"incident_list_page1", "incident_list_page2", "incident_list_display_all"} {
		for _, rec := range gjson.ParseBytes(readFile(t, f+".json")).Get("result").Array() {
			records = append(records, rec.Raw)
		}
	}
	for _, mp := range planMappings {
		m := buildWebhook(t, mp.opts).m
		for i, raw := range records {
			t.Run(fmt.Sprintf("%s/%d", mp.name, i), func(t *testing.T) {
				comparePlan(t, m, raw)
			})
		}
	}
}

// FuzzPlan compares the plan with the reference on any JSON object.
//
//	go test -run='^$' -fuzz=FuzzPlan ./connectors/servicenow
func FuzzPlan(f *testing.F) {
	for _, r := range planRecords {
		f.Add(r)
	}
	f.Add(string(readFile(f, "outbound_business_rule.json")))
	var ms []*mapper
	for _, mp := range planMappings {
		ms = append(ms, buildWebhook(f, mp.opts).m)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !gjson.Valid(raw) || !gjson.Parse(raw).IsObject() {
			return
		}
		for _, m := range ms {
			comparePlan(t, m, raw)
		}
	})
}

func comparePlan(t *testing.T, m *mapper, raw string) {
	t.Helper()
	rec := gjson.Parse(raw)
	hits := m.plan.pick.Read(rec, nil)
	if len(m.plan.fields) == 0 {
		t.Fatal("the plan maps no field")
	}
	for _, f := range m.plan.fields {
		s, path, err := f.get(hits)
		ws, wpath, werr := referenceGet(m, rec, f.name)
		if s != ws || path != wpath || fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Errorf("%s in %s: plan (%q, %q, %v), lookup (%q, %q, %v)", f.name, raw, s, path, err, ws, wpath, werr)
		}
	}
	if mapped := len(m.plan.fields); mapped != countMapped(m) {
		t.Errorf("the plan has %d fields, the mapping %d", mapped, countMapped(m))
	}
}

// referenceGet is the field lookup the plan replaced: gjson asked for
// each path in turn.
func referenceGet(m *mapper, rec gjson.Result, field string) (string, string, error) {
	display := slices.Contains(nameFields, field)
	for _, p := range m.paths[field] {
		s, ok, err := lookup(rec, p, display)
		if err != nil {
			return "", p, err
		}
		if ok {
			return s, p, nil
		}
	}
	return "", "", nil
}

func countMapped(m *mapper) int {
	n := 0
	for _, f := range ticket.MappableFields {
		if len(m.paths[f]) > 0 {
			n++
		}
	}
	return n
}

// TestUnwrap checks which object a webhook body's record is.
func TestUnwrap(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"result":{"sys_id":"in"}}`, `{"sys_id":"in"}`},
		{`{"sys_id":"own","result":{"sys_id":"in"}}`, `{"sys_id":"own","result":{"sys_id":"in"}}`},
		{`{"result":{"sys_id":"in"},"sys_id":"own"}`, `{"result":{"sys_id":"in"},"sys_id":"own"}`},
		{`{"result":"text"}`, `{"result":"text"}`},
		{`{"result":[{"sys_id":"in"}]}`, `{"result":[{"sys_id":"in"}]}`},
		{`{"result":{"a":1},"result":{"b":2}}`, `{"a":1}`},
	} {
		if got := unwrap(gjson.Parse(tt.body)).Raw; got != tt.want {
			t.Errorf("unwrap(%s) = %s, want %s", tt.body, got, tt.want)
		}
	}
}
