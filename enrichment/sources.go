package enrichment

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/connectors"
	"github.com/deskrelay/deskrelay/ticket"
)

// reading turns the values a source found (a profile name, or two scores
// as text) into a profile. It is shared by [UserField] and [HTTPSource].
type reading struct {
	source string
	scale  Scale
	values map[string]string // lower-case source name → profile name
	log    *zap.Logger
}

// profile returns the profile for a name, or for two scores when name is
// empty. A value that is empty, unknown or out of scale is a miss, logged
// at warn level without the value's owner.
func (r *reading) profile(name, competence, attitude string, hasScores bool) (ticket.Profile, bool) {
	if !hasScores {
		n := strings.ToLower(strings.TrimSpace(name))
		if n == "" {
			return ticket.Profile{}, false
		}
		if v, ok := r.values[n]; ok {
			n = v
		}
		p, err := ticket.ParseProfileName(n)
		if err != nil || p == ticket.Unknown {
			r.log.Warn("profile source gave a value that is not a profile; add it to values", zap.String("profile_source", r.source), zap.String("value", truncate(n, 40)))
			return ticket.Profile{}, false
		}
		return ticket.Profile{Name: p, Source: r.source, Confidence: 1}, true
	}
	if strings.TrimSpace(competence) == "" || strings.TrimSpace(attitude) == "" {
		return ticket.Profile{}, false
	}
	c, err1 := strconv.ParseFloat(strings.TrimSpace(competence), 64)
	a, err2 := strconv.ParseFloat(strings.TrimSpace(attitude), 64)
	if err1 != nil || err2 != nil {
		r.log.Warn("profile source gave scores that are not numbers", zap.String("profile_source", r.source))
		return ticket.Profile{}, false
	}
	p, cn, an, err := r.scale.Classify(c, a)
	if err != nil {
		r.log.Warn("profile source gave scores outside its scale", zap.String("profile_source", r.source), zap.Error(err))
		return ticket.Profile{}, false
	}
	return ticket.Profile{Name: p, Source: r.source, Confidence: 1, Competence: &cn, Attitude: &an}, true
}

// sysIDRE matches a ServiceNow sys_id: only such ids go into a URL path.
var sysIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// UserField is the [Source] that reads the caller's profile from a field
// of their ServiceNow sys_user record (a custom u_it_profile, say), or
// from two score fields: by sys_id when the caller id is one, else by
// email. It is safe for concurrent use.
type UserField struct {
	r       reading
	client  *connectors.APIClient
	fields  [3]string // profile, competence, attitude; "" when unused
	timeout time.Duration
}

// Name returns the configured name.
func (u *UserField) Name() string { return u.r.source }

// Timeout returns the per-lookup timeout.
func (u *UserField) Timeout() time.Duration { return u.timeout }

// Lookup reads sys_user. A 403 or 404 for the sys_id falls back to the
// email; no record is a miss; other vendor errors are errors.
func (u *UserField) Lookup(ctx context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	fields := "sys_id"
	for _, f := range u.fields {
		if f != "" {
			fields += "," + f
		}
	}
	q := url.Values{"sysparm_fields": {fields}, "sysparm_exclude_reference_link": {"true"}}
	if sysIDRE.MatchString(c.ID) {
		_, body, err := u.client.Get(ctx, "/api/now/table/sys_user/"+c.ID, q)
		switch {
		case connectors.IsVendorStatus(err, http.StatusNotFound, http.StatusForbidden):
		case err != nil:
			return ticket.Profile{}, false, fmt.Errorf("servicenow sys_user by id: %w", err)
		default:
			if p, ok := u.read(gjson.GetBytes(body, "result")); ok {
				return p, true, nil
			}
		}
	}
	// '^' separates the terms of an encoded query; such an address
	// cannot be asked for safely.
	if c.Email == "" || strings.ContainsAny(c.Email, "^\r\n") {
		return ticket.Profile{}, false, nil
	}
	q.Set("sysparm_query", "email="+c.Email)
	q.Set("sysparm_limit", "1")
	_, body, err := u.client.Get(ctx, "/api/now/table/sys_user", q)
	if err != nil {
		return ticket.Profile{}, false, fmt.Errorf("servicenow sys_user by email: %w", err)
	}
	p, ok := u.read(gjson.GetBytes(body, "result.0"))
	return p, ok, nil
}

func (u *UserField) read(rec gjson.Result) (ticket.Profile, bool) {
	if !rec.IsObject() {
		return ticket.Profile{}, false
	}
	if u.fields[0] != "" {
		return u.r.profile(rec.Get(gjson.Escape(u.fields[0])).String(), "", "", false)
	}
	return u.r.profile("", rec.Get(gjson.Escape(u.fields[1])).String(), rec.Get(gjson.Escape(u.fields[2])).String(), true)
}

// HTTPSource is the [Source] that asks a lookup API: GET on a URL
// template with {email} and/or {id}, then gjson paths to the profile name
// or to two scores. A 404 or a missing value is a miss. It is safe for
// concurrent use.
type HTTPSource struct {
	r       reading
	client  *connectors.APIClient
	tmpl    string
	paths   [3]string // profile, competence, attitude
	timeout time.Duration
}

// Name returns the configured name.
func (h *HTTPSource) Name() string { return h.r.source }

// Timeout returns the per-lookup timeout.
func (h *HTTPSource) Timeout() time.Duration { return h.timeout }

// Lookup asks the API. A caller without a value for every placeholder of
// the template is a miss.
func (h *HTTPSource) Lookup(ctx context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	u, ok := expandURL(h.tmpl, c)
	if !ok {
		return ticket.Profile{}, false, nil
	}
	_, body, err := h.client.GetURL(ctx, u)
	switch {
	case connectors.IsVendorStatus(err, http.StatusNotFound):
		return ticket.Profile{}, false, nil
	case err != nil:
		return ticket.Profile{}, false, fmt.Errorf("lookup api: %w", err)
	}
	if h.paths[0] != "" {
		p, ok := h.r.profile(gjson.GetBytes(body, h.paths[0]).String(), "", "", false)
		return p, ok, nil
	}
	p, ok := h.r.profile("", gjson.GetBytes(body, h.paths[1]).String(), gjson.GetBytes(body, h.paths[2]).String(), true)
	return p, ok, nil
}

// expandURL fills {email} (lower-cased) and {id} into tmpl, escaped for
// the query after a '?' and for a path segment before it. ok is false when
// the caller lacks a value the template needs.
func expandURL(tmpl string, c ticket.Caller) (string, bool) {
	q := strings.IndexByte(tmpl, '?')
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		var v string
		var n int
		switch {
		case strings.HasPrefix(tmpl[i:], "{email}"):
			v, n = strings.ToLower(c.Email), len("{email}")
		case strings.HasPrefix(tmpl[i:], "{id}"):
			v, n = c.ID, len("{id}")
		default:
			b.WriteByte(tmpl[i])
			i++
			continue
		}
		if v == "" {
			return "", false
		}
		if q >= 0 && i > q {
			b.WriteString(url.QueryEscape(v))
		} else {
			b.WriteString(url.PathEscape(v))
		}
		i += n
	}
	return b.String(), true
}
