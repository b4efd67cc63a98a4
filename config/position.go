package config

type position struct{ line, col int }

// Locate fills in File, Line, Col and Env of every *Error in err from the
// key paths, and returns the list sorted by position. A path not in the
// file is located at its nearest ancestor that is.
func (c *Config) Locate(err error) Errors {
	es := AsErrors(err)
	for _, e := range es {
		c.locate(e)
	}
	es.Sort()
	return es
}

func (c *Config) locate(e *Error) {
	if e.File == "" {
		e.File = c.file
	}
	if e.Env == "" && c.env != nil {
		if name, ok := c.env[e.Path]; ok {
			e.Env = name
			return
		}
	}
	if e.Line > 0 || c.pos == nil {
		return
	}
	for p := e.Path; p != ""; p = parentPath(p) {
		if pos, ok := c.pos[p]; ok {
			e.Line, e.Col = pos.line, pos.col
			return
		}
	}
}

// parentPath drops the last element of a key path: "a.b[2]" → "a.b",
// "a.b" → "a".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

// File returns the path the configuration was loaded from.
func (c *Config) File() string { return c.file }
