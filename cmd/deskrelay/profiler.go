package main

import (
	"context"
	"maps"

	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/enrichment/infer"
	"github.com/deskrelay/deskrelay/routing"
	"github.com/deskrelay/deskrelay/ticket"
)

// profiler is the pipeline's Enricher: it remembers who resolves each
// caller's tickets, looks the caller up through the chain (inference, if
// configured, sees the ticket through the context), attaches who helped
// the caller before, and counts how well profiles are known.
type profiler struct {
	chain    *enrichment.Chain
	familiar *enrichment.Familiar // nil when profiles.familiar is off
	m        *enrichment.Metrics
	log      *zap.Logger
}

func (p profiler) Lookup(ctx context.Context, t *ticket.Ticket) (ticket.Profile, error) {
	if err := p.familiar.Remember(ctx, *t); err != nil {
		p.log.Warn("familiar people not remembered", zap.String("ticket_id", t.ID), zap.Error(err))
	}
	prof, err := p.chain.Lookup(infer.ContextWithTicket(ctx, t), t.Caller)
	if err != nil {
		return prof, err
	}
	if known, ok := p.familiar.Lookup(t.Caller); ok {
		prof.FamiliarGroup, prof.FamiliarAgent = known.Group, known.Agent
	}
	p.m.Cover(prof)
	return prof, nil
}

// familiarRouter routes with the rule tree, then adds the familiar-people
// hints for the profiles that value them.
type familiarRouter struct {
	tree     *routing.Tree
	familiar *enrichment.Familiar
}

func (r familiarRouter) Route(t *ticket.Ticket, p *ticket.Profile) (ticket.Routing, error) {
	d, err := r.tree.Route(t, p)
	if err != nil {
		return d, err
	}
	if h := r.familiar.Hints(t.Caller, *p); len(h) > 0 {
		if d.Hints.Extra == nil {
			d.Hints.Extra = make(map[string]string, len(h))
		}
		maps.Copy(d.Hints.Extra, h)
	}
	return d, nil
}
