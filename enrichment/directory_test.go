package enrichment

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deskrelay/deskrelay/internal/bus/bustest"
	"github.com/deskrelay/deskrelay/internal/fixture"
	"github.com/deskrelay/deskrelay/ticket"
)

// startKV runs a JetStream server on a random loopback port and returns a
// fresh profiles bucket on it. Everything stops in t.Cleanup.
func startKV(t testing.TB) jetstream.KeyValue {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10s")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "profiles"})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return kv
}

// runDirectory runs d until the test ends, waits for its initial sync and
// checks that Run stops cleanly.
func runDirectory(t testing.TB, d *Directory) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run still running 10s after cancel")
		}
	})
	select {
	case <-d.Synced():
	case err := <-errc:
		t.Fatalf("Run = %v before the directory synced", err)
	case <-time.After(10 * time.Second):
		t.Fatal("directory not synced after 10s")
	}
}

// waitLookup polls d until the lookup of c gives want, for at most 10s, and
// reports what it last saw.
func waitLookup(t *testing.T, d *Directory, c ticket.Caller, want string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		last = lookupString(d, c)
		if last == want {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("Lookup(%+v) = %s after 10s, want %s", c, last, want)
		}
	}
}

// lookupString prints a lookup as "miss", "error: …" or "<name> c=… a=…".
func lookupString(d *Directory, c ticket.Caller) string {
	p, ok, err := d.Lookup(context.Background(), c)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case !ok:
		return "miss"
	case p.Source != SourceDirectory || p.Confidence != 1:
		return fmt.Sprintf("bad source %q confidence %v", p.Source, p.Confidence)
	case p.Competence != nil && p.Attitude != nil:
		return fmt.Sprintf("%s c=%g a=%g", p.Name, *p.Competence, *p.Attitude)
	}
	return string(p.Name)
}

func importFile(t *testing.T, kv jetstream.KeyValue, name string) int {
	t.Helper()
	entries, err := ParseFile(name, fixture.Read(t, "testdata", name), defaultQuadrant(t))
	if err != nil {
		t.Fatalf("ParseFile(%s) = %v", name, err)
	}
	n, err := Import(t.Context(), kv, entries, "file:"+name)
	if err != nil {
		t.Fatalf("Import(%s) = %d, %v", name, n, err)
	}
	return n
}

func TestDirectory(t *testing.T) {
	kv := startKV(t)
	if n := importFile(t, kv, "good.csv"); n != 10 {
		t.Fatalf("Import(good.csv) wrote %d keys, want 10 (4 people with email and id, 2 with one)", n)
	}
	d := NewDirectory(kv, defaultQuadrant(t), zaptest.NewLogger(t))
	if got := lookupString(d, ticket.Caller{ID: "u-001"}); got != "error: "+ErrNotSynced.Error() {
		t.Errorf("Lookup before Run = %s, want ErrNotSynced", got)
	}
	runDirectory(t, d)
	if n := d.Len(); n != 10 {
		t.Errorf("Len after sync = %d, want 10", n)
	}

	for _, tt := range []struct {
		name   string
		caller ticket.Caller
		want   string
	}{
		{"a caller is found by id", ticket.Caller{ID: "u-001"}, "doer"},
		{"a caller is found by email", ticket.Caller{Email: "doer@example.com"}, "doer"},
		{"an email is found whatever its case", ticket.Caller{Email: "PRIO@example.COM"}, "prioritizer"},
		{"the id wins over the email", ticket.Caller{ID: "u-005", Email: "doer@example.com"}, "supported c=0.1 a=0.1"},
		{"an unknown id falls back to the email", ticket.Caller{ID: "nobody", Email: "prio@example.com"}, "prioritizer"},
		{"ids are case-sensitive", ticket.Caller{ID: "U-001"}, "miss"},
		{"an id with bytes the key encodes is found", ticket.Caller{ID: `AD\trier`}, "trier c=0.3 a=0.7"},
		{"an email with a plus is found", ticket.Caller{Email: "trier+it@example.org"}, "trier c=0.3 a=0.7"},
		{"scores are classified and normalised", ticket.Caller{ID: "u-003"}, "trier c=0.2 a=0.8"},
		{"a stranger is a miss", ticket.Caller{ID: "u-999", Email: "who@example.com"}, "miss"},
		{"a caller without keys is a miss", ticket.Caller{Name: "Some One"}, "miss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := lookupString(d, tt.caller); got != tt.want {
				t.Errorf("Lookup(%+v) = %s, want %s", tt.caller, got, tt.want)
			}
		})
	}

	t.Run("a put is seen without a restart", func(t *testing.T) {
		if _, err := kv.Put(t.Context(), UserIDKey("u-new"), []byte(`{"profile":"trier"}`)); err != nil {
			t.Fatal(err)
		}
		waitLookup(t, d, ticket.Caller{ID: "u-new"}, "trier")
	})
	t.Run("an update replaces the old profile", func(t *testing.T) {
		if _, err := kv.Put(t.Context(), EmailKey("doer@example.com"), []byte(`{"competence":1,"attitude":9,"origin":"survey"}`)); err != nil {
			t.Fatal(err)
		}
		waitLookup(t, d, ticket.Caller{Email: "doer@example.com"}, "trier c=0.1 a=0.9")
	})
	t.Run("a non-ascii email is found whatever its case", func(t *testing.T) {
		if _, err := kv.Put(t.Context(), EmailKey("Émile@Example.com"), []byte(`{"profile":"supported"}`)); err != nil {
			t.Fatal(err)
		}
		waitLookup(t, d, ticket.Caller{Email: "ÉMILE@EXAMPLE.COM"}, "supported")
	})
	t.Run("a delete is seen", func(t *testing.T) {
		if err := kv.Delete(t.Context(), UserIDKey("u-new")); err != nil {
			t.Fatal(err)
		}
		waitLookup(t, d, ticket.Caller{ID: "u-new"}, "miss")
	})
	t.Run("a purge is seen", func(t *testing.T) {
		if err := kv.Purge(t.Context(), EmailKey("prio@example.com")); err != nil {
			t.Fatal(err)
		}
		waitLookup(t, d, ticket.Caller{Email: "prio@example.com"}, "miss")
	})
	t.Run("a re-import is seen", func(t *testing.T) {
		importFile(t, kv, "good.json")
		waitLookup(t, d, ticket.Caller{Email: "prio@example.com"}, "prioritizer")
		waitLookup(t, d, ticket.Caller{ID: "5"}, "supported c=0.1 a=0.1")
	})
}

func TestDirectoryBadValues(t *testing.T) {
	kv := startKV(t)
	ctx := t.Context()
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	put(UserIDKey("u-1"), `{"profile":"doer"}`)
	put(UserIDKey("u-2"), `{"profile":"doer"}`)
	put("lease.poller", `{"owner":"x"}`)
	core, logs := observer.New(zapcore.WarnLevel)
	d := NewDirectory(kv, defaultQuadrant(t), zap.New(core))
	runDirectory(t, d)
	if n := logs.FilterMessage("ignoring key that is not a profile key").Len(); n != 1 {
		t.Errorf("warnings for the foreign key = %d, want 1: %v", n, logs.All())
	}

	for i, tt := range []struct {
		name  string
		value string
	}{
		{"a value that is not JSON removes the profile", `doer`},
		{"an unknown profile name removes the profile", `{"profile":"wizard"}`},
		{"the unknown profile is not stored", `{"profile":"unknown"}`},
		{"a lone score removes the profile", `{"competence":3}`},
		{"scores beyond the scale remove the profile", `{"competence":30,"attitude":3}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("bad-%d@example.com", i)
			put(EmailKey(id), `{"profile":"doer"}`)
			waitLookup(t, d, ticket.Caller{Email: id}, "doer")
			before := logs.FilterMessage("ignoring bad profile value").Len()
			put(EmailKey(id), tt.value)
			waitLookup(t, d, ticket.Caller{Email: id}, "miss")
			if n := logs.FilterMessage("ignoring bad profile value").Len(); n != before+1 {
				t.Errorf("bad-value warnings = %d, want %d", n, before+1)
			}
		})
	}
	t.Run("no log line holds an email or an id", func(t *testing.T) {
		for _, e := range logs.All() {
			line := e.Message + fmt.Sprint(e.ContextMap())
			if strings.Contains(line, "example.com") || strings.Contains(line, "u-1") {
				t.Errorf("log %q holds caller data: %s", e.Message, line)
			}
		}
	})
}

func TestImportExport(t *testing.T) {
	kv := startKV(t)
	q := defaultQuadrant(t)
	entries, err := ParseFile("good.yaml", fixture.Read(t, "testdata", "good.yaml"), q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(t.Context(), kv, entries, "file:good.yaml"); err != nil {
		t.Fatal(err)
	}

	t.Run("the stored value carries the profile or the scores, and the origin", func(t *testing.T) {
		for _, tt := range []struct{ key, want string }{
			{EmailKey("doer@example.com"), `"profile":"doer"`},
			{UserIDKey("u-003"), `"competence":2,"attitude":8`},
		} {
			e, err := kv.Get(t.Context(), tt.key)
			if err != nil {
				t.Fatalf("Get(%s) = %v", tt.key, err)
			}
			if v := string(e.Value()); !strings.Contains(v, tt.want) || !strings.Contains(v, `"origin":"file:good.yaml"`) || !strings.Contains(v, `"updated_at":`) {
				t.Errorf("Get(%s) = %s, want %s with origin and updated_at", tt.key, v, tt.want)
			}
		}
	})

	t.Run("export gives one entry per key, sorted by key", func(t *testing.T) {
		got, err := Export(t.Context(), kv)
		if err != nil {
			t.Fatalf("Export = %v", err)
		}
		var lines []string
		for _, e := range got {
			lines = append(lines, entryString(e))
		}
		want := []string{
			`email="both@example.com" id="" profile= competence=9 attitude=9`,
			`email="doer@example.com" id="" profile=doer competence=- attitude=-`,
			`email="prio@example.com" id="" profile=prioritizer competence=- attitude=-`,
			`email="supp@example.com" id="" profile= competence=1 attitude=1`,
			`email="trier+it@example.org" id="" profile= competence=3 attitude=7`,
			`email="" id="5" profile= competence=1 attitude=1`,
			`email="" id="AD\\trier" profile= competence=3 attitude=7`,
			`email="" id="u-001" profile=doer competence=- attitude=-`,
			`email="" id="u-003" profile= competence=2 attitude=8`,
			`email="" id="u-006" profile= competence=9 attitude=9`,
		}
		if !slices.Equal(lines, want) {
			t.Errorf("Export =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if _, err := Import(t.Context(), kv, got, "export"); err != nil {
			t.Errorf("Import(Export()) = %v, want the export to import back", err)
		}
	})

	t.Run("export skips what is not a profile and says so", func(t *testing.T) {
		if _, err := kv.Put(t.Context(), "lease.poller", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(t.Context(), UserIDKey("u-001")); err != nil {
			t.Fatal(err)
		}
		got, err := Export(t.Context(), kv)
		if !errors.Is(err, ErrSkipped) {
			t.Errorf("Export error = %v, want ErrSkipped", err)
		}
		if len(got) != 9 {
			t.Errorf("Export = %d entries, want the 9 good ones", len(got))
		}
	})

	t.Run("import checks every entry before writing any", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			entries []Entry
		}{
			{"an entry without keys", []Entry{{Email: "new@example.com", Profile: ticket.Doer}, {Profile: ticket.Doer}}},
			{"an entry with one score", []Entry{{Email: "new@example.com", Profile: ticket.Doer}, {UserID: "x", Competence: ptr(1)}}},
			{"an entry without profile or scores", []Entry{{Email: "new@example.com", Profile: ticket.Doer}, {UserID: "x"}}},
			{"an entry with the unknown profile", []Entry{{Email: "new@example.com", Profile: ticket.Doer}, {UserID: "x", Profile: ticket.Unknown}}},
			{"an entry with a negative score", []Entry{{Email: "new@example.com", Profile: ticket.Doer}, {UserID: "x", Competence: ptr(-1), Attitude: ptr(1)}}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				n, err := Import(t.Context(), kv, tt.entries, "test")
				if err == nil || n != 0 {
					t.Errorf("Import = %d, %v, want 0 and an error", n, err)
				}
				if _, err := kv.Get(t.Context(), EmailKey("new@example.com")); !errors.Is(err, jetstream.ErrKeyNotFound) {
					t.Errorf("Get(new@example.com) = %v, want ErrKeyNotFound: nothing written", err)
				}
			})
		}
	})
}

func TestSeed(t *testing.T) {
	kv := startKV(t)
	q := defaultQuadrant(t)
	entries, err := ParseFile("good.csv", fixture.Read(t, "testdata", "good.csv"), q)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Seed(t.Context(), kv, entries, "file:good.csv"); n != 10 || err != nil {
		t.Fatalf("Seed into an empty bucket = %d, %v, want 10 keys", n, err)
	}
	// Since the first start: one profile changed live, one deleted.
	if _, err := kv.Put(t.Context(), UserIDKey("u-001"), []byte(`{"profile":"supported"}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(t.Context(), EmailKey("prio@example.com")); err != nil {
		t.Fatal(err)
	}
	t.Run("a second seed writes only the keys without a value", func(t *testing.T) {
		n, err := Seed(t.Context(), kv, entries, "file:good.csv")
		if n != 1 || err != nil {
			t.Errorf("Seed again = %d, %v, want 1 key (the deleted one)", n, err)
		}
	})
	t.Run("a live change survives the seed", func(t *testing.T) {
		e, err := kv.Get(t.Context(), UserIDKey("u-001"))
		if err != nil || string(e.Value()) != `{"profile":"supported"}` {
			t.Errorf("Get(id.u-001) after Seed = %v, want the live value", err)
		}
	})
}

func TestDirectoryEmptyBucket(t *testing.T) {
	kv := startKV(t)
	d := NewDirectory(kv, defaultQuadrant(t), zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	select {
	case <-d.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("an empty bucket did not sync after 10s")
	}
	if got := lookupString(d, ticket.Caller{ID: "u-1"}); got != "miss" {
		t.Errorf("Lookup in an empty bucket = %s, want miss", got)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after cancel")
	}
}

func BenchmarkDirectoryLookup(b *testing.B) {
	kv := startKV(b)
	const people = 1000
	entries := make([]Entry, people)
	for i := range entries {
		entries[i] = Entry{Email: fmt.Sprintf("person%d@example.com", i), UserID: fmt.Sprintf("u-%d", i), Competence: ptr(8), Attitude: ptr(2)}
	}
	if _, err := Import(context.Background(), kv, entries, "bench"); err != nil {
		b.Fatal(err)
	}
	d := NewDirectory(kv, defaultQuadrant(b), zap.NewNop())
	runDirectory(b, d)
	for _, bc := range []struct {
		name   string
		caller ticket.Caller
	}{
		{"by=id", ticket.Caller{ID: "u-500"}},
		{"by=email", ticket.Caller{Email: "person500@example.com"}},
		{"by=mixed-case-email", ticket.Caller{Email: "Person500@Example.com"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := d.Lookup(ctx, bc.caller); !ok || err != nil {
					b.Fatalf("Lookup(%+v) = %v, %v, want a hit", bc.caller, ok, err)
				}
			}
		})
	}
}

// BenchmarkDirectoryGC measures a full garbage collection with a directory
// of 50,000 callers (100,000 keys, one in ten from scores) loaded: the
// directory's store (see profileStore) and, in the same process as in
// deskrelay's embedded mode, the KV bucket's per-subject index in the
// nats-server, which every collection marks. The difference to callers=0 is what they cost; it
// shows as longer GC mark phases under load (docs/performance.md).
func BenchmarkDirectoryGC(b *testing.B) {
	for _, people := range []int{0, 50000} {
		b.Run(fmt.Sprintf("callers=%d", people), func(b *testing.B) {
			kv := startKV(b)
			entries := make([]Entry, people)
			for i := range entries {
				entries[i] = Entry{Email: fmt.Sprintf("caller%d@example.com", i), UserID: fmt.Sprintf("u%d", i), Profile: ticket.Doer}
				if i%10 == 9 {
					entries[i] = Entry{Email: entries[i].Email, UserID: entries[i].UserID, Competence: ptr(float64(i % 11)), Attitude: ptr(float64(i % 7))}
				}
			}
			if people > 0 {
				if _, err := Import(context.Background(), kv, entries, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			d := NewDirectory(kv, defaultQuadrant(b), zap.NewNop())
			runDirectory(b, d)
			if got := d.Len(); got != 2*people {
				b.Fatalf("directory holds %d keys, want %d", got, 2*people)
			}
			runtime.GC()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(d)
		})
	}
}

// stallingKV hands out watchers from shape, one per WatchAll, in order;
// after the last, from rest, or the bucket's own when rest is nil. It
// keeps those it handed out.
type stallingKV struct {
	jetstream.KeyValue
	shape   []func(real jetstream.KeyWatcher) jetstream.KeyWatcher
	rest    func(real jetstream.KeyWatcher) jetstream.KeyWatcher
	mu      sync.Mutex
	watches int
	made    []jetstream.KeyWatcher
}

func (kv *stallingKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := kv.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.watches++
	switch {
	case kv.watches <= len(kv.shape):
		w = kv.shape[kv.watches-1](w)
	case kv.rest != nil:
		w = kv.rest(w)
	}
	kv.made = append(kv.made, w)
	return w, nil
}

// delivered returns how many entries (not the end-of-load marker) the
// watchers handed out after the first n passed on; each must be a relay.
func (kv *stallingKV) delivered(t *testing.T, n int) int {
	t.Helper()
	kv.mu.Lock()
	defer kv.mu.Unlock()
	sum := 0
	for _, w := range kv.made[min(n, len(kv.made)):] {
		r, ok := w.(*relayedWatcher)
		if !ok {
			t.Fatalf("watcher %T is not a relay", w)
		}
		sum += int(r.entries.Load())
	}
	return sum
}

func (kv *stallingKV) count() int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.watches
}

// relayedWatcher passes the first n updates of real on, each after delay,
// and then nothing more (n < 0: all of them), as a watch does whose server
// went away in the middle of the initial load.
type relayedWatcher struct {
	real    jetstream.KeyWatcher
	updates chan jetstream.KeyValueEntry
	stop    chan struct{}
	once    sync.Once
	entries atomic.Int32 // passed on, not counting the marker
}

func relay(n int, delay time.Duration) func(jetstream.KeyWatcher) jetstream.KeyWatcher {
	return func(real jetstream.KeyWatcher) jetstream.KeyWatcher {
		w := &relayedWatcher{real: real, updates: make(chan jetstream.KeyValueEntry), stop: make(chan struct{})}
		go func() {
			defer close(w.updates)
			for i := 0; n < 0 || i < n; i++ {
				select {
				case e, ok := <-real.Updates():
					if !ok {
						return
					}
					time.Sleep(delay)
					select {
					case w.updates <- e:
						if e != nil {
							w.entries.Add(1)
						}
					case <-w.stop:
						return
					}
				case <-w.stop:
					return
				}
			}
			<-w.stop
		}()
		return w
	}
}

func (w *relayedWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.updates }
func (w *relayedWatcher) Stop() error {
	w.once.Do(func() { close(w.stop) })
	return w.real.Stop()
}

func TestDirectoryRestartsAStalledLoad(t *testing.T) {
	for _, tt := range []struct {
		name    string
		shape   []func(jetstream.KeyWatcher) jetstream.KeyWatcher
		watches int
	}{
		{"a watch that delivers nothing is started again", []func(jetstream.KeyWatcher) jetstream.KeyWatcher{relay(0, 0)}, 2},
		{"a watch that stops half way is started again", []func(jetstream.KeyWatcher) jetstream.KeyWatcher{relay(5, 0), relay(0, 0)}, 3},
		// 11 updates (10 keys and the marker) 100ms apart: 1.1s in all,
		// more than the stall time of 500ms, and never 500ms without one.
		{"a slow load that goes on is not restarted", []func(jetstream.KeyWatcher) jetstream.KeyWatcher{relay(-1, 100*time.Millisecond)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			real := startKV(t)
			importFile(t, real, "good.csv")
			kv := &stallingKV{KeyValue: real, shape: tt.shape}
			core, logs := observer.New(zapcore.WarnLevel)
			d := NewDirectory(kv, defaultQuadrant(t), zap.New(core))
			d.loadStall = 500 * time.Millisecond
			runDirectory(t, d)
			if n := d.Len(); n != 10 {
				t.Errorf("Len after sync = %d, want 10", n)
			}
			if got := lookupString(d, ticket.Caller{Email: "doer@example.com"}); got != "doer" {
				t.Errorf("Lookup after sync = %s, want doer", got)
			}
			if got := kv.count(); got != tt.watches {
				t.Errorf("watches started = %d, want %d", got, tt.watches)
			}
			stalls := logs.FilterMessage("profile directory: the initial load stalled, watching the bucket again").Len()
			if stalls != tt.watches-1 {
				t.Errorf("stall warnings = %d, want %d", stalls, tt.watches-1)
			}
		})
	}
}

// restartableKV runs a server that can be stopped and started again on
// its port and store, and returns a client connected as deskrelay's is
// (reconnecting for ever, buffering nothing meanwhile) and the profiles
// bucket holding good.csv.
func restartableKV(t *testing.T) (store string, srv *server.Server, port int, nc *nats.Conn, kv jetstream.KeyValue) {
	t.Helper()
	store = t.TempDir()
	srv = bustest.StartAt(t, store, server.RANDOM_PORT)
	port = bustest.ServerPort(t, srv)
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err = js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "profiles"})
	if err != nil {
		t.Fatal(err)
	}
	importFile(t, kv, "good.csv")
	return store, srv, port, nc, kv
}

// awaitReconnect waits until nc is connected, at most 15s.
func awaitReconnect(t *testing.T, nc *nats.Conn) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); nc.Status() != nats.CONNECTED; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client not reconnected within 15s")
		}
	}
}

// TestDirectoryResumesAfterAReconnect restarts the server under a synced
// directory: a profile written right after the reconnect is seen within
// seconds (the client's own watch would wait for its missed heartbeats,
// 10 to 20s), and the changes made before the restart are not applied
// again (the watch resumes after the last revision).
func TestDirectoryResumesAfterAReconnect(t *testing.T) {
	store, srv, port, nc, kv := restartableKV(t)
	core, logs := observer.New(zapcore.InfoLevel)
	counted := &stallingKV{KeyValue: kv, rest: relay(-1, 0)}
	d := NewDirectory(counted, defaultQuadrant(t), zap.New(core), WithConnection(nc))
	runDirectory(t, d)
	synced := d.revision()

	srv.Shutdown()
	srv.WaitForShutdown()
	bustest.StartAt(t, store, port)
	awaitReconnect(t, nc)
	start := time.Now()
	var rev uint64
	for rev == 0 { // JetStream may take a moment after the reconnect
		var err error
		if rev, err = kv.Put(t.Context(), UserIDKey("u-after"), []byte(`{"profile":"trier"}`)); err != nil {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("Put after the restart: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Within 5s: the client's own watch would resume 10s after it started,
	// right before the restart.
	for err := d.WaitRevision(t.Context(), rev); err != nil; err = d.WaitRevision(t.Context(), rev) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%v: a put right after the reconnect not seen within 5s", err)
		}
	}
	if got := lookupString(d, ticket.Caller{ID: "u-after"}); got != "trier" {
		t.Errorf("Lookup after the put = %s, want trier", got)
	}
	t.Logf("put at revision %d seen %v after the reconnect", rev, time.Since(start))

	if n := counted.delivered(t, 1); n != 1 {
		t.Errorf("watches after the reconnect delivered %d entries, want 1: the put after the restart, not the 10 keys before", n)
	}
	// One reconnect, or two when the first attempt failed just after
	// saying it was connected.
	resumed := logs.FilterMessage("profile directory: reconnected, watching the bucket again").All()
	if len(resumed) == 0 {
		t.Fatal("no reconnect log line")
	}
	if got := resumed[0].ContextMap()["after_revision"]; got != synced {
		t.Errorf("watch resumed after revision %v, want %d (the last one applied before the restart)", got, synced)
	}
	if n := d.Len(); n != 11 {
		t.Errorf("Len = %d, want 11 (10 imported, 1 after the restart)", n)
	}
}

// TestDirectoryStopsWhenItCannotGoOn: a closed connection or a deleted
// bucket ends Run with an error instead of retries for ever.
func TestDirectoryStopsWhenItCannotGoOn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakIt func(t *testing.T, nc *nats.Conn, js jetstream.JetStream)
		want    error
	}{
		{"the connection is closed", func(t *testing.T, nc *nats.Conn, _ jetstream.JetStream) { nc.Close() }, nats.ErrConnectionClosed},
		{"the bucket is deleted", func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			if err := js.DeleteKeyValue(t.Context(), "profiles"); err != nil {
				t.Fatal(err)
			}
		}, nats.ErrStreamNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := bustest.Start(t)
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, _ := jetstream.New(nc)
			kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "profiles"})
			if err != nil {
				t.Fatal(err)
			}
			tt.breakIt(t, nc, js)
			d := NewDirectory(kv, defaultQuadrant(t), zaptest.NewLogger(t))
			errc := make(chan error, 1)
			go func() { errc <- d.Run(t.Context()) }()
			select {
			case err := <-errc:
				if !errors.Is(err, tt.want) {
					t.Errorf("Run = %v, want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run still retrying after 10s")
			}
		})
	}
}

// TestDirectoryRetriesAtOnceOnAReconnect: the first load stalls while the
// server is down for long enough that the watch's retries are seconds
// apart (100ms doubling; each fails at once, since the connection, like
// deskrelay's, buffers nothing while it reconnects). The reconnect starts
// the watch at once, not at the next retry.
func TestDirectoryRetriesAtOnceOnAReconnect(t *testing.T) {
	store, srv, port, nc, kv := restartableKV(t)
	stalling := &stallingKV{KeyValue: kv, shape: []func(jetstream.KeyWatcher) jetstream.KeyWatcher{relay(0, 0)}}
	d := NewDirectory(stalling, defaultQuadrant(t), zaptest.NewLogger(t), WithConnection(nc))
	d.loadStall = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	for stalling.count() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(7 * time.Second)
	bustest.StartAt(t, store, port)
	awaitReconnect(t, nc)
	back := time.Now()
	select {
	case <-d.Synced():
		t.Logf("synced %v after the reconnect", time.Since(back))
	case err := <-errc:
		t.Fatalf("Run = %v, want it to keep running", err)
	case <-time.After(3 * time.Second):
		t.Fatal("directory not synced within 3s of the reconnect")
	}
}
