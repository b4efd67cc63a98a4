package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Finding is one line of `deskrelay connectors check`.
type Finding struct {
	Name   string // "auth", "permission", "rate limit", "clock skew", …
	OK     bool
	Detail string // plain words for an operator
}

// CheckAPI makes one GET of path with query through c and reports, in
// plain words, whether the credentials were accepted and the read
// permitted, the rate-limit headroom from the named headers (the first
// present is the remaining count, the second the limit), and the clock
// skew between this host and the vendor's Date header. Vendors' Check
// functions call it with a cheap read of theirs.
func CheckAPI(ctx context.Context, c *APIClient, path string, query url.Values, remainingHeader, limitHeader string) []Finding {
	start := time.Now()
	resp, _, err := c.Get(ctx, path, query)
	took := time.Since(start).Round(time.Millisecond)
	var out []Finding
	var ve *VendorError
	switch {
	case errors.As(err, &ve) && ve.Status == http.StatusUnauthorized:
		out = append(out, Finding{"auth", false, fmt.Sprintf("the vendor refused the credentials (401): check api.auth of this connector (%s)", ve.URL)})
	case errors.As(err, &ve) && ve.Status == http.StatusForbidden:
		out = append(out, Finding{"auth", true, "credentials accepted"},
			Finding{"permission", false, fmt.Sprintf("403: the API user may not read %s; grant it read access", ve.URL)})
	case errors.As(err, &ve):
		out = append(out, Finding{"api", false, fmt.Sprintf("%v; body starts: %s", ve, ve.Body)})
	case err != nil:
		return []Finding{{"connection", false, err.Error()}}
	default:
		out = append(out, Finding{"auth", true, "credentials accepted"},
			Finding{"permission", true, fmt.Sprintf("read %s in %s", path, took)})
	}
	if resp == nil {
		return out
	}
	rem, lim := resp.Header.Get(remainingHeader), resp.Header.Get(limitHeader)
	switch {
	case rem != "" && lim != "":
		out = append(out, Finding{"rate limit", true, fmt.Sprintf("%s of %s requests left in the current window", rem, lim)})
	case lim != "":
		out = append(out, Finding{"rate limit", true, fmt.Sprintf("limit %s (no remaining count given)", lim)})
	default:
		out = append(out, Finding{"rate limit", true, "the vendor sent no rate-limit headers for this user"})
	}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		skew := start.Add(took / 2).Sub(d).Round(time.Second)
		ok := skew < 30*time.Second && skew > -30*time.Second
		detail := fmt.Sprintf("this host is %s %s the vendor", abs(skew), aheadBehind(skew))
		if !ok {
			detail += "; fix NTP: signed webhooks with timestamps and poll windows depend on it"
		}
		out = append(out, Finding{"clock skew", ok, detail})
	}
	return out
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func aheadBehind(d time.Duration) string {
	if d < 0 {
		return "behind"
	}
	return "ahead of"
}

// FormatFindings renders findings for a terminal, one per line.
func FormatFindings(source string, fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		mark := "ok  "
		if !f.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s %s %-11s %s\n", mark, source, f.Name+":", f.Detail)
	}
	return b.String()
}
