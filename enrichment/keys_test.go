package enrichment

import (
	"regexp"
	"strings"
	"testing"
)

// validKey is the rule of nats.go's jetstream.keyValid.
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func keyValidForTest(key string) bool {
	return key != "" && key[0] != '.' && key[len(key)-1] != '.' && !strings.Contains(key, "..") && validKey.MatchString(key)
}

func TestKeys(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  string
		want string
	}{
		{"an email is lower-cased and its @ encoded", EmailKey("Doer@Example.com"), "email.doer=40example.com"},
		{"a plus in an email is encoded", EmailKey("a+it@x.org"), "email.a=2Bit=40x.org"},
		{"an equals sign is encoded so that decoding is unambiguous", EmailKey("a=40@x.org"), "email.a=3D40=40x.org"},
		{"a plain id is kept as it is", UserIDKey("u-001/x_y"), "id.u-001/x_y"},
		{"an id keeps its case", UserIDKey("AbC"), "id.AbC"},
		{"a backslash and a space are encoded", UserIDKey(`AD\j doe`), "id.AD=5Cj=20doe"},
		{"wildcards are encoded", UserIDKey("a*b>"), "id.a=2Ab=3E"},
		{"a leading dot is encoded", UserIDKey(".a"), "id.=2Ea"},
		{"a trailing dot is encoded", UserIDKey("a."), "id.a=2E"},
		{"a doubled dot is encoded", UserIDKey("a...b"), "id.a.=2E=2Eb"},
		{"a lone dot is encoded", UserIDKey("."), "id.=2E"},
		{"non-ascii bytes are encoded one by one", UserIDKey("é"), "id.=C3=A9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key != tt.want {
				t.Errorf("key = %q, want %q", tt.key, tt.want)
			}
			if !keyValidForTest(tt.key) {
				t.Errorf("key %q is not a valid NATS KV key", tt.key)
			}
			prefix, v, err := parseKey(tt.key)
			if err != nil {
				t.Fatalf("parseKey(%q) = %v", tt.key, err)
			}
			if got := EmailKey(v); prefix == emailPrefix && got != tt.key {
				t.Errorf("EmailKey(parseKey(%q)) = %q, want the same key", tt.key, got)
			}
			if got := UserIDKey(v); prefix == idPrefix && got != tt.key {
				t.Errorf("UserIDKey(parseKey(%q)) = %q, want the same key", tt.key, got)
			}
		})
	}
}

func TestParseKeyRefuses(t *testing.T) {
	for _, tt := range []struct{ name, key string }{
		{"a key of another kind", "lease.poller"},
		{"an empty value", "id."},
		{"a truncated escape", "email.a=4"},
		{"an escape that is not hex", "email.a=ZZ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if p, v, err := parseKey(tt.key); err == nil {
				t.Errorf("parseKey(%q) = %q, %q, want an error", tt.key, p, v)
			}
		})
	}
}

// FuzzKeys checks that both encodings give valid NATS KV keys and decode
// back to what was encoded.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"doer@example.com", "A+b@X.org", "AD\\jdoe", ".", "a..b.", "=", "é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		for _, tt := range []struct {
			key, prefix, want string
		}{
			{UserIDKey(s), idPrefix, s},
			{EmailKey(s), emailPrefix, strings.ToLower(s)},
		} {
			if !keyValidForTest(tt.key) {
				t.Fatalf("key %q of %q is not a valid NATS KV key", tt.key, s)
			}
			prefix, v, err := parseKey(tt.key)
			if err != nil || prefix != tt.prefix || v != tt.want {
				t.Fatalf("parseKey(%q) = %q, %q, %v, want %q, %q", tt.key, prefix, v, err, tt.prefix, tt.want)
			}
		}
	})
}
