package enrichment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/ticket"
)

// SourceDirectory is the name of the [Directory] source and the Source of
// the profiles it returns.
const SourceDirectory = "directory"

// ErrNotSynced is returned by [Directory.Lookup] before the directory has
// loaded the bucket's current values.
var ErrNotSynced = errors.New("profile directory not synced yet")

// Directory is the [Source] backed by the profiles KV bucket. [Directory.Run]
// mirrors the whole bucket in memory through a watch, so a put, an import
// or a delete is seen without a restart and a lookup is a map read. Scores
// are classified with the quadrant when the value arrives.
//
// A Directory is safe for concurrent use; Run is called once.
type Directory struct {
	kv       jetstream.KeyValue
	q        Quadrant
	log      *zap.Logger
	synced   chan struct{}
	ready    atomic.Bool
	cache    *Cache
	familiar *Familiar
	nc       *nats.Conn // the bucket's connection, if given
	// loadStall is how long the initial load may go without an update
	// before the watch is started again (defaultLoadStall).
	loadStall time.Duration

	mu      sync.RWMutex
	byID    *profileStore
	byEmail *profileStore // lower-case email

	revMu sync.Mutex
	rev   uint64        // the last bucket revision applied
	revCh chan struct{} // closed and replaced when rev grows
}

// DirectoryOption configures [NewDirectory].
type DirectoryOption func(*Directory)

// WithInvalidation has the directory drop a caller from c whenever the
// bucket changes for their email or id, before the change is visible.
func WithInvalidation(c *Cache) DirectoryOption { return func(d *Directory) { d.cache = c } }

// WithFamiliar has the directory mirror the familiar-people history of
// the bucket into f.
func WithFamiliar(f *Familiar) DirectoryOption { return func(d *Directory) { d.familiar = f } }

// WithConnection has the directory follow the state of nc, the bucket's
// connection, and watch the bucket again from the last revision it applied
// as soon as nc reconnects. Without it a watch whose server restarted
// waits for its missed heartbeats (10 to 20s) before it resumes, and
// changes made in that time (a survey answer, an import) are not seen. A
// nil nc changes nothing.
func WithConnection(nc *nats.Conn) DirectoryOption { return func(d *Directory) { d.nc = nc } }

// NewDirectory returns a directory over kv that classifies scores with q.
// It reads nothing until [Directory.Run].
func NewDirectory(kv jetstream.KeyValue, q Quadrant, log *zap.Logger, opts ...DirectoryOption) *Directory {
	d := &Directory{
		kv:        kv,
		q:         q,
		log:       log.Named("enrichment.directory"),
		synced:    make(chan struct{}),
		loadStall: defaultLoadStall,
		revCh:     make(chan struct{}),
		byID:      newProfileStore(),
		byEmail:   newProfileStore(),
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Name returns "directory".
func (d *Directory) Name() string { return SourceDirectory }

// applied records that the watch delivered revision rev and wakes those
// waiting for it.
func (d *Directory) applied(rev uint64) {
	d.revMu.Lock()
	if rev > d.rev {
		d.rev = rev
		close(d.revCh)
		d.revCh = make(chan struct{})
	}
	d.revMu.Unlock()
}

// revision returns the last bucket revision applied.
func (d *Directory) revision() uint64 {
	d.revMu.Lock()
	defer d.revMu.Unlock()
	return d.rev
}

// WaitRevision returns once the directory has applied the bucket's
// revision rev (or a later one), or when ctx is done; at most a second.
func (d *Directory) WaitRevision(ctx context.Context, rev uint64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		d.revMu.Lock()
		cur, ch := d.rev, d.revCh
		d.revMu.Unlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("profile directory: revision %d not seen yet (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// Synced is closed once the values in the bucket when Run started have been
// loaded. Wait on it (and on Run's error) before taking work.
func (d *Directory) Synced() <-chan struct{} { return d.synced }

// Len returns how many keys (emails and ids) the directory holds.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byID.len() + d.byEmail.len()
}

// Run watches the bucket and keeps the directory up to date until ctx is
// done, then returns nil. It returns an error when the watch ends on its
// own (the bucket was deleted, the connection closed). Keys that are not
// profile keys and values that do not decode are logged by revision and
// left out; a bad value also removes the key's old one.
//
// A watch that cannot start (a busy or briefly unreachable server) is
// retried, and so is one whose initial load delivers nothing for the load
// stall time (5s): a server that went away while the load was under way
// leaves the client's watch waiting for its idle heartbeats for 10 to
// 20s, while the pipeline waits for [Directory.Synced]. With
// [WithConnection], a reconnect starts the watch again too. A watch
// started again resumes after the last revision applied.
func (d *Directory) Run(ctx context.Context) error {
	var reconnects chan nats.Status
	if d.nc != nil {
		// The connection is up before Run: every CONNECTED is a reconnect.
		reconnects = d.nc.StatusChanged(nats.CONNECTED)
		defer d.nc.RemoveStatusListener(reconnects)
	}
	for {
		w, err := d.watch(ctx, reconnects)
		if w == nil {
			return err
		}
		err = d.follow(ctx, w, reconnects)
		stopWatch(w)
		switch {
		case errors.Is(err, errLoadStalled):
			d.log.Warn("profile directory: the initial load stalled, watching the bucket again",
				zap.String("bucket", d.kv.Bucket()), zap.Duration("duration", d.loadStall), zap.Int("keys_loaded", d.Len()))
		case errors.Is(err, errReconnected):
			d.log.Info("profile directory: reconnected, watching the bucket again", zap.String("bucket", d.kv.Bucket()), zap.Uint64("after_revision", d.revision()))
		default:
			return err
		}
	}
}

// errReconnected ends [Directory.follow] when the connection came back.
var errReconnected = errors.New("reconnected")

// errLoadStalled ends [Directory.follow] when the initial load made no
// progress for the load stall time.
var errLoadStalled = errors.New("initial load stalled")

// defaultLoadStall is how long the initial load may go without a value
// before the watch is started again.
const defaultLoadStall = 5 * time.Second

// watch starts a watch of the whole bucket, from the revision after the
// last one applied if any. It retries until the watch starts (Lookup
// answers ErrNotSynced meanwhile, and the pipeline waits for Synced)
// rather than stop deskrelay, at once when the connection comes back; a
// reconnect before it starts is thus not reported again. It returns a nil
// watch and a nil error when ctx ends, and an error when the connection
// is closed or the bucket gone.
func (d *Directory) watch(ctx context.Context, reconnects <-chan nats.Status) (jetstream.KeyWatcher, error) {
	var opts []jetstream.WatchOpt
	if rev := d.revision(); rev > 0 {
		// Every change after rev, in order: the same end state as the
		// last value of each key, without loading them all again.
		opts = append(opts, jetstream.ResumeFromRevision(rev+1))
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		for len(reconnects) > 0 { // the watch about to start comes after them
			<-reconnects
		}
		w, err := d.kv.WatchAll(ctx, opts...)
		switch {
		case err == nil:
			d.log.Info("profile directory watching", zap.String("bucket", d.kv.Bucket()))
			return w, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrConnectionClosed),
			errors.Is(err, nats.ErrStreamNotFound), errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
			return nil, fmt.Errorf("profile directory: watch %s: %w", d.kv.Bucket(), err)
		}
		d.log.Warn("profile directory: cannot watch the bucket yet, retrying", zap.String("bucket", d.kv.Bucket()), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, nil
		case <-reconnects:
			wait = 50 * time.Millisecond // doubled to 100ms for the next failure
		case <-time.After(wait):
		}
	}
}

// follow applies the updates of w until ctx ends (nil), the watch closes
// (an error), a reconnect is reported on reconnects ([errReconnected]),
// or, before the directory first synced, no update came for the load
// stall time ([errLoadStalled]).
func (d *Directory) follow(ctx context.Context, w jetstream.KeyWatcher, reconnects <-chan nats.Status) error {
	var stall *time.Timer
	var stalled <-chan time.Time // nil once synced: an idle bucket is no stall
	if !d.ready.Load() {
		stall = time.NewTimer(d.loadStall)
		defer stall.Stop()
		stalled = stall.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stalled:
			return errLoadStalled
		case <-reconnects: // closed only by Run, after follow returned
			return errReconnected
		case e, ok := <-w.Updates():
			switch {
			case !ok && ctx.Err() != nil:
				return nil
			case !ok:
				return fmt.Errorf("profile directory: watch %s closed", d.kv.Bucket())
			case e == nil:
				stalled = nil
				if !d.ready.Load() {
					d.ready.Store(true)
					close(d.synced)
					d.log.Info("profile directory synced", zap.Int("keys", d.Len()))
				}
			default:
				d.apply(e)
				if stalled != nil {
					stall.Reset(d.loadStall)
				}
			}
		}
	}
}

// stopWatch stops w and drains its updates for a moment, so that the
// client's delivery callback, which may be blocked on a send, can finish.
func stopWatch(w jetstream.KeyWatcher) {
	_ = w.Stop() // fails only when already stopped
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timer.C:
			return
		}
	}
}

// apply records one change of the bucket.
func (d *Directory) apply(e jetstream.KeyValueEntry) {
	defer d.applied(e.Revision())
	key := e.Key()
	switch {
	case strings.HasPrefix(key, surveyPrefix): // history, read when written
		return
	case strings.HasPrefix(key, familiarPrefix):
		if d.familiar != nil {
			d.familiar.apply(e)
		}
		return
	}
	prefix, id, err := parseKey(key)
	if err != nil {
		d.log.Warn("ignoring key that is not a profile key", zap.Uint64("revision", e.Revision()))
		return
	}
	m := d.byID
	if prefix == emailPrefix {
		m, id = d.byEmail, strings.ToLower(id)
	}
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		d.mu.Lock()
		m.delete(id)
		d.mu.Unlock()
		d.invalidate(prefix, id)
		return
	}
	p, err := d.profile(e.Value())
	if err == nil && p.At.IsZero() {
		p.At = e.Created().UTC() // the write time, when the value does not say
	}
	if err != nil { // logged before the change is visible to lookups
		d.log.Warn("ignoring bad profile value", zap.Uint64("revision", e.Revision()), zap.Error(err))
	}
	d.mu.Lock()
	if err != nil {
		m.delete(id)
	} else {
		m.put(id, p)
	}
	d.mu.Unlock()
	d.invalidate(prefix, id)
}

// invalidate drops the cached profiles of a changed key.
func (d *Directory) invalidate(prefix, id string) {
	switch {
	case d.cache == nil:
	case prefix == emailPrefix:
		d.cache.InvalidateEmail(id)
	default:
		d.cache.InvalidateID(id)
	}
}

func (d *Directory) profile(data []byte) (ticket.Profile, error) {
	v, err := decodeValue(data)
	if err != nil {
		return ticket.Profile{}, err
	}
	if v.Competence != nil {
		p, err := d.q.profile(*v.Competence, *v.Attitude, SourceDirectory)
		p.At = v.UpdatedAt
		return p, err
	}
	p := ticket.Profile{Name: v.Profile, Source: SourceDirectory, Confidence: 1, At: v.UpdatedAt}
	if v.Origin == OriginSurvey {
		p.Source = SourceSurvey
		if s := v.Survey; s != nil {
			c, a := s.NormalizedCompetence, s.NormalizedAttitude
			p.Competence, p.Attitude = &c, &a
		}
	}
	return p, nil
}

// Lookup returns the caller's profile by id, else by lower-cased email. A
// profile from scores has Competence and Attitude normalised to 0…1; they
// point into the directory and must not be modified. Lookup does not block
// and does not allocate for an ASCII email. It returns [ErrNotSynced]
// before the initial load is done.
func (d *Directory) Lookup(_ context.Context, c ticket.Caller) (ticket.Profile, bool, error) {
	if !d.ready.Load() {
		return ticket.Profile{}, false, ErrNotSynced
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if c.ID != "" {
		if p, ok := d.byID.get(c.ID); ok {
			return p, true, nil
		}
	}
	if c.Email != "" {
		if p, ok := d.lookupEmail(c.Email); ok {
			return p, true, nil
		}
	}
	return ticket.Profile{}, false, nil
}

// lookupEmail finds email in byEmail, lower-casing an ASCII email in a
// stack buffer (a map index by string(bytes) does not allocate) and any
// other with strings.ToLower. The caller holds d.mu.
func (d *Directory) lookupEmail(email string) (ticket.Profile, bool) {
	var buf [maxEmailLen]byte
	if len(email) > len(buf) {
		return d.byEmail.get(strings.ToLower(email))
	}
	upper := false
	for i := 0; i < len(email); i++ {
		c := email[i]
		if c >= utf8.RuneSelf {
			return d.byEmail.get(strings.ToLower(email))
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return d.byEmail.get(email)
	}
	for i := 0; i < len(email); i++ {
		c := email[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	r, ok := d.byEmail.recs[string(buf[:len(email)])] // no allocation: indexed directly
	if !ok {
		return ticket.Profile{}, false
	}
	return d.byEmail.profile(r), true
}

// Local returns true: the directory answers from its in-memory mirror of
// the bucket (see [Local]).
func (d *Directory) Local() bool { return true }
