package freshservice

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/internal/fixture"
)

// FuzzNormalize: any body either becomes a valid ticket with a numeric id
// and the body as Raw, or an input error; never a panic or another error.
func FuzzNormalize(f *testing.F) {
	for _, name := range []string{"webhook_workflow_automator.json", "webhook_numeric_codes.json", "webhook_workflow_automator_template.json"} {
		f.Add(fixture.Read(f, "testdata", name))
	}
	for _, page := range []string{"tickets_list_page1.json", "tickets_list_page2.json"} {
		for _, rec := range gjson.GetBytes(fixture.Read(f, "testdata", page), "tickets").Array() {
			f.Add([]byte(rec.Raw))
		}
	}
	f.Add([]byte(`{"ticket":{"id":"#INC-1","subject":"x","priority":"4","tags":"a,b"}}`))
	f.Add([]byte(`{"ticket":{"id":1e3,"subject":"x"}}`))
	w := testWebhook(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		tk, err := w.Normalize(t.Context(), nil, body)
		if err != nil {
			if _, ok := errors.AsType[*connectors.InputError](err); !ok {
				t.Fatalf("Normalize returned a non-input error: %v", err)
			}
			return
		}
		tk.Source = "freshservice"
		if err := tk.Validate(); err != nil {
			t.Fatalf("accepted a ticket that does not validate: %v\n%s", err, body)
		}
		if !allDigits(tk.ID) {
			t.Fatalf("accepted a non-numeric id %q", tk.ID)
		}
		if !bytes.Equal(tk.Raw, body) {
			t.Fatalf("Raw is not the body")
		}
	})
}

// FuzzWebhookAuth: whatever the headers and body, the auth block accepts
// a request only with the exact bearer token, or an HMAC that matches the
// body; a body changed after signing is always refused.
func FuzzWebhookAuth(f *testing.F) {
	body := fixture.Read(f, "testdata", "webhook_workflow_automator.json")
	token := fixture.Header(f, "testdata", "webhook_workflow_automator.headers").Get("X-Deskrelay-Token")
	bearer, err := connectors.NewAuth("a", config.Auth{Type: "bearer", Token: config.NewSecret(token)})
	if err != nil {
		f.Fatal(err)
	}
	hm, err := connectors.NewAuth("a", config.Auth{Type: "hmac", Secret: config.NewSecret(token), Prefix: "sha256="})
	if err != nil {
		f.Fatal(err)
	}
	good := hm.Sign(body, time.Time{}).Get(config.DefaultAuthHeader)
	f.Add("Bearer "+token, good, body)
	f.Add("bearer "+token+" ", "sha256="+strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body)
	f.Add("Basic "+token, "sha256=", []byte{})
	f.Add("", good, append(bytes.Clone(body), ' '))
	f.Fuzz(func(t *testing.T, authz, sig string, b []byte) {
		h := http.Header{}
		h.Set("Authorization", authz)
		h.Set(config.DefaultAuthHeader, sig)
		if bearer.Verify(h, b) == nil {
			if _, got, ok := strings.Cut(strings.TrimSpace(authz), " "); !ok || strings.TrimSpace(got) != token {
				t.Fatalf("bearer auth accepted Authorization %q", authz)
			}
		}
		want := strings.TrimPrefix(hm.Sign(b, time.Time{}).Get(config.DefaultAuthHeader), "sha256=")
		if hm.Verify(h, b) == nil {
			got, ok := strings.CutPrefix(sig, "sha256=")
			if !ok || !strings.EqualFold(strings.TrimSpace(got), want) {
				t.Fatalf("hmac auth accepted %q for a body whose HMAC is %s", sig, want)
			}
			if hm.Verify(h, append(bytes.Clone(b), 'x')) == nil {
				t.Fatal("hmac auth accepted a tampered body")
			}
		}
	})
}

// FuzzNextPage: the Link parser never panics, and finds a next page only
// in a header that says next.
func FuzzNextPage(f *testing.F) {
	f.Add(`<https://example.freshservice.com/api/v2/tickets?updated_since=2024-05-13T10%3A00%3A00Z&per_page=2&page=2>; rel="next"`)
	f.Add(`<a>; rel=prev, <b?page=3>; rel="last next"`)
	f.Add(`<<>>;;rel=;,`)
	f.Fuzz(func(t *testing.T, link string) {
		h := http.Header{"Link": {link}}
		if _, ok := nextPage(h); ok && !strings.Contains(strings.ToLower(link), "next") {
			t.Fatalf("nextPage(%q) found a next page", link)
		}
	})
}
