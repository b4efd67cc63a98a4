package enrichment

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deskrelay/deskrelay/ticket"
)

// Entry is one person in the profile directory: a row of a directory file
// or a value in the profiles bucket. At least one of Email and UserID is
// set. Profile is set, or Competence and Attitude both are (raw scores on
// the configured scale); [ParseFile] fills Profile from the scores too.
type Entry struct {
	Email      string // lower case
	UserID     string
	Profile    ticket.ProfileName
	Competence *float64
	Attitude   *float64
	// Line is the entry's line in the file it was read from, 0 if none.
	Line int
}

// ErrFormat is returned, wrapped, by [ParseFile] for a file name whose
// extension is not .csv, .json, .yaml or .yml.
var ErrFormat = errors.New("unsupported profile file format")

// RowError is one problem in a directory file.
type RowError struct {
	// Line is the 1-based line of the problem, 0 when the parser could not
	// tell (the message then says where, if it can).
	Line int
	// Index is the 0-based position of the row among the data rows (the
	// JSON or YAML list element), -1 for a problem outside any row.
	Index int
	// Field is the column or key at fault, "" for the whole row.
	Field string
	Msg   string
}

// FileError lists every problem of one directory file, in file order. Its
// Error method prints one per line as "file:line: [index] field: message";
// no line holds an email or id from the file.
type FileError struct {
	File string
	Rows []RowError
}

func (e *FileError) Error() string {
	var b strings.Builder
	for i, r := range e.Rows {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if r.Line > 0 {
			fmt.Fprintf(&b, ":%d", r.Line)
		}
		b.WriteString(": ")
		if r.Index >= 0 {
			fmt.Fprintf(&b, "[%d] ", r.Index)
		}
		if r.Field != "" {
			b.WriteString(r.Field + ": ")
		}
		b.WriteString(r.Msg)
	}
	return b.String()
}

// The columns of a directory file.
const (
	colEmail = iota
	colUserID
	colProfile
	colCompetence
	colAttitude
	numCols
)

var colNames = [numCols]string{"email", "user_id", "profile", "competence", "attitude"}

func column(name string) (int, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	for i, n := range colNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

const (
	maxEmailLen = 254 // RFC 5321 path limit
	maxIDLen    = 256
)

// cell is one value of a row as text; ok is false when the value is absent
// or empty, invalid when it was given but is not a string or number (and
// was reported).
type cell struct {
	text    string
	line    int
	ok      bool
	invalid bool
}

// given reports whether the row gave the value, usable or not.
func (c cell) given() bool { return c.ok || c.invalid }

type row struct {
	line, index int
	cells       [numCols]cell
}

// ParseFile parses a directory file, choosing the format by the extension
// of name: .csv, .json, or .yaml/.yml.
//
//   - CSV: a header row naming the columns, in any order, then one row per
//     person. Empty cells are absent. Lines starting with '#' are comments.
//   - JSON: an array of objects with the column names as keys.
//   - YAML: a list of mappings with the column names as keys.
//
// The columns are email, user_id, profile, competence and attitude. Each
// row needs an email or a user_id (or both), and a profile or both scores;
// scores are classified with q, and a row that gives both a profile and
// scores must agree with itself. An email or id given twice is an error.
//
// Every problem is reported, in one *[FileError] whose rows carry the line
// (and for JSON and YAML the list index); nothing is returned with it. An
// unknown extension gives an error wrapping [ErrFormat].
func ParseFile(name string, data []byte, q Quadrant) ([]Entry, error) {
	var (
		rows []row
		errs []RowError
	)
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".csv":
		rows, errs = readCSV(data)
	case ".json":
		rows, errs = readJSON(data)
	case ".yaml", ".yml":
		rows, errs = readYAML(data)
	default:
		return nil, fmt.Errorf("%s: %w %q; use .csv, .json, .yaml or .yml", name, ErrFormat, ext)
	}
	entries := make([]Entry, 0, len(rows))
	seenEmail := make(map[string]int)
	seenID := make(map[string]int)
	for _, r := range rows {
		e, es := r.entry(q, seenEmail, seenID)
		if len(es) > 0 {
			errs = append(errs, es...)
			continue
		}
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b RowError) int {
			if (a.Line == 0) != (b.Line == 0) { // unplaced ones last
				return cmp.Compare(b.Line, a.Line)
			}
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Index, b.Index))
		})
		return nil, &FileError{File: name, Rows: errs}
	}
	return entries, nil
}

// entry checks a row and turns it into an Entry. seenEmail and seenID map
// the emails and ids of earlier rows to their lines.
func (r *row) entry(q Quadrant, seenEmail, seenID map[string]int) (Entry, []RowError) {
	var errs []RowError
	bad := func(col int, format string, args ...any) {
		line := r.line
		if c := r.cells[col]; c.line > 0 {
			line = c.line
		}
		errs = append(errs, RowError{Line: line, Index: r.index, Field: colNames[col], Msg: fmt.Sprintf(format, args...)})
	}
	e := Entry{Line: r.line}
	if c := r.cells[colEmail]; c.ok {
		email := strings.ToLower(c.text)
		if msg := checkEmail(email); msg != "" {
			bad(colEmail, "%s", msg)
		} else if prev, dup := seenEmail[email]; dup {
			bad(colEmail, "same email as the row on line %d", prev)
		} else {
			seenEmail[email] = r.line
			e.Email = email
		}
	}
	if c := r.cells[colUserID]; c.ok {
		if msg := checkID(c.text); msg != "" {
			bad(colUserID, "%s", msg)
		} else if prev, dup := seenID[c.text]; dup {
			bad(colUserID, "same user_id as the row on line %d", prev)
		} else {
			seenID[c.text] = r.line
			e.UserID = c.text
		}
	}
	if !r.cells[colEmail].given() && !r.cells[colUserID].given() {
		errs = append(errs, RowError{Line: r.line, Index: r.index, Msg: "row has neither email nor user_id"})
	}
	if c := r.cells[colProfile]; c.ok {
		p, err := ticket.ParseProfileName(c.text)
		switch {
		case err != nil:
			bad(colProfile, "%q is not a profile; use doer, prioritizer, trier or supported", c.text)
		case p == ticket.Unknown:
			bad(colProfile, "%q is not a profile to store; leave the row out instead", c.text)
		default:
			e.Profile = p
		}
	}
	comp, compOK := r.score(colCompetence, q, bad)
	att, attOK := r.score(colAttitude, q, bad)
	hasComp, hasAtt := r.cells[colCompetence].given(), r.cells[colAttitude].given()
	switch {
	case hasComp && !hasAtt:
		bad(colAttitude, "missing; give both scores or neither")
	case hasAtt && !hasComp:
		bad(colCompetence, "missing; give both scores or neither")
	case !hasComp && !r.cells[colProfile].given():
		errs = append(errs, RowError{Line: r.line, Index: r.index, Msg: "row has neither a profile nor competence and attitude scores"})
	}
	if compOK && attOK {
		if p, err := q.Classify(comp, att); err == nil {
			if e.Profile != "" && e.Profile != p {
				bad(colProfile, "%q contradicts the scores, which classify as %s", e.Profile, p)
			}
			e.Profile, e.Competence, e.Attitude = p, &comp, &att
		}
	}
	return e, errs
}

// score parses a score and checks it is on q's scale.
func (r *row) score(col int, q Quadrant, bad func(int, string, ...any)) (float64, bool) {
	c := r.cells[col]
	if !c.ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(c.text, 64)
	switch {
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		bad(col, "%q is not a number", truncate(c.text, 32))
		return 0, false
	case q.check(colNames[col], v) != nil:
		bad(col, "%v is not within 0…%v", v, q.Scale)
		return 0, false
	}
	return v, true
}

// checkEmail returns what is wrong with a lower-cased email, or "". The
// message never repeats the address.
func checkEmail(s string) string {
	at := strings.IndexByte(s, '@')
	switch {
	case len(s) > maxEmailLen:
		return fmt.Sprintf("longer than %d bytes", maxEmailLen)
	case at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1:
		return "not an email address: want one '@' with text on both sides"
	case strings.ContainsFunc(s, isSpaceOrControl):
		return "not an email address: contains a space or control character"
	}
	return ""
}

// checkID returns what is wrong with a user id, or "".
func checkID(s string) string {
	switch {
	case len(s) > maxIDLen:
		return fmt.Sprintf("longer than %d bytes", maxIDLen)
	case strings.ContainsFunc(s, isControl):
		return "contains a control character"
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isSpaceOrControl(r rune) bool { return r <= 0x20 || r == 0x7f }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readCSV reads a CSV directory file into rows, with the header and
// syntax problems.
func readCSV(data []byte) ([]row, []RowError) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // BOM from spreadsheet exports
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	header, err := cr.Read()
	if err == io.EOF {
		return nil, []RowError{{Line: 1, Index: -1, Msg: "empty file; want a header row naming the columns " + strings.Join(colNames[:], ", ")}}
	}
	if err != nil {
		return nil, []RowError{csvError(err)}
	}
	headerLine, _ := cr.FieldPos(0)
	cols := make([]int, len(header))
	var present [numCols]bool
	var errs []RowError
	for i, h := range header {
		c, ok := column(h)
		cols[i] = -1
		switch {
		case !ok:
			errs = append(errs, RowError{Line: headerLine, Index: -1,
				Msg: fmt.Sprintf("unknown column %q; use %s", truncate(h, 32), strings.Join(colNames[:], ", "))})
		case present[c]:
			errs = append(errs, RowError{Line: headerLine, Index: -1, Msg: fmt.Sprintf("column %q given twice", colNames[c])})
		default:
			cols[i], present[c] = c, true
		}
	}
	if !present[colEmail] && !present[colUserID] {
		errs = append(errs, RowError{Line: headerLine, Index: -1, Msg: "header has neither an email nor a user_id column"})
	}
	if !present[colProfile] && (!present[colCompetence] || !present[colAttitude]) {
		errs = append(errs, RowError{Line: headerLine, Index: -1, Msg: "header needs a profile column or both competence and attitude columns"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	var rows []row
	for index := 0; ; index++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			e := csvError(err)
			e.Index = index
			errs = append(errs, e)
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			errs = append(errs, RowError{Line: line, Index: index,
				Msg: fmt.Sprintf("row has %d fields, the header has %d", len(rec), len(header))})
			continue
		}
		r := row{line: line, index: index}
		for i, v := range rec {
			if v = strings.TrimSpace(v); v != "" {
				l, _ := cr.FieldPos(i)
				r.cells[cols[i]] = cell{text: v, line: l, ok: true}
			}
		}
		rows = append(rows, r)
	}
	return rows, errs
}

func csvError(err error) RowError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return RowError{Line: pe.StartLine, Index: -1, Msg: pe.Err.Error()}
	}
	return RowError{Index: -1, Msg: err.Error()}
}

// readJSON reads a JSON directory file: an array of objects.
func readJSON(data []byte) ([]row, []RowError) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	syntax := func(err error) RowError {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return RowError{Line: lineAt(data, jsonErrorAt(data, se)), Index: -1, Msg: "invalid JSON: " + se.Error()}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return RowError{Line: lineAt(data, len(data)), Index: -1, Msg: "invalid JSON: unexpected end of file"}
		}
		return RowError{Line: lineAt(data, int(dec.InputOffset())), Index: -1, Msg: "invalid JSON: " + err.Error()}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, []RowError{syntax(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, []RowError{{Line: lineAt(data, int(dec.InputOffset())), Index: -1, Msg: "want a JSON array of profile objects"}}
	}
	var (
		rows []row
		errs []RowError
	)
	for index := 0; dec.More(); index++ {
		start := skipJSONSpace(data, int(dec.InputOffset()))
		line := lineAt(data, start)
		var obj map[string]json.RawMessage
		if err := dec.Decode(&obj); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				errs = append(errs, RowError{Line: line, Index: index, Msg: "row is not an object"})
				continue
			}
			return nil, append(errs, syntax(err))
		}
		if obj == nil {
			errs = append(errs, RowError{Line: line, Index: index, Msg: "row is not an object"})
			continue
		}
		r := row{line: line, index: index}
		for _, k := range slices.Sorted(maps.Keys(obj)) { // stable error order
			c, ok := column(k)
			if !ok {
				errs = append(errs, RowError{Line: line, Index: index, Field: truncate(k, 32),
					Msg: "unknown key; use " + strings.Join(colNames[:], ", ")})
				continue
			}
			text, present, msg := jsonText(obj[k])
			if msg != "" {
				errs = append(errs, RowError{Line: line, Index: index, Field: colNames[c], Msg: msg})
				r.cells[c].invalid = true
				continue
			}
			if present {
				r.cells[c] = cell{text: text, line: line, ok: true}
			}
		}
		rows = append(rows, r)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, append(errs, syntax(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, append(errs, RowError{Line: lineAt(data, int(dec.InputOffset())), Index: -1, Msg: "invalid JSON: data after the array"})
	}
	return rows, errs
}

// jsonText returns a JSON string or number as text; null and "" are
// absent. msg says what is wrong with any other value.
func jsonText(raw json.RawMessage) (text string, present bool, msg string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, "invalid string"
		}
		s = strings.TrimSpace(s)
		return s, s != "", ""
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true, ""
	}
	return "", false, "want a string or a number"
}

// skipJSONSpace returns the offset of the first byte at or after off that
// is neither white space nor a comma.
func skipJSONSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}

// jsonErrorAt guesses the offset of the byte a *json.SyntaxError is about.
// Its Offset may point a little before that byte: at the end of the last
// good value or at the white space after it. When the message names the
// bad character, it is the first one from Offset on; otherwise skip the
// white space.
func jsonErrorAt(data []byte, se *json.SyntaxError) int {
	off := min(max(int(se.Offset), 0), len(data))
	if _, rest, ok := strings.Cut(se.Error(), "invalid character '"); ok && len(rest) > 1 && rest[1] == '\'' {
		if i := bytes.IndexByte(data[off:], rest[0]); i >= 0 {
			return off + i
		}
	}
	for off < len(data) && isJSONSpace(data[off]) {
		off++
	}
	return off
}

func isJSONSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// readYAML reads a YAML directory file: a list of mappings.
func readYAML(data []byte) ([]row, []RowError) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []RowError{yamlError(err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file: no rows
	}
	list := resolve(doc.Content[0])
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, []RowError{{Line: list.Line, Index: -1, Msg: "want a list of profile entries"}}
	}
	var (
		rows []row
		errs []RowError
	)
	for index, item := range list.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			errs = append(errs, RowError{Line: item.Line, Index: index, Msg: "entry is not a mapping"})
			continue
		}
		r := row{line: item.Line, index: index}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := resolve(item.Content[i]), resolve(item.Content[i+1])
			c, ok := column(k.Value)
			if k.Kind != yaml.ScalarNode || !ok {
				errs = append(errs, RowError{Line: k.Line, Index: index, Field: truncate(k.Value, 32),
					Msg: "unknown key; use " + strings.Join(colNames[:], ", ")})
				continue
			}
			if r.cells[c].line > 0 {
				errs = append(errs, RowError{Line: k.Line, Index: index, Field: colNames[c], Msg: "key given twice"})
				continue
			}
			switch {
			case v.Kind != yaml.ScalarNode:
				errs = append(errs, RowError{Line: v.Line, Index: index, Field: colNames[c], Msg: "want a single value"})
				r.cells[c] = cell{line: v.Line, invalid: true}
			case v.Tag == "!!null":
				r.cells[c].line = v.Line // absent, but seen
			default:
				s := strings.TrimSpace(v.Value)
				r.cells[c] = cell{text: s, line: v.Line, ok: s != ""}
			}
		}
		rows = append(rows, r)
	}
	return rows, errs
}

// resolve follows one alias.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// yamlError turns a YAML syntax error ("yaml: line 3: did not find
// expected key") into a RowError with its line.
func yamlError(err error) RowError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := RowError{Index: -1, Msg: "invalid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				e.Line, e.Msg = line, "invalid YAML: "+tail
			}
		}
	}
	return e
}
