package servicenow

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deskrelay/deskrelay/connectors"
)

// sysIDRE matches a sys_id: 32 lower-case hex digits. Only such ids go
// into a sys_user URL, so a webhook's caller id cannot choose the path.
var sysIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// user is what a sys_user lookup found. A user that does not exist (or
// that the API user may not read) is cached as an empty user, so it is not
// asked for again before the TTL ends.
type user struct {
	email, name string
}

// callers looks callers' emails up in sys_user and caches them: a bounded
// LRU with a TTL. It is safe for concurrent use.
type callers struct {
	client *connectors.APIClient
	ttl    time.Duration
	max    int
	now    func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = most recently used
	items map[string]*list.Element
}

type cacheEntry struct {
	id      string
	u       user
	expires time.Time
}

func newCallers(c *connectors.APIClient, ttl time.Duration, max int, now func() time.Time) *callers {
	if now == nil {
		now = time.Now
	}
	return &callers{client: c, ttl: ttl, max: max, now: now, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the user with sys_id id, from the cache or from GET
// /api/now/table/sys_user/<id>. A 403 or 404 gives an empty user (cached);
// other failures are returned and not cached.
func (c *callers) get(ctx context.Context, id string) (user, error) {
	if !sysIDRE.MatchString(id) {
		return user{}, nil
	}
	c.mu.Lock()
	if el, ok := c.items[id]; ok {
		e := el.Value.(*cacheEntry)
		if c.now().Before(e.expires) {
			c.ll.MoveToFront(el)
			c.mu.Unlock()
			return e.u, nil
		}
		c.ll.Remove(el)
		delete(c.items, id)
	}
	c.mu.Unlock()

	q := url.Values{
		"sysparm_fields":                 {"sys_id,email,name"},
		"sysparm_exclude_reference_link": {"true"},
	}
	var u user
	_, body, err := c.client.Get(ctx, "/api/now/table/sys_user/"+id, q)
	switch {
	case connectors.IsVendorStatus(err, http.StatusForbidden, http.StatusNotFound):
		// ACL-hidden or deleted: remember that there is nothing to find.
	case err != nil:
		return user{}, fmt.Errorf("servicenow: look up caller %s: %w", id, err)
	default:
		r := gjson.GetBytes(body, "result")
		u = user{email: r.Get("email").String(), name: r.Get("name").String()}
	}
	c.put(id, u)
	return u, nil
}

func (c *callers) put(id string, u user) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.ll.Remove(el)
	}
	c.items[id] = c.ll.PushFront(&cacheEntry{id: id, u: u, expires: c.now().Add(c.ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).id)
	}
}

// len returns the number of cached entries.
func (c *callers) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
