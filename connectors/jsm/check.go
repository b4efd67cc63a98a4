package jsm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/deskrelay/deskrelay/connectors"
)

// MyselfPath returns the API user, with the profile time zone JQL dates
// are read in.
const MyselfPath = "/rest/api/3/myself"

// check is the Spec's Check: one search with the configured JQL (or, with
// no jql, GET /rest/api/3/myself) through [connectors.CheckAPI], which
// reports auth, permission, rate-limit headroom (X-RateLimit-Remaining of
// X-RateLimit-Limit) and clock skew; then, when the credentials work, the
// API user's profile time zone against time_zone, since JQL dates are read
// in it.
func check(ctx context.Context, src connectors.Source) ([]connectors.Finding, error) {
	set, errs, perrs := parseOptions(src)
	errs = append(errs, perrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	api, err := connectors.NewAPIClient(src, src.Metrics)
	if err != nil {
		return nil, err
	}
	path, q := MyselfPath, url.Values(nil)
	if set.jql != "" {
		path = SearchPath
		q = url.Values{"jql": {"(" + set.jql + ") ORDER BY updated DESC"}, "fields": {"updated"}, "maxResults": {"1"}}
	}
	fs := connectors.CheckAPI(ctx, api, path, q, "X-RateLimit-Remaining", "X-RateLimit-Limit")
	for _, f := range fs {
		if f.Name == "auth" && !f.OK || f.Name == "connection" {
			return fs, nil
		}
	}
	return append(fs, checkTimeZone(ctx, api, set.loc, time.Now())), nil
}

// checkTimeZone compares the API user's profile time zone with loc.
func checkTimeZone(ctx context.Context, api *connectors.APIClient, loc *time.Location, now time.Time) connectors.Finding {
	_, body, err := api.Get(ctx, MyselfPath, nil)
	if err != nil {
		return connectors.Finding{Name: "time zone", OK: false, Detail: fmt.Sprintf("cannot read the API user's time zone: %v", err)}
	}
	var me struct {
		TimeZone string `json:"timeZone"`
	}
	if json.Unmarshal(body, &me) != nil || me.TimeZone == "" {
		return connectors.Finding{Name: "time zone", OK: true, Detail: "the API user's profile shows no time zone; make sure time_zone matches it"}
	}
	user, err := time.LoadLocation(me.TimeZone)
	if err != nil {
		return connectors.Finding{Name: "time zone", OK: false, Detail: fmt.Sprintf("the API user's time zone %q is unknown here; set time_zone to it", me.TimeZone)}
	}
	// Zones agree when their offsets agree now and half a year on.
	for _, t := range []time.Time{now, now.AddDate(0, 6, 0)} {
		_, a := t.In(user).Zone()
		_, b := t.In(loc).Zone()
		if a != b {
			return connectors.Finding{Name: "time zone", OK: false, Detail: fmt.Sprintf(
				"the API user's Jira profile is in %s but time_zone is %s: JQL times would be off by %s; set time_zone: %s",
				me.TimeZone, loc, time.Duration(a-b)*time.Second, me.TimeZone)}
		}
	}
	return connectors.Finding{Name: "time zone", OK: true, Detail: fmt.Sprintf("JQL times are read in %s, as time_zone says", me.TimeZone)}
}
