package enrichment

import (
	"errors"
	"strings"
)

// Key prefixes in the profiles bucket.
const (
	emailPrefix = "email."
	idPrefix    = "id."
	// surveyPrefix and familiarPrefix hold per-caller histories:
	// "survey.email.<encoded>", "familiar.id.<encoded>", ….
	surveyPrefix   = "survey."
	familiarPrefix = "familiar."
)

// EmailKey returns the profiles-bucket key of an email address:
// "email." followed by the lower-cased address, encoded for a NATS KV key.
//
// NATS KV keys may hold only [-/_=.a-zA-Z0-9], and a '.' may not start or
// end a key or follow another '.'. The encoding keeps those bytes as they
// are and writes every other byte as '=' and two upper-case hex digits:
// '@' is "=40", '+' is "=2B", '=' itself is "=3D", and a '.' that would
// start, end or double a token is "=2E". Decoding replaces each "=XX" by
// its byte, so the key maps back to exactly one address:
//
//	EmailKey("Doer@Example.com") == "email.doer=40example.com"
//	UserIDKey("AD\\jdoe")          == "id.AD=5Cjdoe"
//
// An empty address gives "email.", which is not a valid key: check first.
func EmailKey(email string) string { return emailPrefix + encodeKey(strings.ToLower(email)) }

// UserIDKey returns the profiles-bucket key of a caller id: "id." followed
// by the id as given (ids are case-sensitive), encoded as for [EmailKey].
func UserIDKey(id string) string { return idPrefix + encodeKey(id) }

const hexDigits = "0123456789ABCDEF"

func keepByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	case b == '-', b == '/', b == '_':
		return true
	}
	return false
}

// encodeKey encodes s for the part of a key after the prefix; see EmailKey.
func encodeKey(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !keepByte(s[i]) && !plainDot(s, i) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepByte(c) || plainDot(s, i) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

// plainDot reports whether s[i] is a '.' that can stay as it is: not first,
// not last and not after another '.'.
func plainDot(s string, i int) bool {
	return s[i] == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.'
}

var errKey = errors.New("not a profiles key")

// decodeKey reverses encodeKey.
func decodeKey(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", errKey
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errKey
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseKey splits a profiles-bucket key into its kind (emailPrefix or
// idPrefix) and the decoded email or id.
func parseKey(key string) (prefix, value string, err error) {
	switch {
	case strings.HasPrefix(key, emailPrefix):
		prefix = emailPrefix
	case strings.HasPrefix(key, idPrefix):
		prefix = idPrefix
	default:
		return "", "", errKey
	}
	value, err = decodeKey(key[len(prefix):])
	if err != nil || value == "" {
		return "", "", errKey
	}
	return prefix, value, nil
}
