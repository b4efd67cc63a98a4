package infer

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/enrichment"
	"github.com/deskrelay/deskrelay/ticket"
)

func TestWords(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"apostrophes and hyphens inside words are dropped", "I've re-installed it, don't", []string{"ive", "reinstalled", "it", "dont"}},
		{"a typographic apostrophe is dropped too", "I’ve tried", []string{"ive", "tried"}},
		{"dots between alphanumerics stay", "ping 10.0.0.1 and outlook.exe. Done", []string{"ping", "10.0.0.1", "and", "outlook.exe", "done"}},
		{"punctuation and quotes split words", `“Updating folders” (again)`, []string{"updating", "folders", "again"}},
		{"non-ASCII letters are word letters", "Drucker läuft nicht", []string{"drucker", "läuft", "nicht"}},
		{"a word longer than the limit is passed as nil", "x" + strings.Repeat("a", maxWord) + " ok", []string{"<nil>", "ok"}},
		{"a leading hyphen is not part of a word", "-v --force", []string{"v", "force"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			words(tt.text, func(w []byte, _ shape) {
				if w == nil {
					got = append(got, "<nil>")
					return
				}
				got = append(got, string(w))
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("words(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestShapes(t *testing.T) {
	for _, tt := range []struct {
		word string
		want shape
	}{
		{"0x800f0922", shapeCode}, {"AADSTS50076", shapeCode}, {"10.20.30.0", shapeDotted},
		{"16.0.17328", shapeDotted}, {"DNS", shapeAcronym}, {"dns", 0}, {"2024", 0}, {"v2", 0},
	} {
		var got shape
		words(tt.word, func(_ []byte, sh shape) { got = sh })
		if got != tt.want {
			t.Errorf("shape of %q = %b, want %b", tt.word, got, tt.want)
		}
	}
}

func TestCompileRefusesBadVocabularies(t *testing.T) {
	for _, tt := range []struct {
		name string
		sigs []signal
		want string
	}{
		{"a phrase without words", []signal{{name: "x", phrases: []string{"--"}}}, `phrase "--" has no words`},
		{"a phrase too long", []signal{{name: "x", phrases: []string{"a b c d e f g"}}}, "more than 6 words"},
		{"a phrase twice, spelled differently", []signal{{name: "x", phrases: []string{"don't know"}}, {name: "y", phrases: []string{"dont know"}}}, "already in signal x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(tt.sigs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("compile() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestScanMatchesEachEntryOncePerTicket(t *testing.T) {
	v, err := compile([]signal{{name: "x", competence: 1, phrases: []string{"already tried", "dns"}}})
	if err != nil {
		t.Fatal(err)
	}
	var once seen
	n := 0
	hit := func(*entry) { n++ }
	v.scan("DNS, dns and I already tried it", &once, hit, func(shape) {})
	v.scan("already tried DNS again", &once, hit, func(shape) {})
	if n != 2 {
		t.Errorf("hits = %d, want 2 (each entry once)", n)
	}
	once = seen{}
	n = 0
	v.scan("already", &once, hit, func(shape) {})
	v.scan("tried", &once, hit, func(shape) {})
	if n != 0 {
		t.Errorf("hits across two texts = %d, want 0: a phrase does not span texts", n)
	}
}

func newInferrer(t *testing.T, opts ...Option) *Inferrer {
	t.Helper()
	in, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func tk(id string, ch ticket.Channel, title, desc string) ticket.Ticket {
	return ticket.Ticket{ID: id, Source: "test", Title: title, Description: desc, Channel: ch, Caller: ticket.Caller{Email: "a@example.com"}}
}

var (
	doerTicket = tk("T1", ticket.ChannelPortal, "DNS fails on VPN",
		"nslookup times out on the VPN adapter; already tried ipconfig /flushdns. Probably split DNS on the client profile. Is there a KB article?")
	supportedTicket = tk("T2", ticket.ChannelPhone, "Computer not working",
		"My computer shows a strange message, I'm not good with computers. Can someone come to my desk and fix it for me?")
	triersTicket = tk("T3", ticket.ChannelEmail, "How do I add the printer?",
		"I'm not sure which printer to choose. Could you send me the steps so I can do it myself?")
	prioritizerTicket = tk("T4", ticket.ChannelPhone, "VPN certificate error before board call",
		"AnyConnect certificate validation failure. Already rebooted. I have no time, please fix it remotely and call me when done.")
)

func TestInferNamesTheQuadrant(t *testing.T) {
	in := newInferrer(t, WithMinConfidence(0))
	for _, tt := range []struct {
		name string
		tk   ticket.Ticket
		want ticket.ProfileName
	}{
		{"technical terms, tried steps and the portal make a doer", doerTicket, ticket.Doer},
		{"plain words and a request to come make a supported caller", supportedTicket, ticket.Supported},
		{"a request for steps in plain words makes a trier", triersTicket, ticket.Trier},
		{"technical terms and no time make a prioritizer", prioritizerTicket, ticket.Prioritizer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := in.Infer(&tt.tk, nil)
			if p.Name != tt.want || p.Source != SourceName {
				t.Errorf("Infer(%s) = %s from %q, want %s from %q (%s)", tt.tk.ID, p.Name, p.Source, tt.want, SourceName, p.Reason)
			}
		})
	}
}

func TestInferBelowMinConfidenceStaysUnknownWithScores(t *testing.T) {
	in := newInferrer(t, WithMinConfidence(1))
	p := in.Infer(&doerTicket, nil)
	if p.Name != ticket.Unknown || p.Source != SourceName || p.Competence == nil || p.Attitude == nil {
		t.Fatalf("Infer = %+v, want unknown from %q with scores", p, SourceName)
	}
	if !strings.Contains(p.Reason, "below the minimum") {
		t.Errorf("Reason = %q, want it to say the confidence is below the minimum", p.Reason)
	}
	if *p.Competence < 0.5 || *p.Attitude < 0.5 {
		t.Errorf("scores = %v, %v, want the doer quadrant (≥ 0.5 both)", *p.Competence, *p.Attitude)
	}
}

func TestInferWithoutSignalsAnswersDoerAtLowConfidence(t *testing.T) {
	in := newInferrer(t, WithMinConfidence(0))
	empty := ticket.Ticket{ID: "T0", Title: "x"}
	p := in.Infer(&empty, nil)
	if p.Confidence < 0.25 || p.Confidence > DefaultMinConfidence {
		t.Errorf("confidence without signals = %v, want within [0.25, %v)", p.Confidence, DefaultMinConfidence)
	}
}

func TestInferReadsHistory(t *testing.T) {
	in := newInferrer(t, WithMinConfidence(0))
	vague := tk("N1", ticket.ChannelEmail, "Outlook question", "Outlook shows a message.")
	var hist []ticket.Ticket
	for i := range 5 {
		h := supportedTicket
		h.ID = "H" + string(rune('0'+i))
		hist = append(hist, h)
	}
	without, with := in.Infer(&vague, nil), in.Infer(&vague, hist)
	if with.Name != ticket.Supported || *with.Attitude >= *without.Attitude {
		t.Errorf("with a supported history: %s a=%v (without: %s a=%v), want supported with a lower attitude",
			with.Name, *with.Attitude, without.Name, *without.Attitude)
	}
	self := in.Infer(&supportedTicket, []ticket.Ticket{supportedTicket})
	alone := in.Infer(&supportedTicket, nil)
	if *self.Attitude != *alone.Attitude {
		t.Errorf("the ticket itself in its history changed attitude %v → %v; it must be skipped", *alone.Attitude, *self.Attitude)
	}
}

func TestOptionsRefuseBadValues(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  Option
	}{
		{"negative min confidence", WithMinConfidence(-0.1)},
		{"min confidence above 1", WithMinConfidence(1.5)},
		{"NaN min confidence", WithMinConfidence(math.NaN())},
		{"nil history", WithHistory(nil)},
		{"nil metrics", WithMetrics(nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opt); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("New() error = %v, want ErrInvalidOption", err)
			}
		})
	}
	if _, err := NewMemory(0, 1); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("NewMemory(0, 1) error = %v, want ErrInvalidOption", err)
	}
}

func TestLookup(t *testing.T) {
	mem, err := NewMemory(10, 5)
	if err != nil {
		t.Fatal(err)
	}
	in := newInferrer(t, WithHistory(mem), WithMinConfidence(0))
	t.Run("without a ticket in the context it misses", func(t *testing.T) {
		if _, ok, err := in.Lookup(t.Context(), doerTicket.Caller); ok || err != nil {
			t.Errorf("Lookup = %v, %v; want a miss", ok, err)
		}
	})
	t.Run("with a ticket it infers and records the ticket", func(t *testing.T) {
		ctx := ContextWithTicket(t.Context(), &supportedTicket)
		p, ok, err := in.Lookup(ctx, supportedTicket.Caller)
		if !ok || err != nil || p.Name != ticket.Supported {
			t.Fatalf("Lookup = %s, %v, %v; want supported", p.Name, ok, err)
		}
		got, _ := mem.Recent(t.Context(), supportedTicket.Caller)
		if len(got) != 1 || got[0].ID != supportedTicket.ID {
			t.Errorf("history after Lookup = %d tickets, want the looked-up one", len(got))
		}
	})
}

type failingHistory struct{}

func (failingHistory) Recent(context.Context, ticket.Caller) ([]ticket.Ticket, error) {
	return nil, errors.New("kv unavailable")
}

func TestLookupWithoutHistoryStillInfers(t *testing.T) {
	in := newInferrer(t, WithHistory(failingHistory{}))
	p, ok, err := in.Lookup(ContextWithTicket(t.Context(), &doerTicket), doerTicket.Caller)
	if !ok || err != nil || !strings.Contains(p.Reason, "history unavailable") {
		t.Errorf("Lookup = %+v, %v, %v; want a profile whose reason says the history is unavailable", p, ok, err)
	}
}

// TestChainAsksInferenceOnlyForUnknownCallers runs the inference as the
// last source of an enrichment chain.
func TestChainAsksInferenceOnlyForUnknownCallers(t *testing.T) {
	q, err := enrichment.NewQuadrant(config.Profiles{})
	if err != nil {
		t.Fatal(err)
	}
	known := enrichment.NewStatic([]enrichment.Entry{{Email: "known@example.com", Profile: ticket.Supported}}, q)
	chain := enrichment.NewChain(zaptest.NewLogger(t), nil, 0, known, newInferrer(t))
	for _, tt := range []struct {
		name       string
		email      string
		wantName   ticket.ProfileName
		wantSource string
	}{
		{"a known caller keeps the directory's profile", "known@example.com", ticket.Supported, enrichment.SourceFile},
		{"an unknown caller gets the inferred one", "new@example.com", ticket.Doer, SourceName},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tk := doerTicket // technical: inference alone would say doer
			tk.Caller = ticket.Caller{Email: tt.email}
			p, err := chain.Lookup(ContextWithTicket(t.Context(), &tk), tk.Caller)
			if err != nil || p.Name != tt.wantName || p.Source != tt.wantSource {
				t.Errorf("Lookup(%s) = %s from %q, %v; want %s from %q", tt.email, p.Name, p.Source, err, tt.wantName, tt.wantSource)
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	mem, err := NewMemory(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	caller := func(n string) ticket.Caller { return ticket.Caller{Email: n + "@example.com"} }
	rec := func(c, id, title string) {
		mem.Record(ticket.Ticket{ID: id, Source: "s", Title: title, Caller: caller(c), Raw: []byte(`{}`)})
	}
	for i, id := range []string{"1", "2", "3", "4"} {
		rec("a", id, "v"+string(rune('0'+i)))
	}
	rec("a", "3", "updated")
	got, _ := mem.Recent(ctx, caller("A")) // emails compare case-insensitively
	ids := []string{}
	for _, g := range got {
		ids = append(ids, g.ID+":"+g.Title)
		if g.Raw != nil {
			t.Errorf("ticket %s kept its raw payload", g.ID)
		}
	}
	if want := []string{"2:v1", "3:updated", "4:v3"}; !slices.Equal(ids, want) {
		t.Errorf("Recent(a) = %q, want %q", ids, want)
	}
	rec("b", "1", "b")
	mem.Recent(ctx, caller("a")) // a is now the most recently used
	rec("c", "1", "c")
	if got, _ := mem.Recent(ctx, caller("b")); got != nil || mem.Len() != 2 {
		t.Errorf("after a third caller: b has %d tickets and %d callers are held, want b forgotten and 2", len(got), mem.Len())
	}
	rec("", "9", "no caller")
	if mem.Len() != 2 {
		t.Errorf("a ticket without caller was recorded")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	in := newInferrer(t, WithMetrics(m))
	in.Infer(&doerTicket, nil)
	in.Infer(&supportedTicket, nil)
	if n := testutil.CollectAndCount(reg, "deskrelay_profile_inference_confidence"); n != 1 {
		t.Errorf("series = %d, want 1", n)
	}
	problems, err := testutil.CollectAndLint(m.confidence)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs[0].GetMetric()[0].GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("observations = %d, want 2", got)
	}
}

func TestDecodeLine(t *testing.T) {
	for _, tt := range []struct {
		name, line, want string // want: error text, or "" for success
	}{
		{"a ticket with history and label", `{"id":"1","title":"x","history":[{"id":"0","title":"y"}],"label":"Trier"}`, ""},
		{"unknown members are ignored", `{"id":"1","description":"x","routing":{}}`, ""},
		{"not JSON", `{"id":`, "not a ticket JSON object"},
		{"no id", `{"title":"x"}`, "id is required"},
		{"no text", `{"id":"1"}`, "neither title nor description"},
		{"unknown is not a label", `{"id":"1","title":"x","label":"unknown"}`, `label "unknown" is not one of`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeLine([]byte(tt.line))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("DecodeLine(%s) error = %v", tt.line, err)
			case tt.want != "" && (!errors.Is(err, ErrLine) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("DecodeLine(%s) error = %v, want ErrLine containing %q", tt.line, err, tt.want)
			}
		})
	}
}
