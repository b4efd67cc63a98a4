package jsm

import (
	"strconv"
	"strings"
	"time"
)

// adfNode is one node of an Atlassian Document Format document
// (developer.atlassian.com/cloud/jira/platform/apis/document/structure/):
// block nodes (paragraph, heading, lists, codeBlock, …) hold inline nodes
// (text with marks, hardBreak, mention, emoji, …).
type adfNode struct {
	Type    string         `json:"type"`
	Text    string         `json:"text"`
	Attrs   map[string]any `json:"attrs"`
	Marks   []adfMark      `json:"marks"`
	Content []adfNode      `json:"content"`
}

type adfMark struct {
	Type  string         `json:"type"`
	Attrs map[string]any `json:"attrs"`
}

// maxADFDepth bounds the nesting rendered; deeper content is dropped
// (real documents nest a few levels; a hostile one must not exhaust the
// stack).
const maxADFDepth = 64

// adfText renders a document as readable plain text: blocks separated by
// a blank line, list items as "- " or "1. " lines indented under their
// parent, code blocks fenced with ```, links as "text (url)" when the
// text is not the url itself, mentions and emoji by their text.
func adfText(doc *adfNode) string {
	var blocks []string
	if doc.Type == "doc" || doc.Type == "" {
		blocks = renderBlocks(doc.Content, 0)
	} else {
		blocks = []string{renderBlock(doc, 0)}
	}
	return strings.TrimSpace(strings.Join(nonEmpty(blocks), "\n\n"))
}

func renderBlocks(ns []adfNode, depth int) []string {
	if depth > maxADFDepth {
		return nil
	}
	out := make([]string, 0, len(ns))
	for i := range ns {
		out = append(out, renderBlock(&ns[i], depth+1))
	}
	return out
}

func renderBlock(n *adfNode, depth int) string {
	if depth > maxADFDepth {
		return ""
	}
	switch n.Type {
	case "paragraph", "heading":
		return renderInline(n.Content, depth)
	case "bulletList", "decisionList":
		return renderList(n, depth, func(int) string { return "- " })
	case "orderedList":
		start := 1
		if f, ok := n.Attrs["order"].(float64); ok && f >= 0 && f < 1e9 {
			start = int(f)
		}
		return renderList(n, depth, func(i int) string { return strconv.Itoa(start+i) + ". " })
	case "taskList":
		return renderList(n, depth, func(int) string { return "" })
	case "codeBlock":
		var b strings.Builder
		for _, c := range n.Content {
			b.WriteString(c.Text)
		}
		return "```" + attr(n, "language") + "\n" + b.String() + "\n```"
	case "blockquote":
		return prefixLines(strings.Join(nonEmpty(renderBlocks(n.Content, depth)), "\n\n"), "> ", "> ")
	case "rule":
		return "---"
	case "table":
		var rows []string
		for _, r := range n.Content {
			var cells []string
			for i := range r.Content {
				cell := strings.Join(nonEmpty(renderBlocks(r.Content[i].Content, depth+1)), " ")
				cells = append(cells, strings.ReplaceAll(cell, "\n", " "))
			}
			rows = append(rows, strings.Join(cells, " | "))
		}
		return strings.Join(rows, "\n")
	case "media", "mediaInline":
		if alt := attr(n, "alt"); alt != "" {
			return "[attachment: " + alt + "]"
		}
		return "[attachment]"
	case "blockCard", "embedCard", "inlineCard":
		return attr(n, "url")
	case "expand", "nestedExpand":
		body := strings.Join(nonEmpty(renderBlocks(n.Content, depth)), "\n\n")
		if title := attr(n, "title"); title != "" {
			return strings.TrimSpace(title + "\n" + body)
		}
		return body
	case "taskItem", "decisionItem", "text", "hardBreak", "mention", "emoji", "date", "status":
		return renderInline([]adfNode{*n}, depth)
	}
	// Containers (panel, mediaSingle, mediaGroup, layouts, extensions)
	// and node types added after this was written: render what they hold.
	if len(n.Content) > 0 {
		if isInline(n.Content[0].Type) {
			return renderInline(n.Content, depth)
		}
		return strings.Join(nonEmpty(renderBlocks(n.Content, depth)), "\n\n")
	}
	return n.Text
}

// renderList renders list items: the marker on the first line, the rest
// of the item indented to line up under it.
func renderList(n *adfNode, depth int, marker func(int) string) string {
	var items []string
	for i := range n.Content {
		it := &n.Content[i]
		m := marker(i)
		var body string
		switch it.Type {
		case "taskItem":
			m = "[ ] "
			if attr(it, "state") == "DONE" {
				m = "[x] "
			}
			body = renderInline(it.Content, depth+1)
		case "decisionItem":
			body = renderInline(it.Content, depth+1)
		case "listItem":
			body = strings.Join(nonEmpty(renderBlocks(it.Content, depth+1)), "\n")
		default: // a nested list directly in a list, as taskList allows
			body = renderBlock(it, depth+1)
			if body != "" {
				items = append(items, prefixLines(body, "  ", "  "))
			}
			continue
		}
		items = append(items, prefixLines(body, m, strings.Repeat(" ", len(m))))
	}
	return strings.Join(items, "\n")
}

func renderInline(ns []adfNode, depth int) string {
	if depth > maxADFDepth {
		return ""
	}
	var b strings.Builder
	for i := range ns {
		n := &ns[i]
		switch n.Type {
		case "text":
			b.WriteString(n.Text)
			for _, m := range n.Marks {
				if m.Type != "link" {
					continue
				}
				if href, _ := m.Attrs["href"].(string); href != "" && href != n.Text {
					b.WriteString(" (" + href + ")")
				}
			}
		case "hardBreak":
			b.WriteString("\n")
		case "mention":
			if t := attr(n, "text"); t != "" {
				if !strings.HasPrefix(t, "@") {
					t = "@" + t
				}
				b.WriteString(t)
			} else {
				b.WriteString("@user")
			}
		case "emoji":
			b.WriteString(cmpOr(attr(n, "text"), attr(n, "shortName")))
		case "date":
			if ms, err := strconv.ParseInt(attr(n, "timestamp"), 10, 64); err == nil {
				b.WriteString(time.UnixMilli(ms).UTC().Format("2006-01-02"))
			}
		case "status":
			b.WriteString(attr(n, "text"))
		case "inlineCard":
			b.WriteString(attr(n, "url"))
		case "mediaInline":
			b.WriteString("[attachment]")
		case "placeholder":
		default:
			b.WriteString(n.Text)
			if len(n.Content) > 0 {
				b.WriteString(renderInline(n.Content, depth+1))
			}
		}
	}
	return b.String()
}

func isInline(t string) bool {
	switch t {
	case "text", "hardBreak", "mention", "emoji", "date", "status", "inlineCard", "mediaInline", "placeholder":
		return true
	}
	return false
}

// attr returns a string attribute (numbers as integers).
func attr(n *adfNode, key string) string {
	switch v := n.Attrs[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// prefixLines puts first before the first line and rest before the others.
func prefixLines(s, first, rest string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		if i == 0 {
			lines[i] = first + lines[i]
		} else if lines[i] != "" {
			lines[i] = rest + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

func nonEmpty(ss []string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}
