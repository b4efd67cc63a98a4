package infer

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/deskrelay/deskrelay/ticket"
)

// Memory is a bounded in-memory [History] and [Recorder]: it keeps the
// last perCaller tickets of each of the last callers callers it was given,
// forgetting the caller least recently recorded or read first. A ticket
// recorded again (an update) replaces its earlier version in place. It
// keeps only what inference reads (id, channel, title, description up to
// 8 KiB, tags), not the raw payload. It is safe for concurrent use; its
// contents are lost on restart.
type Memory struct {
	mu        sync.Mutex
	callers   int
	perCaller int
	byKey     map[string]*list.Element // of *memoryEntry
	lru       list.List                // front = most recently used
}

type memoryEntry struct {
	key     string
	tickets []ticket.Ticket // oldest first
}

// NewMemory returns an empty history of at most callers callers with at
// most perCaller tickets each; both must be positive, or the error wraps
// [ErrInvalidOption].
func NewMemory(callers, perCaller int) (*Memory, error) {
	if callers <= 0 || perCaller <= 0 {
		return nil, fmt.Errorf("%w: history bounds must be > 0, got %d callers of %d tickets", ErrInvalidOption, callers, perCaller)
	}
	return &Memory{callers: callers, perCaller: perCaller, byKey: make(map[string]*list.Element)}, nil
}

// callerKey is the caller's id, else the lower-cased email, else "".
func callerKey(c ticket.Caller) string {
	switch {
	case c.ID != "":
		return "id:" + c.ID
	case c.Email != "":
		return "email:" + strings.ToLower(c.Email)
	}
	return ""
}

// Recent returns a copy of the caller's tickets, oldest first; nil for a
// caller it does not know. It never fails.
func (m *Memory) Recent(_ context.Context, c ticket.Caller) ([]ticket.Ticket, error) {
	key := callerKey(c)
	if key == "" {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byKey[key]
	if !ok {
		return nil, nil
	}
	m.lru.MoveToFront(el)
	return append([]ticket.Ticket(nil), el.Value.(*memoryEntry).tickets...), nil
}

// Record adds t to its caller's tickets; a ticket without a caller id or
// email is ignored.
func (m *Memory) Record(t ticket.Ticket) {
	key := callerKey(t.Caller)
	if key == "" {
		return
	}
	if len(t.Description) > maxText {
		t.Description = t.Description[:maxText]
	}
	kept := ticket.Ticket{ID: t.ID, Source: t.Source, Channel: t.Channel, Title: t.Title, Description: t.Description, Tags: slices.Clone(t.Tags)}
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byKey[key]
	if !ok {
		el = m.lru.PushFront(&memoryEntry{key: key})
		m.byKey[key] = el
		if m.lru.Len() > m.callers {
			old := m.lru.Back()
			m.lru.Remove(old)
			delete(m.byKey, old.Value.(*memoryEntry).key)
		}
	}
	m.lru.MoveToFront(el)
	e := el.Value.(*memoryEntry)
	for i := range e.tickets {
		if e.tickets[i].ID == kept.ID && e.tickets[i].Source == kept.Source {
			e.tickets[i] = kept
			return
		}
	}
	if len(e.tickets) == m.perCaller {
		copy(e.tickets, e.tickets[1:])
		e.tickets = e.tickets[:len(e.tickets)-1]
	}
	e.tickets = append(e.tickets, kept)
}

// Len returns the number of callers held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}
