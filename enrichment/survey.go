package enrichment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/ticket"
)

// OriginSurvey is the Origin of a bucket value written from a survey
// answer, and SourceSurvey the Source of the profile the [Directory]
// returns for it.
const (
	OriginSurvey = "survey"
	SourceSurvey = "survey"
)

// maxSurveyBytes caps a survey answer's body.
const maxSurveyBytes = 64 << 10

// maxClockSkew is how far in the future answered_at may lie.
const maxClockSkew = 5 * time.Minute

// ErrBadAnswer is returned, wrapped, by [Surveys.Record] for an answer
// that cannot be stored: no caller key, a score outside its scale, an
// unknown scale or field. Its message says what is wrong and is safe to
// return to the sender (it never repeats the email or id).
var ErrBadAnswer = errors.New("bad survey answer")

// Answer is one survey response: the caller (email and/or user id), the
// two scores on a named scale, and when it was answered (default: when
// it was received).
//
//	{"email":"new.hire@example.com","competence":2,"attitude":4,"scale":"1-5","answered_at":"2026-11-25T09:00:00Z"}
type Answer struct {
	Email      string    `json:"email,omitempty"`
	UserID     string    `json:"user_id,omitempty"`
	Competence *float64  `json:"competence"`
	Attitude   *float64  `json:"attitude"`
	Scale      string    `json:"scale,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
}

// Recorded says what [Surveys.Record] did with an answer.
type Recorded struct {
	// Result is stored (the answer is now the caller's profile) or
	// superseded (a newer value stays; the answer is in the history).
	Result  string             `json:"result"`
	Profile ticket.ProfileName `json:"profile"`
}

// Surveys records survey answers in the profiles bucket: the mapped
// profile under the caller's keys (the newest answer, or a newer import,
// wins) and the answers in a bounded history under "survey.<key>". It
// serves POST /surveys ([Surveys.ServeHTTP]) and the NATS subject
// ([Surveys.Subscriber]). It is safe for concurrent use.
type Surveys struct {
	kv      jetstream.KeyValue
	scales  Scales
	def     string
	history int
	log     *zap.Logger
	m       *Metrics
	now     func() time.Time
	// seen, when set, is waited on after a write until the local
	// directory has applied it.
	seen interface {
		WaitRevision(ctx context.Context, rev uint64) error
	}
}

// NewSurveys returns the survey recorder over the profiles bucket kv.
// It returns [config.Errors] for a default scale that is not in scales or
// a history below 1.
func NewSurveys(kv jetstream.KeyValue, scales Scales, cfg config.Surveys, log *zap.Logger, m *Metrics) (*Surveys, error) {
	var errs config.Errors
	if _, err := scales.Lookup(cfg.DefaultScale); err != nil {
		errs = append(errs, config.Errorf("profiles.surveys.default_scale", "%v", err))
	}
	if cfg.History < 1 {
		errs = append(errs, config.Errorf("profiles.surveys.history", "must be at least 1, got %d", cfg.History))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Surveys{kv: kv, scales: scales, def: cfg.DefaultScale, history: cfg.History, log: log.Named("enrichment.surveys"), m: m, now: time.Now}, nil
}

// surveyValue is one answer in the history.
type surveyValue struct {
	Profile    ticket.ProfileName `json:"profile"`
	AnsweredAt time.Time          `json:"answered_at"`
	SurveyScores
}

// surveyHistory is the value under "survey.<key>": newest first.
type surveyHistory struct {
	Answers []surveyValue `json:"answers"`
}

// check validates a and maps it; the error wraps ErrBadAnswer.
func (s *Surveys) check(a *Answer) (surveyValue, error) {
	bad := func(format string, args ...any) (surveyValue, error) {
		return surveyValue{}, fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, args...))
	}
	a.Email = strings.ToLower(strings.TrimSpace(a.Email))
	a.UserID = strings.TrimSpace(a.UserID)
	switch {
	case a.Email == "" && a.UserID == "":
		return bad("neither email nor user_id: say whose answer it is")
	case a.Email != "" && checkEmail(a.Email) != "":
		return bad("email: %s", checkEmail(a.Email))
	case a.UserID != "" && checkID(a.UserID) != "":
		return bad("user_id: %s", checkID(a.UserID))
	case a.Competence == nil || a.Attitude == nil:
		return bad("competence and attitude are both required")
	}
	name := a.Scale
	if name == "" {
		name = s.def
	}
	sc, err := s.scales.Lookup(name)
	if err != nil {
		return bad("scale: %v", err)
	}
	p, c, at, err := sc.Classify(*a.Competence, *a.Attitude)
	if err != nil {
		return bad("%v", err)
	}
	now := s.now()
	when := a.AnsweredAt
	switch {
	case when.IsZero():
		when = now
	case when.After(now.Add(maxClockSkew)):
		return bad("answered_at %s is in the future", when.UTC().Format(time.RFC3339))
	case when.Year() < 1970:
		return bad("answered_at %s is not a plausible time", when.UTC().Format(time.RFC3339))
	}
	return surveyValue{
		Profile:    p,
		AnsweredAt: when.UTC(),
		SurveyScores: SurveyScores{
			Scale: name, Competence: *a.Competence, Attitude: *a.Attitude,
			NormalizedCompetence: c, NormalizedAttitude: at,
		},
	}, nil
}

// Record checks the answer, maps it onto the quadrant and stores it: in
// the caller's history (bounded, newest first), and under the caller's
// email and id keys unless a value written later than the answer is
// there. A bad answer returns an error wrapping [ErrBadAnswer] and
// nothing is stored; other errors mean the bucket could not be written
// and the sender should retry.
func (s *Surveys) Record(ctx context.Context, a Answer) (Recorded, error) {
	sv, err := s.check(&a)
	if err != nil {
		return Recorded{}, err
	}
	current, err := json.Marshal(Value{Profile: sv.Profile, UpdatedAt: sv.AnsweredAt, Origin: OriginSurvey, Survey: &sv.SurveyScores})
	if err != nil {
		return Recorded{}, err
	}
	rec := Recorded{Result: SurveySuperseded, Profile: sv.Profile}
	for _, key := range entryKeys(Entry{Email: a.Email, UserID: a.UserID}) {
		if _, err := casUpdate(ctx, s.kv, surveyPrefix+key, func(old []byte) ([]byte, error) {
			return s.addToHistory(old, sv)
		}); err != nil {
			return Recorded{}, fmt.Errorf("survey history: %w", err)
		}
		rev, err := casUpdate(ctx, s.kv, key, func(old []byte) ([]byte, error) {
			if old != nil {
				if v, err := decodeValue(old); err == nil && v.UpdatedAt.After(sv.AnsweredAt) {
					return nil, errNoChange // newer than this answer: it stays
				}
			}
			return current, nil
		})
		if err != nil {
			return Recorded{}, fmt.Errorf("survey profile: %w", err)
		}
		if rev > 0 {
			rec.Result = SurveyStored
			// Read your writes: the next lookup on this replica must see
			// the answer, not wait for the watch to catch up.
			if s.seen != nil {
				if err := s.seen.WaitRevision(ctx, rev); err != nil {
					s.log.Warn("survey stored, but the local directory has not seen it yet", zap.Error(err))
				}
			}
		}
	}
	return rec, nil
}

// addToHistory inserts sv into the history value old, newest first, and
// keeps the configured number of answers. An answer already there (same
// time and scores) is not added twice.
func (s *Surveys) addToHistory(old []byte, sv surveyValue) ([]byte, error) {
	var h surveyHistory
	if old != nil && json.Unmarshal(old, &h) != nil {
		h = surveyHistory{} // unreadable: start again rather than fail every answer
	}
	for _, o := range h.Answers {
		if o.AnsweredAt.Equal(sv.AnsweredAt) && o.SurveyScores == sv.SurveyScores {
			return nil, errNoChange
		}
	}
	h.Answers = append(h.Answers, sv)
	slices.SortStableFunc(h.Answers, func(a, b surveyValue) int { return b.AnsweredAt.Compare(a.AnsweredAt) })
	if len(h.Answers) > s.history {
		h.Answers = h.Answers[:s.history]
	}
	return json.Marshal(h)
}

// History returns the answers kept for an email or a user id (one of
// them), newest first.
func (s *Surveys) History(ctx context.Context, email, userID string) ([]Answer, error) {
	key := UserIDKey(userID)
	if email != "" {
		key = EmailKey(email)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, surveyPrefix+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("survey history: %w", err)
	}
	var h surveyHistory
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return nil, fmt.Errorf("survey history: revision %d: not a history", e.Revision())
	}
	out := make([]Answer, len(h.Answers))
	for i, v := range h.Answers {
		c, a := v.Competence, v.Attitude
		out[i] = Answer{Email: strings.ToLower(email), UserID: userID, Competence: &c, Attitude: &a, Scale: v.Scale, AnsweredAt: v.AnsweredAt}
	}
	return out, nil
}

// decodeAnswer parses a JSON answer strictly: unknown fields are errors,
// so that a misspelt "competance" is not silently dropped.
func decodeAnswer(data []byte) (Answer, error) {
	var a Answer
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Answer{}, fmt.Errorf("%w: not a survey answer JSON object: %v", ErrBadAnswer, jsonMessage(err))
	}
	if dec.More() {
		return Answer{}, fmt.Errorf("%w: more than one JSON value", ErrBadAnswer)
	}
	return a, nil
}

// jsonMessage is the part of a JSON decoding error that is safe to show:
// it names fields and offsets, never values.
func jsonMessage(err error) string {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s, not a JSON %s", te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ") + "; use email, user_id, competence, attitude, scale, answered_at"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "answered_at must be an RFC 3339 time"
	}
	return "invalid JSON"
}

// handle decodes and records one answer under a recover, counting it.
func (s *Surveys) handle(ctx context.Context, via string, data []byte) (rec Recorded, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("survey answer panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = errors.New("internal error")
		}
		switch {
		case err == nil:
			s.m.surveys.WithLabelValues(via, rec.Result).Inc()
		case errors.Is(err, ErrBadAnswer):
			s.m.surveys.WithLabelValues(via, SurveyRejected).Inc()
		default:
			s.m.surveys.WithLabelValues(via, SurveyFailed).Inc()
		}
	}()
	a, err := decodeAnswer(data)
	if err != nil {
		return Recorded{}, err
	}
	return s.Record(ctx, a)
}

// ServeHTTP accepts one answer as a JSON body (POST /surveys): 200 with
// {"result":"stored"|"superseded","profile":…}; 400 with the reason for a
// bad answer; 413 for a body over 64 KiB; 503 with Retry-After when the
// bucket cannot be written.
func (s *Surveys) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSurveyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("body exceeds %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	rec, err := s.handle(r.Context(), "http", body)
	switch {
	case errors.Is(err, ErrBadAnswer):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case err != nil:
		s.log.Warn("survey answer not stored", zap.String("via", "http"), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "profile directory unavailable; retry later", http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rec)
	}
}

// SurveyQueue is the queue group of the survey subscribers, so that each
// answer is recorded by one replica.
const SurveyQueue = "deskrelay-surveys"

// Subscriber records the answers published on a NATS subject.
type Subscriber struct {
	s       *Surveys
	nc      *nats.Conn
	subject string
}

// Subscriber returns a subscriber for subject (<prefix>.surveys) on nc.
// Run it with [Subscriber.Run].
func (s *Surveys) Subscriber(nc *nats.Conn, subject string) *Subscriber {
	return &Subscriber{s: s, nc: nc, subject: subject}
}

// surveyReply is the reply to a request on the survey subject.
type surveyReply struct {
	Recorded
	Error string `json:"error,omitempty"`
}

// Run subscribes (queue group [SurveyQueue]) and records each answer until
// ctx is done, then unsubscribes and returns nil. A message with a reply
// subject gets {"result":…,"profile":…} or {"error":…}; a bad answer
// without one is logged at warn level and counted. Run returns an error
// when it cannot subscribe or the subscription ends on its own.
func (sub *Subscriber) Run(ctx context.Context) error {
	ns, err := sub.nc.QueueSubscribeSync(sub.subject, SurveyQueue)
	if err != nil {
		return fmt.Errorf("surveys: subscribe %s: %w", sub.subject, err)
	}
	defer func() { _ = ns.Unsubscribe() }()
	log := sub.s.log.With(zap.String("subject", sub.subject))
	log.Info("survey subscriber started")
	for {
		msg, err := ns.NextMsgWithContext(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrSlowConsumer):
			log.Warn("survey answers dropped: subscriber too slow", zap.Error(err))
			continue
		case err != nil:
			return fmt.Errorf("surveys: receive on %s: %w", sub.subject, err)
		}
		rec, err := sub.s.handle(ctx, "nats", msg.Data)
		reply := surveyReply{Recorded: rec}
		if err != nil {
			reply.Error = err.Error()
			if !errors.Is(err, ErrBadAnswer) {
				reply.Error = "profile directory unavailable; retry later"
			}
			log.Warn("survey answer not stored", zap.Error(err))
		}
		if msg.Reply != "" {
			data, _ := json.Marshal(reply)
			if err := msg.Respond(data); err != nil {
				log.Warn("survey reply failed", zap.Error(err))
			}
		}
	}
}
