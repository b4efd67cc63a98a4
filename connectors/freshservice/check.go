package freshservice

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/deskrelay/deskrelay/connectors"
)

// check makes one cheap authenticated read, the first ticket of the list,
// and reports auth, permission, rate-limit headroom (X-RateLimit-Remaining
// of X-RateLimit-Total per minute) and clock skew.
func check(ctx context.Context, src connectors.Source) ([]connectors.Finding, error) {
	return checkWith(ctx, src, nil)
}

func checkWith(ctx context.Context, src connectors.Source, rt http.RoundTripper) ([]connectors.Finding, error) {
	o, err := decodeOptions(src)
	if err != nil {
		return nil, err
	}
	c, err := newAPIClient(src, rt)
	if err != nil {
		return nil, err
	}
	q := url.Values{"per_page": {"1"}}
	if o.workspaceID > 0 {
		q.Set("workspace_id", strconv.Itoa(o.workspaceID))
	}
	return connectors.CheckAPI(ctx, c, ticketsPath, q, "X-RateLimit-Remaining", "X-RateLimit-Total"), nil
}
