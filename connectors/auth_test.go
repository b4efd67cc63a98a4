package connectors

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
)

func TestAuthVerify(t *testing.T) {
	body, err := os.ReadFile("testdata/jira_webhook_issue_updated.json")
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Secret   string            `json:"secret"`
		Expected map[string]string `json:"expected_headers"`
	}
	raw, _ := os.ReadFile("testdata/jira_webhook_issue_updated.signature.json")
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	jira := config.Auth{Type: "hmac", Secret: config.NewSecret(vec.Secret), Header: "X-Hub-Signature", Prefix: "sha256="}
	bearer := config.Auth{Type: "bearer", Token: config.NewSecret("t0ken")}
	basic := config.Auth{Type: "basic", Username: "snow", Password: config.NewSecret("pw")}
	b64 := config.Auth{Type: "hmac", Secret: config.NewSecret("k"), Encoding: "base64"}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	basicHdr := func(u, p string) http.Header {
		r, _ := http.NewRequest("POST", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	tampered := append([]byte{}, body...)
	tampered[len(tampered)-2] ^= 1
	for _, tt := range []struct {
		name    string
		auth    config.Auth
		h       http.Header
		body    []byte
		wantErr string // "" = accepted
	}{
		{"the fixture's known-good Jira signature is accepted", jira, hdr("X-Hub-Signature", vec.Expected["X-Hub-Signature"]), body, ""},
		{"a tampered body is refused", jira, hdr("X-Hub-Signature", vec.Expected["X-Hub-Signature"]), tampered, "X-Hub-Signature signature does not match the body"},
		{"a missing signature header is refused", jira, hdr(), body, "missing X-Hub-Signature header"},
		{"a signature without the prefix is refused", jira, hdr("X-Hub-Signature", strings.TrimPrefix(vec.Expected["X-Hub-Signature"], "sha256=")), body, `does not start with "sha256="`},
		{"a base64 signature in the default header is accepted", b64, hdr("X-Deskrelay-Signature", SignHMAC([]byte("k"), body, "base64")), body, ""},
		{"a hex signature where base64 is configured is refused", b64, hdr("X-Deskrelay-Signature", SignHMAC([]byte("k"), body, "hex")), body, "does not match"},
		{"the right bearer token is accepted", bearer, hdr("Authorization", "Bearer t0ken"), body, ""},
		{"a wrong bearer token is refused", bearer, hdr("Authorization", "Bearer t0kem"), body, "bearer token does not match"},
		{"a missing bearer token is refused", bearer, hdr(), body, "missing Authorization: Bearer header"},
		{"the right shared header token is accepted", config.Auth{Type: "header", Header: "X-Deskrelay-Token", Token: config.NewSecret("s3")}, hdr("X-Deskrelay-Token", "s3"), body, ""},
		{"a wrong shared header token is refused", config.Auth{Type: "header", Header: "X-Deskrelay-Token", Token: config.NewSecret("s3")}, hdr("X-Deskrelay-Token", "s4"), body, "X-Deskrelay-Token does not match"},
		{"the right basic credentials are accepted", basic, basicHdr("snow", "pw"), body, ""},
		{"a wrong basic password is refused", basic, basicHdr("snow", "pW"), body, "user name or password does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuth("connectors.x.auth", tt.auth)
			if err != nil {
				t.Fatalf("NewAuth: %v", err)
			}
			err = a.Verify(tt.h, tt.body)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Verify = %v, want accepted", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Verify = %v, want error containing %q", err, tt.wantErr)
			case tt.wantErr != "" && !errors.Is(err, ErrUnauthorized):
				t.Errorf("Verify error %v does not wrap ErrUnauthorized", err)
			}
		})
	}
}

func TestNewAuthErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		auth config.Auth
		want string
	}{
		{"no type", config.Auth{}, "connectors.x.auth.type: is required: none, bearer, header, basic or hmac"},
		{"unknown type", config.Auth{Type: "jwt"}, `connectors.x.auth.type: "jwt" is not allowed; use none, bearer, header, basic or hmac`},
		{"header without a header name", config.Auth{Type: "header", Token: config.NewSecret("t")}, "connectors.x.auth.header: is required for header auth: the name of the header that carries the token, e.g. X-Deskrelay-Token"},
		{"bearer without token", config.Auth{Type: "bearer"}, "connectors.x.auth.token: is required for bearer auth (env:NAME or file:PATH)"},
		{"hmac with a bad encoding", config.Auth{Type: "hmac", Secret: config.NewSecret("s"), Encoding: "b32"}, `connectors.x.auth.encoding: "b32" is not allowed; use hex or base64`},
		{"basic without anything", config.Auth{Type: "basic"}, "connectors.x.auth.password: is required for basic auth (env:NAME or file:PATH)\nconnectors.x.auth.username: is required for basic auth"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAuth("connectors.x.auth", tt.auth)
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewAuth error =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func FuzzCheckHMAC(f *testing.F) {
	body, _ := os.ReadFile("testdata/jira_webhook_issue_updated.json")
	f.Add(body, "4b86fb5f6af6f1b89c5f6007caf25e075ec9e25806769d6cbe0985b6dadf1b94")
	f.Add([]byte("{}"), "not hex")
	f.Fuzz(func(t *testing.T, msg []byte, sig string) {
		key := []byte("deskrelay-jira-example-secret")
		if CheckHMAC(key, msg, sig, "hex") && sig != SignHMAC(key, msg, "hex") && !strings.EqualFold(strings.TrimSpace(sig), SignHMAC(key, msg, "hex")) {
			t.Fatalf("CheckHMAC accepted %q for a body whose signature is %s", sig, SignHMAC(key, msg, "hex"))
		}
	})
}

func TestAuthTimestamped(t *testing.T) {
	body, err := os.ReadFile("testdata/servicenow_outbound.json")
	if err != nil {
		t.Fatal(err)
	}
	const sig = "v1=/GtL81Xw/HohfEUtuwc+e3S8jGiUVUUM8K3iNr30v8I=" // from the fixture's .signature.json
	signedAt := time.Unix(1715595343, 0)
	cfg := config.Auth{Type: "hmac", Secret: config.NewSecret("deskrelay-servicenow-example-secret"),
		Encoding: "base64", Prefix: "v1=", TimestampHeader: "X-Deskrelay-Timestamp"}
	for _, tt := range []struct {
		name    string
		now     time.Time
		ts      string
		body    []byte
		wantErr string
	}{
		{"the fixture's signature at its own time is accepted", signedAt.Add(time.Minute), "1715595343", body, ""},
		{"a replay ten minutes later is refused", signedAt.Add(10 * time.Minute), "1715595343", body, "outside the 5m0s replay window"},
		{"a timestamp from the future is refused", signedAt.Add(-10 * time.Minute), "1715595343", body, "outside the 5m0s replay window"},
		{"a changed timestamp breaks the signature", signedAt, "1715595344", body, "signature does not match"},
		{"a missing timestamp is refused", signedAt, "", body, "missing X-Deskrelay-Timestamp header"},
		{"a garbled timestamp is refused", signedAt, "yesterday", body, "neither Unix seconds nor an RFC 3339 time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuth("connectors.snow.auth", cfg)
			if err != nil {
				t.Fatal(err)
			}
			a.now = func() time.Time { return tt.now }
			h := http.Header{}
			h.Set("X-Deskrelay-Signature", sig)
			if tt.ts != "" {
				h.Set("X-Deskrelay-Timestamp", tt.ts)
			}
			err = a.Verify(h, tt.body)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Verify = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignIsAcceptedByVerify(t *testing.T) {
	body := []byte(`{"id":"1","title":"t"}`)
	now := time.Now()
	for _, c := range []config.Auth{
		{Type: "bearer", Token: config.NewSecret("tok")},
		{Type: "basic", Username: "u", Password: config.NewSecret("p")},
		{Type: "header", Header: "X-Token", Token: config.NewSecret("t")},
		{Type: "hmac", Secret: config.NewSecret("k")},
		{Type: "hmac", Secret: config.NewSecret("k"), Encoding: "base64", Prefix: "v1=", TimestampHeader: "X-Ts"},
	} {
		t.Run(c.Type+c.TimestampHeader, func(t *testing.T) {
			a, err := NewAuth("connectors.x.auth", c)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Verify(a.Sign(body, now), body); err != nil {
				t.Errorf("Verify(Sign(body)) = %v", err)
			}
			if err := a.Verify(a.Sign(body, now), append(body, ' ')); c.Type == "hmac" && err == nil {
				t.Error("Verify accepted a signature for another body")
			}
		})
	}
}
