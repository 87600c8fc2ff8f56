package sim

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Provider is the Provider of every *llm.Error a Model returns.
const Provider = "sim"

// Model is a simulated model. It is safe for concurrent use; SetErrors and
// SetLatency may be called while calls run.
type Model struct {
	seed                 int64
	model                string
	minTokens, maxTokens int
	retryAfter           time.Duration
	quotaRequests        int64 // or llm.QuotaUnknown
	quotaTokens          int64 // or llm.QuotaUnknown

	settings atomic.Pointer[settings]
	calls    atomic.Uint64 // calls that got past validation
	tokens   atomic.Uint64 // tokens answered, for the token quota
}

var _ llm.Client = (*Model)(nil)

// New returns a Model configured by cfg, or an error that says what is
// wrong with cfg. See Config for the defaults.
func New(cfg Config) (*Model, error) {
	j, err := jitter(cfg.Jitter)
	if err != nil {
		return nil, err
	}
	lo, hi, err := tokenRange(cfg.MinTokens, cfg.MaxTokens)
	if err != nil {
		return nil, err
	}
	faults, err := buildFaults(cfg.Errors)
	if err != nil {
		return nil, err
	}
	m := &Model{
		seed:          cfg.Seed,
		model:         cfg.Model,
		minTokens:     lo,
		maxTokens:     hi,
		retryAfter:    duration(cfg.RetryAfter, DefaultRetryAfter),
		quotaRequests: quota(cfg.QuotaRequests, DefaultQuotaRequests),
		quotaTokens:   quota(cfg.QuotaTokens, DefaultQuotaTokens),
	}
	if m.model == "" {
		m.model = DefaultModel
	}
	m.settings.Store(&settings{
		ttft:     duration(cfg.TTFT, DefaultTTFT),
		perToken: duration(cfg.PerToken, DefaultPerToken),
		jitter:   j,
		faults:   faults,
	})
	return m, nil
}

// MustNew is New for configurations known to be valid, as in examples and
// tests: it panics on an error.
func MustNew(cfg Config) *Model {
	m, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return m
}

// SetErrors replaces the failure probabilities (see Config.Errors) for the
// calls that start from now on; nil stops all failures. On an error the
// probabilities in effect stay as they were.
func (m *Model) SetErrors(errs map[llm.Kind]float64) error {
	faults, err := buildFaults(errs)
	if err != nil {
		return err
	}
	m.update(func(s *settings) { s.faults = faults })
	return nil
}

// SetLatency replaces TTFT and PerToken for the calls that start from now
// on. As in Config, zero means the default and negative means none.
func (m *Model) SetLatency(ttft, perToken time.Duration) {
	ttft, perToken = duration(ttft, DefaultTTFT), duration(perToken, DefaultPerToken)
	m.update(func(s *settings) { s.ttft, s.perToken = ttft, perToken })
}

// update publishes a changed copy of the settings. Concurrent updates do
// not lose each other's changes.
func (m *Model) update(change func(*settings)) {
	for {
		old := m.settings.Load()
		s := *old
		change(&s)
		if m.settings.CompareAndSwap(old, &s) {
			return
		}
	}
}

// reply is a Response and its Quota in one allocation.
type reply struct {
	resp  llm.Response
	quota llm.Quota
}

// Generate answers req after the simulated latency, or fails as
// Config.Errors says. An invalid request gets req.Validate's error. When
// req.Stream is set the answer is streamed one word per chunk; an error
// the callback returns ends the call and Generate returns that error
// unchanged. When ctx is done first, Generate returns at once with
// llm.FromContext's error (canceled or timeout).
func (m *Model) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, Provider)
	}
	s := m.settings.Load()
	call := m.calls.Add(1)
	// Draws for this call only, reproducible from the seed and the call's
	// sequence number. The generator lives on the stack.
	r := rand.NewPCG(mix64(uint64(m.seed)), mix64(call))
	kind, failed := s.draw(unit(r))
	ttft, perToken := s.latency(unit(r))
	if failed && (kind != llm.KindStreamCut || req.Stream == nil) {
		if err := waitOnce(ctx, ttft); err != nil {
			return nil, err
		}
		return nil, m.fault(kind)
	}

	model := req.Model
	if model == "" {
		model = m.model
	}
	a := m.compose(req, model, call)
	if req.Stream == nil {
		if err := waitOnce(ctx, ttft+time.Duration(a.tokens)*perToken); err != nil {
			return nil, err
		}
	} else {
		cut := -1
		if failed {
			// Cut after at least one word and before the last, when there
			// are two or more.
			cut = 0
			if a.tokens > 1 {
				cut = 1 + below(r, a.tokens-1)
			}
		}
		if err := m.stream(ctx, req.Stream, a.body(), a.tokens, cut, ttft, perToken); err != nil {
			return nil, err
		}
	}

	rep := &reply{resp: llm.Response{
		ID:           a.id(),
		Text:         a.body(),
		Model:        model,
		FinishReason: a.finish,
		Usage: llm.Usage{
			InputTokens:  req.EstimateInputTokens(),
			OutputTokens: a.tokens,
		},
	}}
	if m.quotaRequests != llm.QuotaUnknown || m.quotaTokens != llm.QuotaUnknown {
		m.fillQuota(&rep.quota, call, rep.resp.Usage.Total())
		rep.resp.Quota = &rep.quota
	}
	return &rep.resp, nil
}

// stream delivers the n words of text to fn, word i at ttft + i×perToken,
// and ends one perToken after the last. When cut >= 0 it fails with a
// stream_cut error in place of word cut.
func (m *Model) stream(ctx context.Context, fn func(llm.Chunk) error, text string, n, cut int, ttft, perToken time.Duration) error {
	var w waiter
	defer w.stop()
	if err := w.wait(ctx, ttft); err != nil {
		return err
	}
	start := 0
	for i := range n {
		if i > 0 {
			if err := w.wait(ctx, perToken); err != nil {
				return err
			}
		}
		if i == cut {
			return m.fault(llm.KindStreamCut)
		}
		chunk := nextChunk(text, start)
		if err := fn(llm.Chunk{Index: i, Text: chunk}); err != nil {
			return err
		}
		start += len(chunk)
	}
	return w.wait(ctx, perToken)
}

// fillQuota reports the allowance left after this call: both counts run
// down with use and start over when they run out.
func (m *Model) fillQuota(q *llm.Quota, call uint64, tokens int) {
	*q = llm.NewQuota()
	if n := m.quotaRequests; n > 0 {
		q.LimitRequests = n
		q.RemainingRequests = n - 1 - int64((call-1)%uint64(n))
	}
	if n := m.quotaTokens; n > 0 {
		used := m.tokens.Add(uint64(tokens))
		q.LimitTokens = n
		q.RemainingTokens = n - int64(used%uint64(n))
	}
}

// draw picks the failure, if any, for a uniform draw u.
func (s *settings) draw(u float64) (llm.Kind, bool) {
	for _, f := range s.faults {
		if u < f.upTo {
			return f.kind, true
		}
	}
	return llm.KindUnknown, false
}

// latency returns TTFT and PerToken varied by one factor in
// [1-jitter, 1+jitter) picked by the uniform draw u.
func (s *settings) latency(u float64) (ttft, perToken time.Duration) {
	if s.jitter == 0 {
		return s.ttft, s.perToken
	}
	f := 1 + s.jitter*(2*u-1)
	return time.Duration(float64(s.ttft) * f), time.Duration(float64(s.perToken) * f)
}

// fault returns the error of a simulated failure of kind k, shaped as a
// provider would send it.
func (m *Model) fault(k llm.Kind) *llm.Error {
	e := &llm.Error{Kind: k, Provider: Provider, Status: k.HTTPStatus()}
	switch k {
	case llm.KindRateLimited:
		e.Message, e.RetryAfter = "simulated rate limit", m.retryAfter
	case llm.KindTimeout:
		e.Message = "simulated request timeout"
	case llm.KindUnavailable:
		e.Message = "simulated outage"
	case llm.KindOverloaded:
		e.Message = "simulated overload"
	case llm.KindBadRequest:
		e.Message = "simulated invalid request"
	case llm.KindAuth:
		e.Message = "simulated authentication failure"
	case llm.KindContextLength:
		e.Message = "simulated context length exceeded"
	case llm.KindContentFilter:
		e.Message = "simulated content filter refusal"
	case llm.KindStreamCut:
		e.Message = "simulated stream cut before the end marker"
	default:
		e.Message = "simulated unclassified failure"
	}
	return e
}

// waitOnce waits d, or until ctx is done, with at most one timer.
func waitOnce(ctx context.Context, d time.Duration) error {
	var w waiter
	err := w.wait(ctx, d)
	w.stop()
	return err
}

// waiter waits with one timer, created on the first wait that needs one and
// reset for the next, so a stream of n words costs one timer, not n.
type waiter struct{ t *time.Timer }

func (w *waiter) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		select {
		case <-ctx.Done():
			return llm.FromContext(ctx, Provider)
		default:
			return nil
		}
	}
	if w.t == nil {
		w.t = time.NewTimer(d)
	} else {
		w.t.Reset(d)
	}
	select {
	case <-w.t.C:
		return nil
	case <-ctx.Done():
		return llm.FromContext(ctx, Provider)
	}
}

func (w *waiter) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}
