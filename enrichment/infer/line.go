package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/deskrelay/deskrelay/ticket"
)

// Line is one line of the input of `deskrelay profiles infer`: a
// normalised ticket (the JSON of [ticket.Ticket]) with two optional extra
// members, "history", the caller's earlier tickets oldest first, and
// "label", the caller's true profile when the line is for evaluation.
type Line struct {
	Ticket  ticket.Ticket
	History []ticket.Ticket
	Label   ticket.ProfileName // "" when the line has no label
}

// ErrLine is wrapped by the errors of [DecodeLine].
var ErrLine = errors.New("bad input line")

// DecodeLine parses one input line. The ticket needs an id and a title or
// description; a label must name one of the four profiles. Unknown members
// are ignored, so a routed ticket's JSON can be fed as it is.
func DecodeLine(data []byte) (Line, error) {
	var raw struct {
		ticket.Ticket
		History []ticket.Ticket `json:"history"`
		Label   *string         `json:"label"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Line{}, fmt.Errorf("%w: not a ticket JSON object: %w", ErrLine, err)
	}
	l := Line{Ticket: raw.Ticket, History: raw.History}
	switch {
	case strings.TrimSpace(l.Ticket.ID) == "":
		return Line{}, fmt.Errorf("%w: id is required", ErrLine)
	case strings.TrimSpace(l.Ticket.Title) == "" && strings.TrimSpace(l.Ticket.Description) == "":
		return Line{}, fmt.Errorf("%w: ticket %q has neither title nor description", ErrLine, l.Ticket.ID)
	}
	if raw.Label != nil {
		name, err := ticket.ParseProfileName(*raw.Label)
		if err != nil || name == ticket.Unknown {
			return Line{}, fmt.Errorf("%w: label %q is not one of doer, prioritizer, trier, supported", ErrLine, *raw.Label)
		}
		l.Label = name
	}
	return l, nil
}

// Result is one output line of `deskrelay profiles infer`.
type Result struct {
	ID         string             `json:"id"`
	Profile    ticket.ProfileName `json:"profile"`
	Confidence float64            `json:"confidence"`
	Competence float64            `json:"competence"`
	Attitude   float64            `json:"attitude"`
}

// NewResult returns the output line for ticket id and its inferred profile.
func NewResult(id string, p ticket.Profile) Result {
	r := Result{ID: id, Profile: p.Name, Confidence: p.Confidence}
	if p.Competence != nil {
		r.Competence = *p.Competence
	}
	if p.Attitude != nil {
		r.Attitude = *p.Attitude
	}
	return r
}

// quadrantNames are the rows of a confusion matrix; its columns add unknown.
var quadrantNames = []ticket.ProfileName{ticket.Doer, ticket.Prioritizer, ticket.Trier, ticket.Supported}

// Report counts inferred profiles against labels. The zero Report is empty
// and ready to use.
type Report struct {
	// Confusion[i][j] counts the tickets labelled quadrantNames[i] that
	// were inferred as quadrantNames[j], j = 4 meaning unknown.
	Confusion [4][5]int
}

func index(p ticket.ProfileName) int {
	for i, n := range quadrantNames {
		if n == p {
			return i
		}
	}
	return 4
}

// Add counts one ticket labelled label (one of the four profiles) that was
// inferred as got.
func (r *Report) Add(label, got ticket.ProfileName) {
	if i := index(label); i < 4 {
		r.Confusion[i][index(got)]++
	}
}

// Total returns the number of tickets counted.
func (r *Report) Total() int {
	n := 0
	for i := range r.Confusion {
		for _, c := range r.Confusion[i] {
			n += c
		}
	}
	return n
}

// Accuracy is the share of all tickets inferred as their label; an unknown
// answer counts as wrong.
func (r *Report) Accuracy() float64 {
	ok := 0
	for i := range 4 {
		ok += r.Confusion[i][i]
	}
	return ratio(ok, r.Total())
}

// Baseline is the accuracy of always answering doer, the most common
// profile among employees (DESIGN.md §1).
func (r *Report) Baseline() float64 {
	return ratio(r.labelled(0), r.Total())
}

func (r *Report) labelled(i int) int {
	n := 0
	for _, c := range r.Confusion[i] {
		n += c
	}
	return n
}

func (r *Report) unknownCount() int {
	n := 0
	for i := range 4 {
		n += r.Confusion[i][4]
	}
	return n
}

// Coverage is the share of tickets that were given one of the four
// profiles rather than unknown.
func (r *Report) Coverage() float64 { return ratio(r.Total()-r.unknownCount(), r.Total()) }

// NamedAccuracy is the accuracy over the tickets that were given a profile.
func (r *Report) NamedAccuracy() float64 {
	ok := 0
	for i := range 4 {
		ok += r.Confusion[i][i]
	}
	return ratio(ok, r.Total()-r.unknownCount())
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// WriteTo writes the report as text: the figures, then the confusion
// matrix with labels as rows and inferred profiles as columns.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "tickets            %d\n", r.Total())
	fmt.Fprintf(&b, "accuracy           %.3f\n", r.Accuracy())
	fmt.Fprintf(&b, "baseline (doer)    %.3f\n", r.Baseline())
	fmt.Fprintf(&b, "coverage           %.3f\n", r.Coverage())
	fmt.Fprintf(&b, "accuracy if named  %.3f\n", r.NamedAccuracy())
	fmt.Fprintf(&b, "\n%-13s", "label \\ got")
	for _, n := range append(quadrantNames[:4:4], ticket.Unknown) {
		fmt.Fprintf(&b, "%12s", n)
	}
	b.WriteString("\n")
	for i, n := range quadrantNames {
		fmt.Fprintf(&b, "%-13s", n)
		for _, c := range r.Confusion[i] {
			fmt.Fprintf(&b, "%12d", c)
		}
		b.WriteString("\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
