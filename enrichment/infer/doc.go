// Package infer estimates a caller's behavioural IT profile from the words
// of a ticket and the caller's recent tickets, for callers no directory,
// ITSM field, lookup API or survey knows.
//
// An [Inferrer] scores two axes, competence and attitude, from signals it
// finds in one pass over the text with precompiled vocabularies: technical
// vocabulary, error codes and "I already tried X" statements raise
// competence; uncertainty ("not sure what I did") lowers it; the channel,
// self-service use and requests for steps raise attitude (fix it myself);
// requests for someone to do it, "no time" and phone or walk-in contact
// lower it. Earlier tickets of the caller, from a [History], add their
// signals at a lower weight. The two scores are mapped onto the quadrant of
// DESIGN.md §1 with a confidence; below the minimum confidence the profile
// stays unknown, with the scores attached. Every profile it returns has
// Source [SourceName].
//
// As an enrichment.Source it is meant to be the last of the chain: the
// chain asks it only when every directory source missed, so it never
// overrides a known profile. The chain passes a caller, not a ticket; the
// ticket reaches [Inferrer.Lookup] through the context ([ContextWithTicket]).
//
// The rules are hand-written and were tuned on half of a labelled set
// (testdata/labelled.jsonl); the other half measures them. docs/inference.md
// describes the signals, the evaluation and its limits.
//
// This package does not store history durably and does not decide routing.
package infer
