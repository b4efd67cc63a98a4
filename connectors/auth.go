package connectors

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/deskrelay/deskrelay/config"
)

// Auth authenticates webhook requests of one source.
type Auth struct {
	kind     string
	token    []byte
	user     []byte
	password []byte
	secret   []byte
	header   string
	encoding string
	prefix   string
	tsHeader string
	window   time.Duration
	now      func() time.Time
}

// DefaultReplayWindow is how far a signed timestamp may be from now.
const DefaultReplayWindow = 5 * time.Minute

// NewAuth checks an auth block (at key path path) and returns its
// verifier. Types: none, bearer (Authorization: Bearer <token>), header (a
// shared token in a header of your choice, e.g. X-Deskrelay-Token), basic
// (Authorization: Basic …) and hmac (HMAC-SHA256 of the raw body, hex or
// base64, in a configurable header with an optional prefix such as
// "sha256="). An empty type is an error: a source without auth must say
// type: none.
func NewAuth(path string, c config.Auth) (*Auth, error) {
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(path+"."+key, format, args...))
	}
	a := &Auth{kind: c.Type}
	switch c.Type {
	case "none":
	case "bearer":
		if !c.Token.IsSet() {
			bad("token", "is required for bearer auth (env:NAME or file:PATH)")
		}
		a.token = []byte(c.Token.Reveal())
	case "header":
		if !c.Token.IsSet() {
			bad("token", "is required for header auth (env:NAME or file:PATH)")
		}
		if c.Header == "" {
			bad("header", "is required for header auth: the name of the header that carries the token, e.g. X-Deskrelay-Token")
		}
		a.token = []byte(c.Token.Reveal())
		a.header = textproto.CanonicalMIMEHeaderKey(c.Header)
	case "basic":
		if c.Username == "" {
			bad("username", "is required for basic auth")
		}
		if !c.Password.IsSet() {
			bad("password", "is required for basic auth (env:NAME or file:PATH)")
		}
		a.user, a.password = []byte(c.Username), []byte(c.Password.Reveal())
	case "hmac":
		if !c.Secret.IsSet() {
			bad("secret", "is required for hmac auth (env:NAME or file:PATH)")
		}
		a.secret = []byte(c.Secret.Reveal())
		a.header = textproto.CanonicalMIMEHeaderKey(c.Header)
		if a.header == "" {
			a.header = config.DefaultAuthHeader
		}
		a.encoding = c.Encoding
		if a.encoding == "" {
			a.encoding = "hex"
		}
		if a.encoding != "hex" && a.encoding != "base64" {
			bad("encoding", "%q is not allowed; use hex or base64", c.Encoding)
		}
		a.prefix = c.Prefix
		a.tsHeader = textproto.CanonicalMIMEHeaderKey(c.TimestampHeader)
		a.window = c.ReplayWindow
		if a.window == 0 {
			a.window = DefaultReplayWindow
		}
		if a.window < 0 {
			bad("replay_window", "must be positive, got %s", c.ReplayWindow)
		}
	case "":
		bad("type", "is required: none, bearer, header, basic or hmac")
	default:
		bad("type", "%q is not allowed; use none, bearer, header, basic or hmac", c.Type)
	}
	if c.Type != "hmac" && (c.Encoding != "" || c.Prefix != "" || c.Secret.IsSet() || c.TimestampHeader != "" || c.ReplayWindow != 0) {
		bad("type", "encoding, prefix, secret, timestamp_header and replay_window apply only to hmac auth, but type is %q", c.Type)
	}
	if c.Header != "" && c.Type != "hmac" && c.Type != "header" {
		bad("header", "applies only to hmac and header auth, but type is %q", c.Type)
	}
	a.now = time.Now
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// Verify checks the request's credentials over the raw body, in constant
// time. The error wraps [ErrUnauthorized] and says what was wrong without
// echoing any credential.
func (a *Auth) Verify(h http.Header, body []byte) error {
	switch a.kind {
	case "none":
		return nil
	case "bearer":
		scheme, got, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") { // the scheme is case-insensitive (RFC 9110)
			return fmt.Errorf("%w: missing Authorization: Bearer header", ErrUnauthorized)
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), a.token) != 1 {
			return fmt.Errorf("%w: bearer token does not match", ErrUnauthorized)
		}
	case "header":
		got := h.Get(a.header)
		if got == "" {
			return fmt.Errorf("%w: missing %s header", ErrUnauthorized, a.header)
		}
		if subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
			return fmt.Errorf("%w: %s does not match", ErrUnauthorized, a.header)
		}
	case "basic":
		r := http.Request{Header: h}
		u, p, ok := r.BasicAuth()
		if !ok {
			return fmt.Errorf("%w: missing Authorization: Basic header", ErrUnauthorized)
		}
		uok := subtle.ConstantTimeCompare([]byte(u), a.user)
		pok := subtle.ConstantTimeCompare([]byte(p), a.password)
		if uok&pok != 1 {
			return fmt.Errorf("%w: user name or password does not match", ErrUnauthorized)
		}
	case "hmac":
		got := h.Get(a.header)
		if got == "" {
			return fmt.Errorf("%w: missing %s header", ErrUnauthorized, a.header)
		}
		sig, ok := strings.CutPrefix(got, a.prefix)
		if !ok {
			return fmt.Errorf("%w: %s header does not start with %q", ErrUnauthorized, a.header, a.prefix)
		}
		msg := body
		if a.tsHeader != "" {
			ts := h.Get(a.tsHeader)
			if ts == "" {
				return fmt.Errorf("%w: missing %s header", ErrUnauthorized, a.tsHeader)
			}
			if err := CheckTimestamp(ts, a.now(), a.window); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrUnauthorized, a.tsHeader, err)
			}
			msg = make([]byte, 0, len(ts)+1+len(body))
			msg = append(append(append(msg, ts...), '.'), body...)
		}
		if !CheckHMAC(a.secret, msg, sig, a.encoding) {
			return fmt.Errorf("%w: %s signature does not match the body", ErrUnauthorized, a.header)
		}
	default:
		return fmt.Errorf("%w: auth type %q", ErrUnauthorized, a.kind)
	}
	return nil
}

// CheckTimestamp parses a signed timestamp (Unix seconds or RFC 3339) and
// checks that it lies within window of now, either way.
func CheckTimestamp(ts string, now time.Time, window time.Duration) error {
	var t time.Time
	if secs, err := strconv.ParseInt(ts, 10, 64); err == nil {
		t = time.Unix(secs, 0)
	} else if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return fmt.Errorf("%q is neither Unix seconds nor an RFC 3339 time", ts)
	}
	if d := now.Sub(t); d > window || d < -window {
		return fmt.Errorf("timestamp %s is %s away from now, outside the %s replay window", t.UTC().Format(time.RFC3339), d.Round(time.Second), window)
	}
	return nil
}

// CheckHMAC reports whether sig (hex or base64 per encoding) is the
// HMAC-SHA256 of msg under key, comparing in constant time.
func CheckHMAC(key, msg []byte, sig, encoding string) bool {
	var want []byte
	var err error
	switch encoding {
	case "hex":
		want, err = hex.DecodeString(strings.TrimSpace(sig))
	case "base64":
		want, err = base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	default:
		return false
	}
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return hmac.Equal(m.Sum(nil), want)
}

// SignHMAC returns the HMAC-SHA256 of msg under key in the given encoding;
// `deskrelay send` and tests use it to sign payloads.
func SignHMAC(key, msg []byte, encoding string) string {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	if encoding == "base64" {
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the headers that make Verify accept body at now: what a
// sender configured like this source would send. `deskrelay send` and
// tests use it.
func (a *Auth) Sign(body []byte, now time.Time) http.Header {
	h := http.Header{}
	switch a.kind {
	case "bearer":
		h.Set("Authorization", "Bearer "+string(a.token))
	case "header":
		h.Set(a.header, string(a.token))
	case "basic":
		r := http.Request{Header: h}
		r.SetBasicAuth(string(a.user), string(a.password))
	case "hmac":
		msg := body
		if a.tsHeader != "" {
			ts := strconv.FormatInt(now.Unix(), 10)
			h.Set(a.tsHeader, ts)
			msg = append(append([]byte(ts), '.'), body...)
		}
		h.Set(a.header, a.prefix+SignHMAC(a.secret, msg, a.encoding))
	}
	return h
}
