package jsonpick

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// objects take every branch of Read: duplicate keys, a first nested
// occurrence without the rest of the path, literal dotted keys, escaped
// keys, arrays on the way, values of every type.
var objects = []string{
	`{}`,
	`{"a":1,"a":2}`,
	`{"a":{"x":1},"a":{"b":{"c":"second"}}}`,
	`{"a":"flat","a":{"b":"nested"}}`,
	`{"a.b":"literal","a":{"b":"nested"}}`,
	`{"a":{"b":"nested"},"a.b":"literal"}`,
	`{"a.b":null,"a":{"b":null}}`,
	`{"\u0061":{"b\u002ec":"escaped"},"a":{"b":{"c":"plain"}}}`,
	`{"a":[{"b":"e0"},{"b":"e1"}],"n":[10,20,30]}`,
	`{"a":{"b":[{"c":1}]},"x-y":{"z_1":true},"0":{"1":"digits"}}`,
	`{"ticket":{"id":"1","requester":{"email":"r@x"}},"ticket":{"id":"2"}}`,
	`{"a":{"b":{"c":{"d":{"e":"deep"}}}},"s":"str\"q","f":1.5e3,"t":false,"z":null}`,
	// JSON text inside strings is text: a nested path does not enter it.
	`{"n":"[1,2,3]","a":"[{\"b\":1}]","a":{"b":"after"},"ticket":"{\"id\":\"in-string\"}"}`,
	`{"a":"x [{\"b\":{\"c\":2}}]","a.b":"lit","0":"{\"1\":true}"}`,
}

// nested are plain gjson paths, read with Key and Rest.
var nested = []string{"n.0", "n.1", "a", "a.b", "a.b.c", "a.b.c.d.e", "a.0.b", "a.1.b", "n.2", "n.5", "x-y.z_1", "0.1", "ticket.id", "ticket.requester.email", "s", "f", "t", "z", "missing", "a.missing.b"}

// literal are top-level keys, some with dots, read with Literal.
var literal = []string{"a", "a.b", "a.b.c", "ticket", "0", "missing"}

func TestReadMatchesGjson(t *testing.T) {
	for _, obj := range objects {
		check(t, obj)
	}
}

// FuzzRead compares Read with gjson on any JSON object.
//
//	go test -run='^$' -fuzz=FuzzRead ./internal/jsonpick
func FuzzRead(f *testing.F) {
	for _, obj := range objects {
		f.Add(obj)
	}
	f.Fuzz(func(t *testing.T, obj string) {
		if !gjson.Valid(obj) || !gjson.Parse(obj).IsObject() {
			return
		}
		check(t, obj)
	})
}

func check(t *testing.T, obj string) {
	t.Helper()
	var p Plan
	want := map[int]gjson.Result{}
	for _, path := range nested {
		key, rest, _ := strings.Cut(path, ".")
		want[p.Add(Path{Key: key, Rest: rest})] = gjson.Get(obj, path)
	}
	for _, key := range literal {
		want[p.Add(Path{Literal: key})] = gjson.Get(obj, gjson.Escape(key))
	}
	// Both: the literal key first, then the nested path (ServiceNow's
	// dot-walked fields).
	for _, path := range []string{"a.b", "a.b.c", "ticket.id"} {
		key, rest, _ := strings.Cut(path, ".")
		w := gjson.Get(obj, gjson.Escape(path))
		if !w.Exists() {
			w = gjson.Get(obj, path)
		}
		want[p.Add(Path{Literal: path, Key: key, Rest: rest})] = w
	}
	if p.Len() != len(want) {
		t.Fatalf("Len() = %d, want %d", p.Len(), len(want))
	}
	hits := p.Read(gjson.Parse(obj), nil)
	for slot, w := range want {
		got := hits[slot].Result
		if got.Exists() != w.Exists() || got.Type != w.Type || got.Raw != w.Raw {
			t.Errorf("%s: slot %d = %v %q, gjson %v %q", obj, slot, got.Type, got.Raw, w.Type, w.Raw)
		}
	}
}

func TestAddReturnsTheSlotOfAKnownPath(t *testing.T) {
	var p Plan
	a := p.Add(Path{Key: "a", Rest: "b"})
	b := p.Add(Path{Literal: "a.b"})
	if again := p.Add(Path{Key: "a", Rest: "b"}); again != a || a == b || p.Len() != 2 {
		t.Errorf("slots %d, %d, again %d, Len %d; want the first again and 2 paths", a, b, again, p.Len())
	}
}

func TestReadUsesTheBufferWhenLargeEnough(t *testing.T) {
	var p Plan
	p.Add(Path{Key: "a"})
	buf := make([]Hit, 0, 4)
	buf = append(buf, Hit{Result: gjson.Parse(`"stale"`), final: true})
	hits := p.Read(gjson.Parse(`{"b":1}`), buf)
	if &hits[0] != &buf[:1][0] {
		t.Error("Read allocated although the buffer had room")
	}
	if hits[0].Exists() {
		t.Errorf("a stale hit survived: %v", hits[0].Raw)
	}
	if n := testing.AllocsPerRun(100, func() { p.Read(gjson.Parse(`{"a":1}`), buf) }); n != 0 {
		t.Errorf("Read with a large enough buffer allocates %v times", n)
	}
}
