package jsm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/deskrelay/deskrelay/internal/fixture"
)

func TestADFFixture(t *testing.T) {
	text, err := richText(fixture.Read(t, "testdata", "description_adf.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "description_adf.txt", []byte(text+"\n"))
}

func TestADFNodes(t *testing.T) {
	p := func(inline string) string { return `{"type":"paragraph","content":[` + inline + `]}` }
	txt := func(s string) string { return `{"type":"text","text":"` + s + `"}` }
	item := func(blocks ...string) string {
		return `{"type":"listItem","content":[` + strings.Join(blocks, ",") + `]}`
	}
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"paragraphs are separated by a blank line", p(txt("a")) + "," + p(txt("b")), "a\n\nb"},
		{"a heading is a line of its own", `{"type":"heading","attrs":{"level":2},"content":[` + txt("Steps") + `]},` + p(txt("x")), "Steps\n\nx"},
		{"an ordered list counts from its order", `{"type":"orderedList","attrs":{"order":3},"content":[` + item(p(txt("a"))) + "," + item(p(txt("b"))) + `]}`, "3. a\n4. b"},
		{"a nested list is indented under its item",
			`{"type":"bulletList","content":[` + item(p(txt("outer")), `{"type":"bulletList","content":[`+item(p(txt("inner")))+`]}`) + `]}`,
			"- outer\n  - inner"},
		{"a link with other text shows its url", p(`{"type":"text","text":"the wiki","marks":[{"type":"link","attrs":{"href":"https://wiki.example.com"}}]}`), "the wiki (https://wiki.example.com)"},
		{"a hard break is a new line", p(txt("a") + `,{"type":"hardBreak"},` + txt("b")), "a\nb"},
		{"a mention without text is @user", p(`{"type":"mention","attrs":{"id":"557058:x"}}`), "@user"},
		{"an emoji is its text", p(`{"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}}`), "😄"},
		{"a code block is fenced with its language", `{"type":"codeBlock","attrs":{"language":"bash"},"content":[` + txt("ls -l") + `]}`, "```bash\nls -l\n```"},
		{"a quote is prefixed", `{"type":"blockquote","content":[` + p(txt("it broke")) + `]}`, "> it broke"},
		{"a table is one line per row", `{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableHeader","content":[` + p(txt("host")) + `]},{"type":"tableCell","content":[` + p(txt("vpn-fra-02")) + `]}]}]}`, "host | vpn-fra-02"},
		{"a task list shows its state", `{"type":"taskList","attrs":{"localId":"1"},"content":[{"type":"taskItem","attrs":{"localId":"2","state":"DONE"},"content":[` + txt("reboot") + `]},{"type":"taskItem","attrs":{"localId":"3","state":"TODO"},"content":[` + txt("reinstall") + `]}]}`, "[x] reboot\n[ ] reinstall"},
		{"an attachment is named", `{"type":"mediaSingle","content":[{"type":"media","attrs":{"type":"file","id":"x","collection":"c","alt":"screenshot.png"}}]}`, "[attachment: screenshot.png]"},
		{"an unknown block keeps its text", `{"type":"futureBlock","content":[` + p(txt("still here")) + `]}`, "still here"},
		{"a panel keeps its paragraphs", `{"type":"panel","attrs":{"panelType":"info"},"content":[` + p(txt("note")) + `]}`, "note"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := richText(json.RawMessage(`{"type":"doc","version":1,"content":[` + tt.doc + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("text = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestADFDeepNestingIsCut(t *testing.T) {
	doc := strings.Repeat(`{"type":"blockquote","content":[`, 500) + `{"type":"text","text":"deep"}` + strings.Repeat(`]}`, 500)
	got, err := richText(json.RawMessage(`{"type":"doc","version":1,"content":[` + doc + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "deep") {
		t.Errorf("text beyond depth %d was rendered", maxADFDepth)
	}
}
