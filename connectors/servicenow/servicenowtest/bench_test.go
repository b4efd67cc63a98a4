package servicenowtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deskrelay/deskrelay/config"
)

// BenchmarkBacklogDrain drains a 10,000-incident backlog from the fake
// ServiceNow into a real in-process JetStream through the PollRunner, with
// real waits: when rate-limited, every 10th table request is answered 429
// with Retry-After 0 or 1 (alternating) and the X-RateLimit-* headers,
// which the API client honours. Each iteration is a new source (its own
// cursor), checked to store exactly 10,000 tickets. Reported: tickets/s,
// table requests and 429 answers per drain.
//
//	go test -run '^$' -bench BacklogDrain -benchtime 1x ./connectors/servicenow/servicenowtest
func BenchmarkBacklogDrain(b *testing.B) {
	const n = 10000
	for _, bc := range []struct {
		page    int
		limited bool
	}{{100, true}, {1000, true}, {1000, false}} {
		name := fmt.Sprintf("page=%d/ratelimit=%v", bc.page, bc.limited)
		b.Run(name, func(b *testing.B) {
			e := newNATS(b)
			f := newFake(b)
			f.Add(genRecords(n, 13, start, 99)...)
			if bc.limited {
				f.RateEvery = 10
				f.RetryAfter = func(k int64) string { return []string{"0", "1"}[(k/10)%2] }
			}
			iter := 0
			var requests, limited int64
			for b.Loop() {
				iter++
				before := e.ingestCount(b)
				reqs, lim := f.Table.Load(), f.Limited.Load()
				src := source(b, f.URL(), func(c *config.Connector) {
					c.Poll.PageSize = bc.page
					c.API.MaxRetries = 10
					c.API.RetryWaitMax = 2 * time.Second // Retry-After: 1 is waited out inside the call
				})
				src.Name = fmt.Sprintf("snow%d", iter)
				r := e.runner(b, src.Name, "a", mustPoller(b, src), e.b, nil)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- r.Run(ctx) }()
				waitFor(b, 5*time.Minute, "backlog drained", func() (bool, string) {
					c := e.ingestCount(b) - before
					return c >= n, fmt.Sprintf("%d stored", c)
				})
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if c := e.ingestCount(b) - before; c != n {
					b.Fatalf("drain stored %d tickets, want %d", c, n)
				}
				requests += f.Table.Load() - reqs
				limited += f.Limited.Load() - lim
			}
			b.ReportMetric(float64(n*iter)/b.Elapsed().Seconds(), "tickets/s")
			b.ReportMetric(float64(requests)/float64(iter), "requests/drain")
			b.ReportMetric(float64(limited)/float64(iter), "429s/drain")
		})
	}
}
