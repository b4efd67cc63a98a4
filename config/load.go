package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	yaml "go.yaml.in/yaml/v3"
)

// EnvPrefix is the prefix of environment overrides: nats.url is
// DESKRELAY_NATS_URL, connectors.generic.auth.token is
// DESKRELAY_CONNECTORS_GENERIC_AUTH_TOKEN.
const EnvPrefix = "DESKRELAY"

// EnvName returns the environment variable that overrides the key path.
func EnvName(path string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + "_" + strings.ToUpper(r.Replace(path))
}

// Load reads the YAML file at path, applies defaults and DESKRELAY_*
// environment overrides, resolves secrets and checks every key and value
// this package knows. On failure the error is [Errors] holding every
// problem found, each with its position. The returned *Config is non-nil
// whenever the file could be parsed, so that callers can go on checking
// the parts they own and report everything at once.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; name is used in error positions and
// to resolve relative file references.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{file: name, pos: map[string]position{}, env: map[string]string{}}
	var errs Errors

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != 0 && doc.Kind != yaml.MappingNode {
		return nil, Errors{{File: name, Line: doc.Line, Col: doc.Column, Msg: "the config must be a YAML mapping of keys (data_dir, http, nats, …)"}}
	}
	w := walker{c: c, errs: &errs, secrets: map[string]bool{}}
	if doc.Kind == yaml.MappingNode {
		w.node(doc, reflect.TypeFor[Config](), "")
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("cannot parse YAML: %v", err)}}
	}
	def := Default()
	for k, val := range leaves(reflect.ValueOf(def), "") {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	// Viper's Unmarshal sees env values only for keys it knows
	// (spf13/viper#761): bind every scalar key of every connector named in
	// the file, so that their secrets can come from the environment.
	for name := range v.GetStringMap("connectors") {
		for k := range leaves(reflect.ValueOf(Connector{}), "connectors."+name) {
			_ = v.BindEnv(k, EnvName(k))
		}
	}
	w.envOverrides(v)

	if err := v.Unmarshal(c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		secretHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	))); err != nil && len(errs) == 0 {
		// The walk reports type errors with positions, and the decoder
		// goes on past them; this is only for what the walk missed.
		errs = append(errs, &Error{File: name, Msg: err.Error()})
	}
	// Viper applies env values of nested map keys in map order, so a
	// file value may win over a bound env variable; set them again here.
	for path, env := range c.env {
		_ = setPath(reflect.ValueOf(c).Elem(), strings.Split(path, "."), os.Getenv(env))
	}
	errs = append(errs, c.resolveSecrets(w.secrets)...)
	c.connectorDefaults()
	seen := map[string]bool{}
	for _, e := range errs {
		seen[e.Path] = true
	}
	for _, e := range c.check() {
		if !seen[e.Path] { // a value the walk rejected is not checked again
			errs = append(errs, e)
		}
	}
	return c, c.Locate(errs.Err()).Err()
}

// connectorDefaults fills the poll and api keys a connector leaves unset.
func (c *Config) connectorDefaults() {
	for name, con := range c.Connectors {
		p, a := &con.Poll, &con.API
		p.Interval = cmp.Or(p.Interval, DefaultPoll.Interval)
		p.PageSize = cmp.Or(p.PageSize, DefaultPoll.PageSize)
		p.Start = cmp.Or(p.Start, DefaultPoll.Start)
		p.LeaseTTL = cmp.Or(p.LeaseTTL, DefaultPoll.LeaseTTL)
		a.Timeout = cmp.Or(a.Timeout, DefaultAPI.Timeout)
		a.MaxRetries = cmp.Or(a.MaxRetries, DefaultAPI.MaxRetries)
		a.RetryWaitMin = cmp.Or(a.RetryWaitMin, DefaultAPI.RetryWaitMin)
		a.RetryWaitMax = cmp.Or(a.RetryWaitMax, DefaultAPI.RetryWaitMax)
		c.Connectors[name] = con
	}
}

func yamlError(name string, err error) *Error {
	e := &Error{File: name, Msg: err.Error()}
	// yaml.v3 says "yaml: line 12: mapping values are not allowed…".
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		e.Line, e.Col = line, 1
		if _, rest, ok := strings.Cut(err.Error(), fmt.Sprintf("line %d: ", line)); ok {
			e.Msg = rest
		}
	}
	return e
}

// walker checks the YAML tree against the Config type: unknown keys, values
// of the wrong kind and inline secrets, recording the position of each key.
type walker struct {
	c       *Config
	errs    *Errors
	secrets map[string]bool // key paths of Secret values in the file
}

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) {
	*w.errs = append(*w.errs, &Error{File: w.c.file, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[time.Duration]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *walker) node(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch {
	case t == secretType:
		if n.Kind != yaml.ScalarNode {
			w.errorf(n, path, "must be a string: env:NAME or file:PATH")
			return
		}
		w.secrets[path] = true
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			w.errorf(n, path, "must be a duration such as 30s, 5m or 2h")
			return
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			w.errorf(n, path, "%q is not a duration; write e.g. 30s, 5m or 2h", n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "must be a mapping of keys (%s)", strings.Join(fieldNames(t), ", "))
			return
		}
		fields, remain := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			w.c.pos[p] = valuePos(k, val)
			f, ok := fields[k.Value]
			if !ok {
				if remain {
					w.positions(val, p)
					continue
				}
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := Suggest(k.Value, fieldNames(t)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				w.errorf(k, p, "%s", msg)
				continue
			}
			w.node(val, f, p)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "must be a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			w.c.pos[p] = valuePos(k, val)
			if path == "connectors" && !validName(k.Value) {
				w.errorf(k, p, "connector name %q must be lower-case letters, digits, '-' or '_' (it is part of the URL and of NATS subjects)", k.Value)
			}
			w.node(val, t.Elem(), p)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if t.Elem().Kind() == reflect.String && n.Kind == yaml.ScalarNode {
				return // "a,b" is accepted for a list of strings
			}
			w.errorf(n, path, "must be a list")
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.c.pos[p] = position{item.Line, item.Column}
			w.node(item, t.Elem(), p)
		}
	default:
		w.scalar(n, t, path)
	}
}

// positions records the positions of keys the walker does not check
// (connector options), so that the package that does can be located.
func (w *walker) positions(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			w.c.pos[p] = valuePos(n.Content[i], n.Content[i+1])
			w.positions(n.Content[i+1], p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.c.pos[p] = position{item.Line, item.Column}
			w.positions(item, p)
		}
	}
}

func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, path, "must be a single value, not a %s", kindName(n.Kind))
		return
	}
	if err := checkScalar(n.Value, t); err != nil {
		w.errorf(n, path, "%v", err)
	}
}

func checkScalar(s string, t reflect.Type) error {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		if _, err := strconv.ParseInt(s, 0, 64); err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
	case reflect.Float64:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
	case reflect.Bool:
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
	}
	return nil
}

// valuePos is where an error about key: value points: at a scalar value,
// else at the key.
func valuePos(k, v *yaml.Node) position {
	if v.Kind == yaml.ScalarNode && v.Line > 0 {
		return position{v.Line, v.Column}
	}
	return position{k.Line, k.Column}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// envOverrides records which keys came from the environment and checks
// their values, so that errors name the variable instead of a line.
func (w *walker) envOverrides(v *viper.Viper) {
	all := map[string]reflect.Type{}
	typesOf(reflect.TypeFor[Config](), "", all)
	for name := range v.GetStringMap("connectors") {
		typesOf(reflect.TypeFor[Connector](), "connectors."+name, all)
	}
	// Hints are keyed by profile name, a fixed set: each of their scalar
	// keys can come from the environment too.
	for _, profile := range []string{"doer", "prioritizer", "trier", "supported", "unknown"} {
		typesOf(reflect.TypeFor[ProfileHints](), "profiles.hints."+profile, all)
	}
	for path, t := range all {
		env := EnvName(path)
		val, ok := os.LookupEnv(env)
		if !ok {
			continue
		}
		w.c.env[path] = env
		delete(w.secrets, path) // a secret given in the environment may be literal
		var err error
		switch {
		case t == durationType:
			if _, perr := time.ParseDuration(val); perr != nil {
				err = fmt.Errorf("%q is not a duration; write e.g. 30s, 5m or 2h", val)
			}
		case t == secretType:
		default:
			err = checkScalar(val, t)
		}
		if err != nil {
			*w.errs = append(*w.errs, &Error{Env: env, Path: path, Msg: err.Error()})
		}
	}
}

// setPath sets the scalar at path (mapstructure names) to the string val.
// Errors were reported by envOverrides already.
func setPath(v reflect.Value, path []string, val string) error {
	for i, name := range path {
		switch v.Kind() {
		case reflect.Struct:
			fields := v.Type()
			found := false
			for j := range fields.NumField() {
				tag, _, _ := strings.Cut(fields.Field(j).Tag.Get("mapstructure"), ",")
				if tag == name && fields.Field(j).IsExported() {
					v, found = v.Field(j), true
					break
				}
			}
			if !found {
				return fmt.Errorf("no key %q", name)
			}
		case reflect.Map:
			if v.IsNil() {
				if !v.CanSet() {
					return fmt.Errorf("no map at %q", name)
				}
				v.Set(reflect.MakeMap(v.Type()))
			}
			key := reflect.ValueOf(name)
			e := reflect.New(v.Type().Elem()).Elem()
			if cur := v.MapIndex(key); cur.IsValid() {
				e.Set(cur)
			}
			if err := setPath(e, path[i+1:], val); err != nil {
				return err
			}
			v.SetMapIndex(key, e)
			return nil
		default:
			return fmt.Errorf("%q is not a mapping", name)
		}
	}
	switch {
	case v.Type() == secretType:
		v.Set(reflect.ValueOf(Secret{v: val}))
	case v.Type() == durationType:
		d, err := time.ParseDuration(val)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(val)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(val, 0, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		v.SetBool(b)
	}
	return nil
}

// typesOf lists the scalar key paths of a struct type with their types.
func typesOf(t reflect.Type, path string, out map[string]reflect.Type) {
	fields, _ := structFields(t)
	for name, ft := range fields {
		p := join(path, name)
		if ft.Kind() == reflect.Struct && ft != secretType {
			typesOf(ft, p, out)
			continue
		}
		if ft.Kind() == reflect.Map || ft.Kind() == reflect.Slice {
			continue
		}
		out[p] = ft
	}
}

// leaves flattens a struct value into key path → value for viper defaults.
func leaves(v reflect.Value, path string) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" || !f.IsExported() {
			continue
		}
		p := join(path, name)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != secretType {
			for k, val := range leaves(fv, p) {
				out[k] = val
			}
			continue
		}
		if f.Type == secretType {
			out[p] = ""
			continue
		}
		out[p] = fv.Interface()
	}
	return out
}

func structFields(t reflect.Type) (map[string]reflect.Type, bool) {
	fields := map[string]reflect.Type{}
	remain := false
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if opts == "remain" {
			remain = true
			continue
		}
		if name == "" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
	}
	return fields, remain
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if name != "" {
			names = append(names, name)
		}
	}
	return names
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// secretHook turns a string into a Secret holding the raw reference;
// resolveSecrets reads what it refers to.
func secretHook(from, to reflect.Type, data any) (any, error) {
	if to != secretType || from.Kind() != reflect.String {
		return data, nil
	}
	return Secret{v: data.(string)}, nil
}

// resolveSecrets replaces every env:NAME and file:PATH reference by the
// value it names. Literal secrets are accepted from the environment only.
func (c *Config) resolveSecrets(inFile map[string]bool) Errors {
	var errs Errors
	dir := filepath.Dir(c.file)
	visitSecrets(reflect.ValueOf(c).Elem(), "", func(path string, s *Secret) {
		raw := s.v
		switch {
		case raw == "":
		case strings.HasPrefix(raw, "env:"):
			name := strings.TrimPrefix(raw, "env:")
			val, ok := os.LookupEnv(name)
			if !ok || val == "" {
				errs = append(errs, Errorf(path, "environment variable %s is not set (referenced as %q)", name, raw))
			}
			s.v = val
		case strings.HasPrefix(raw, "file:"):
			p := strings.TrimPrefix(raw, "file:")
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, Errorf(path, "cannot read secret file: %v", errors.Unwrap(err)))
				s.v = ""
				return
			}
			s.v = strings.TrimRight(string(b), "\r\n")
			if s.v == "" {
				errs = append(errs, Errorf(path, "secret file %s is empty", p))
			}
		case inFile[path]:
			s.v = ""
			errs = append(errs, Errorf(path, "secrets may not be written in the file; use env:NAME or file:PATH (or set %s)", EnvName(path)))
		}
	})
	return errs
}

func visitSecrets(v reflect.Value, path string, fn func(string, *Secret)) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == secretType {
			fn(path, v.Addr().Interface().(*Secret))
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
			if name == "" || !t.Field(i).IsExported() {
				continue
			}
			visitSecrets(v.Field(i), join(path, name), fn)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.Struct {
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			visitSecrets(e, join(path, k.String()), fn)
			v.SetMapIndex(k, e)
		}
	}
}

// Suggest returns the candidate closest to s when it is a likely typo (edit
// distance at most 2, or a quarter of s when longer), or "". Packages use
// it for "did you mean" hints.
func Suggest(s string, candidates []string) string {
	best, bestD := "", max(2, len(s)/4)+1
	for _, c := range candidates {
		if d := distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
