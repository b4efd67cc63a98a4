package jsm

import (
	"errors"
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
)

func FuzzNormalize(f *testing.F) {
	for _, name := range []string{"webhook_issue_created.json", "webhook_issue_updated.json"} {
		f.Add(fixture.Read(f, "testdata", name))
	}
	f.Add([]byte(`{"issue":{"id":"1","fields":{"summary":"x","description":` + string(fixture.Read(f, "testdata", "description_adf.json")) + `}}}`))
	f.Add([]byte(`{"webhookEvent":"jira:issue_deleted","timestamp":1715595342489,"issue":{"id":1,"fields":{"summary":"x"}}}`))
	f.Add([]byte(`{"issue":{"id":"1","fields":{"summary":"x","customfield_10004":[{"value":"Minor / Localized"}]}},"comment":{"body":"hi"}}`))
	wh := buildWebhook(f, siteOptions())
	wh.log = zap.NewNop() // the fuzz target may not log through f
	f.Fuzz(func(t *testing.T, body []byte) {
		tk, err := wh.Normalize(t.Context(), nil, body)
		if err != nil {
			var ie *connectors.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Normalize returned a non-input error %v", err)
			}
			return
		}
		tk.Source = "jira"
		if tk.ID == "" || tk.Title == "" {
			t.Fatalf("accepted an issue without id or summary: %+v", tk)
		}
		if err := tk.Validate(); err != nil {
			t.Fatalf("accepted a ticket that does not validate: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := fixture.Read(f, "testdata", "webhook_issue_created.json")
	sig := fixture.Header(f, "testdata", "webhook_issue_created.headers").Get(HeaderSignature)
	f.Add(body, sig)
	f.Add(body, "sha256=")
	f.Add([]byte("{}"), "SHA256="+sig[len("sha256="):])
	f.Add([]byte(""), "sha1=00")
	wh := buildWebhook(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := http.Header{}
		h.Set(HeaderSignature, sig)
		err := wh.Verify(h, body)
		want := "sha256=" + connectors.SignHMAC([]byte(fixtureSecret), body, "hex")
		switch {
		case err == nil && !equalFoldASCII(sig, want):
			t.Fatalf("accepted signature %q for a body whose signature is %q", sig, want)
		case err != nil && !errors.Is(err, connectors.ErrUnauthorized):
			t.Fatalf("Verify error %v does not wrap ErrUnauthorized", err)
		case err != nil && sig == want:
			t.Fatalf("refused the correct signature: %v", err)
		}
	})
}

// equalFoldASCII: method and hex digits are case-insensitive.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func FuzzRichText(f *testing.F) {
	f.Add(fixture.Read(f, "testdata", "description_adf.json"))
	f.Add([]byte(`"wiki *markup*"`))
	f.Add([]byte(`{"type":"doc","content":[{"type":"orderedList","attrs":{"order":-5},"content":[{"type":"listItem"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = richText(b) // must not panic, whatever the nesting
	})
}
