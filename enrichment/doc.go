// Package enrichment owns the caller's behavioural IT profile: where it
// comes from and what it means for the agent serving the caller.
//
// A profile is looked up by a [Chain] of [Source]s, tried in order under a
// per-source timeout, behind a [Cache] (TTL, negative TTL, bounded, and
// invalidated per email and id by the directory's watch). [Build] makes
// the whole machinery from the profiles config: the directory, the
// ServiceNow sys_user field source ([UserField]), the HTTP lookup source
// ([HTTPSource]), the chain, the survey recorder ([Surveys]: POST /surveys
// and <prefix>.surveys, answers mapped with a [Scale]) and the
// familiar-people memory ([Familiar]). The [Directory] source mirrors a NATS KV bucket in
// memory (keys from [EmailKey] and [UserIDKey], values written by [Import]
// or [Seed] from a file read by [ParseFile]), so a lookup is a map read and
// an update to the bucket is seen without a restart; [Static] serves the
// same file without NATS. Survey scores (competence and attitude) are
// mapped onto the four profiles by a [Quadrant].
//
// [DefaultHints] are the built-in hints per profile (communication style,
// channels, what to do and avoid, status-update cadence, virtual-agent
// behaviour), written from the domain in DESIGN.md §1; [Hints] applies the
// configured overrides on top.
//
// This package does not route: choosing the tier, channel and priority, and
// adding rule hints, belongs to package routing. It does not provision the
// KV bucket either; internal/bus does.
package enrichment
