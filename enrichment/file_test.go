package enrichment

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

// entryString prints an entry without its line, to compare the formats.
func entryString(e Entry) string {
	score := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("email=%q id=%q profile=%s competence=%s attitude=%s",
		e.Email, e.UserID, e.Profile, score(e.Competence), score(e.Attitude))
}

func TestParseFileGood(t *testing.T) {
	want := []string{
		`email="doer@example.com" id="u-001" profile=doer competence=- attitude=-`,
		`email="prio@example.com" id="" profile=prioritizer competence=- attitude=-`,
		`email="" id="u-003" profile=trier competence=2 attitude=8`,
		`email="trier+it@example.org" id="AD\\trier" profile=trier competence=3 attitude=7`,
		`email="supp@example.com" id="" profile=supported competence=1 attitude=1`,
		`email="both@example.com" id="u-006" profile=doer competence=9 attitude=9`,
	}
	// supp@example.com has user id "u-005" in CSV and 5 in JSON and YAML.
	ids := map[string]string{"good.csv": "u-005", "good.json": "5", "good.yaml": "5"}
	for _, tt := range []struct {
		name  string
		file  string
		lines []int
	}{
		{"a csv file with a header in any order gives every row", "good.csv", []int{3, 4, 5, 6, 7, 8}},
		{"a json array gives every object", "good.json", []int{2, 3, 4, 5, 11, 12}},
		{"a yaml list gives every mapping", "good.yaml", []int{2, 5, 7, 10, 14, 15}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseFile(tt.file, fixture.Read(t, "testdata", tt.file), defaultQuadrant(t))
			if err != nil {
				t.Fatalf("ParseFile(%s) = %v", tt.file, err)
			}
			var got []string
			var lines []int
			for _, e := range entries {
				got = append(got, entryString(e))
				lines = append(lines, e.Line)
			}
			w := slices.Clone(want)
			w[4] = fmt.Sprintf(`email="supp@example.com" id=%q profile=supported competence=1 attitude=1`, ids[tt.file])
			if !slices.Equal(got, w) {
				t.Errorf("ParseFile(%s) =\n%q\nwant\n%q", tt.file, got, w)
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("ParseFile(%s) lines = %v, want %v", tt.file, lines, tt.lines)
			}
		})
	}
}

func TestParseFileBad(t *testing.T) {
	for _, tt := range []struct {
		name  string
		file  string
		lines []int // of every error, in order
	}{
		{"every bad csv row is reported with its line", "bad.csv",
			[]int{2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 16}},
		{"a bad csv header stops before the rows", "bad-header.csv", []int{1, 1, 1, 1}},
		{"every bad json element is reported with its index and line", "bad.json",
			[]int{2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 15, 16}},
		{"a json syntax error is reported at its line", "bad-syntax.json", []int{4}},
		{"a json object instead of an array is refused", "bad-not-array.json", []int{1}},
		{"every bad yaml entry is reported with its line", "bad.yaml",
			[]int{1, 5, 8, 11, 13, 15, 16, 21, 26, 29, 33, 35, 37, 39}},
		{"a yaml syntax error is reported at its line", "bad-syntax.yaml", []int{4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseFile(tt.file, fixture.Read(t, "testdata", tt.file), defaultQuadrant(t))
			if entries != nil {
				t.Errorf("ParseFile(%s) returned %d entries with an error, want none", tt.file, len(entries))
			}
			fe, ok := errors.AsType[*FileError](err)
			if !ok {
				t.Fatalf("ParseFile(%s) error = %v, want a *FileError", tt.file, err)
			}
			var lines []int
			for _, r := range fe.Rows {
				lines = append(lines, r.Line)
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("ParseFile(%s) error lines = %v, want %v\n%v", tt.file, lines, tt.lines, err)
			}
			checkGolden(t, tt.file, []byte(err.Error()+"\n"))
		})
	}
}

func TestParseFileEdges(t *testing.T) {
	q := defaultQuadrant(t)
	for _, tt := range []struct {
		name    string
		file    string
		data    string
		want    int  // entries
		wantErr bool // a *FileError
	}{
		{"an empty csv file lacks its header", "p.csv", "", 0, true},
		{"a csv file with only a header has no entries", "p.csv", "email,profile\n", 0, false},
		{"a csv header is case-insensitive and may carry a BOM", "p.CSV", "\ufeffEmail, Profile\na@b.c,doer\n", 1, false},
		{"an empty json array has no entries", "p.json", "[]", 0, false},
		{"an empty json file is refused", "p.json", "", 0, true},
		{"data after the json array is refused", "p.json", `[] []`, 0, true},
		{"an empty yaml file has no entries", "p.yml", "", 0, false},
		{"a yaml file of only a comment has no entries", "p.yaml", "# nobody yet\n", 0, false},
		{"a yaml mapping instead of a list is refused", "p.yaml", "email: a@b.c\n", 0, true},
		{"a json score that is not a number is refused", "p.json", `[{"email":"a@b.c","competence":true,"attitude":1}]`, 0, true},
		{"an email without a domain is refused", "p.csv", "email,profile\na@,doer\n", 0, true},
		{"an email with a space is refused", "p.csv", "email,profile\na b@c.d,doer\n", 0, true},
		{"a user id with a control character is refused", "p.json", `[{"user_id":"a\u0001b","profile":"doer"}]`, 0, true},
		{"a score on the top of the scale is accepted", "p.csv", "email,competence,attitude\na@b.c,10,0\n", 1, false},
		{"an infinite score is refused", "p.csv", "email,competence,attitude\na@b.c,Inf,0\n", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseFile(tt.file, []byte(tt.data), q)
			if _, isFileErr := errors.AsType[*FileError](err); isFileErr != tt.wantErr || (err != nil && !isFileErr) {
				t.Fatalf("ParseFile(%q) error = %v, want a *FileError: %v", tt.data, err, tt.wantErr)
			}
			if len(entries) != tt.want {
				t.Errorf("ParseFile(%q) = %d entries, want %d", tt.data, len(entries), tt.want)
			}
		})
	}
	t.Run("an unknown extension is refused with ErrFormat", func(t *testing.T) {
		if _, err := ParseFile("profiles.xlsx", nil, q); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFile(profiles.xlsx) error = %v, want ErrFormat", err)
		}
	})
}

// FuzzParseFile checks that ParseFile never panics, and that an accepted
// entry always has a key and a profile a directory can store.
func FuzzParseFile(f *testing.F) {
	exts := []string{".csv", ".json", ".yaml"}
	for _, name := range []string{"good.csv", "bad.csv", "bad-header.csv", "good.json", "bad.json",
		"bad-syntax.json", "good.yaml", "bad.yaml", "bad-syntax.yaml"} {
		for i, ext := range exts {
			if name[len(name)-len(ext):] == ext {
				f.Add(uint8(i), fixture.Read(f, "testdata", name))
			}
		}
	}
	q := defaultQuadrant(f)
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		name := "fuzz" + exts[int(format)%len(exts)]
		entries, err := ParseFile(name, data, q)
		if err != nil && entries != nil {
			t.Fatalf("ParseFile returned %d entries with error %v", len(entries), err)
		}
		for _, e := range entries {
			if e.Email == "" && e.UserID == "" {
				t.Fatalf("accepted entry without email or user id: %+v", e)
			}
			switch e.Profile {
			case ticket.Doer, ticket.Prioritizer, ticket.Trier, ticket.Supported:
			default:
				t.Fatalf("accepted entry with profile %q: %+v", e.Profile, e)
			}
			if (e.Competence == nil) != (e.Attitude == nil) {
				t.Fatalf("accepted entry with one score: %+v", e)
			}
			if e.Competence != nil {
				if p, err := q.Classify(*e.Competence, *e.Attitude); err != nil || p != e.Profile {
					t.Fatalf("accepted entry whose scores classify as %q, %v: %+v", p, err, e)
				}
			}
			if err := e.validate(); err != nil {
				t.Fatalf("accepted entry that Import refuses: %v: %+v", err, e)
			}
			if e.Email != "" && !keyValidForTest(EmailKey(e.Email)) {
				t.Fatalf("accepted email whose key %q is not a valid KV key", EmailKey(e.Email))
			}
			if e.UserID != "" && !keyValidForTest(UserIDKey(e.UserID)) {
				t.Fatalf("accepted user id whose key %q is not a valid KV key", UserIDKey(e.UserID))
			}
		}
	})
}
