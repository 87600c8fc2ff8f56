package llmtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Factory builds the client under test. Decorators wrap upstream; adapters
// serve upstream's answers in their provider's wire format (from an
// httptest server) and talk to it; a client that answers by itself, such as
// the simulated model, ignores upstream and is run with Standalone.
type Factory func(t *testing.T, upstream llm.Client) llm.Client

// Option adjusts Run.
type Option func(*suite)

// Standalone says the client ignores upstream, so the checks that script
// upstream's answers (exact text, errors, cut streams, hanging calls) are
// left out and the rest check the client's own answers.
func Standalone() Option { return func(s *suite) { s.standalone = true } }

// ErrorKinds sets which error kinds must come back unchanged from upstream
// through the client. The default is every kind a provider sends:
// rate_limited, timeout, unavailable, overloaded, bad_request, auth,
// context_length and content_filter. ErrorKinds() with none skips the check.
func ErrorKinds(kinds ...llm.Kind) Option {
	return func(s *suite) { s.kinds = kinds }
}

// NoStreaming leaves out the streaming checks, for clients that do not
// stream.
func NoStreaming() Option { return func(s *suite) { s.noStream = true } }

// Retrying says the client retries retryable errors, as resilience and the
// default stack do. The error-kind checks then script upstream to fail on
// every attempt, so the kind must still come back once the retries are
// spent (a rate limit with a short Retry-After, so the suite stays quick),
// and a further check requires that a retryable failure followed by an
// answer returns the answer.
func Retrying() Option { return func(s *suite) { s.retrying = true } }

// Liveness bounds how long a call may take to return after its context is
// canceled before the suite calls it stuck. It guards against deadlock; it
// is not a latency assertion. Default 10 s.
func Liveness(d time.Duration) Option { return func(s *suite) { s.liveness = d } }

type suite struct {
	newClient  Factory
	standalone bool
	noStream   bool
	kinds      []llm.Kind
	liveness   time.Duration
	retrying   bool
}

// DefaultErrorKinds are the kinds Run checks by default.
var DefaultErrorKinds = []llm.Kind{
	llm.KindRateLimited, llm.KindTimeout, llm.KindUnavailable, llm.KindOverloaded,
	llm.KindBadRequest, llm.KindAuth, llm.KindContextLength, llm.KindContentFilter,
}

// Run checks that the client newClient builds keeps the llm.Client
// contract: safe concurrent use, the request left unmodified, a prompt
// return when the context is canceled, streaming in order with an
// aggregated response, the stream callback's error honoured, cut streams
// reported as stream_cut, and error kinds preserved. Every adapter and
// every decorator in llmkit runs it; third-party ones can too. Run it under
// -race.
func Run(t *testing.T, newClient Factory, opts ...Option) {
	t.Helper()
	s := &suite{newClient: newClient, kinds: DefaultErrorKinds, liveness: 10 * time.Second}
	for _, o := range opts {
		o(s)
	}
	t.Run("Answer", s.testAnswer)
	t.Run("RequestUnmodified", s.testRequestUnmodified)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("CanceledBeforeCall", s.testCanceledBefore)
	if !s.standalone {
		t.Run("CanceledDuringCall", s.testCanceledDuring)
		if s.retrying {
			t.Run("RetriedAnswer", s.testRetriedAnswer)
		}
		if len(s.kinds) > 0 {
			t.Run("ErrorKinds", s.testErrorKinds)
		}
	}
	if !s.noStream {
		t.Run("StreamOrder", s.testStreamOrder)
		t.Run("StreamCallbackError", s.testStreamCallbackError)
		if !s.standalone {
			t.Run("StreamCut", s.testStreamCut)
		}
	}
}

// testRetriedAnswer: a retrying client answers after one retryable failure.
func (s *suite) testRetriedAnswer(t *testing.T) {
	c, up := s.client(t, Step{Err: Error(llm.KindUnavailable)}, Step{Text: "after a retry"})
	resp, err := c.Generate(context.Background(), prompt(t))
	checkResult(t, resp, err)
	if err != nil {
		t.Fatalf("Generate after one unavailable attempt: %v", err)
	}
	if resp.Text != "after a retry" || up.Calls() != 2 {
		t.Fatalf("Text = %q after %d upstream calls, want the second call's answer", resp.Text, up.Calls())
	}
}

// prompt makes every test's prompt distinct, so that a caching client under
// test does not answer one test from another's entry.
func prompt(t *testing.T) *llm.Request {
	return &llm.Request{
		Model:       "conformance-model",
		Messages:    []llm.Message{llm.User("conformance " + t.Name())},
		Temperature: llm.Ptr(0.0),
		Endpoint:    "conformance",
	}
}

func (s *suite) client(t *testing.T, steps ...Step) (llm.Client, *Fake) {
	up := &Fake{Steps: steps, Default: Step{Text: "default answer"}}
	return s.newClient(t, up), up
}

func checkResult(t *testing.T, resp *llm.Response, err error) {
	t.Helper()
	if (resp == nil) == (err == nil) {
		t.Fatalf("Generate returned resp=%v err=%v: want exactly one of them", resp, err)
	}
}

func (s *suite) testAnswer(t *testing.T) {
	c, up := s.client(t, Step{Text: "the upstream answer"})
	resp, err := c.Generate(context.Background(), prompt(t))
	checkResult(t, resp, err)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if s.standalone {
		if resp.Text == "" {
			t.Fatal("empty answer")
		}
		return
	}
	if resp.Text != "the upstream answer" {
		t.Fatalf("Text = %q, want the upstream's answer", resp.Text)
	}
	if up.Calls() == 0 {
		t.Fatal("upstream was never called")
	}
}

// deepCopy copies every part of a request a client could modify.
func deepCopy(r *llm.Request) *llm.Request {
	c := *r
	c.Messages = append([]llm.Message(nil), r.Messages...)
	c.Stop = append([]string(nil), r.Stop...)
	if r.Temperature != nil {
		c.Temperature = llm.Ptr(*r.Temperature)
	}
	if r.TopP != nil {
		c.TopP = llm.Ptr(*r.TopP)
	}
	if r.Seed != nil {
		c.Seed = llm.Ptr(*r.Seed)
	}
	if r.Extra != nil {
		c.Extra = make(map[string]any, len(r.Extra))
		for k, v := range r.Extra {
			c.Extra[k] = v
		}
	}
	c.Stream = nil
	return &c
}

func (s *suite) testRequestUnmodified(t *testing.T) {
	c, _ := s.client(t)
	for _, stream := range []bool{false, true} {
		if stream && s.noStream {
			continue
		}
		req := &llm.Request{
			Model:  "conformance-model",
			System: "You are terse.",
			Messages: []llm.Message{
				llm.User("first " + t.Name()), llm.Assistant("reply"), llm.User("second"),
			},
			MaxTokens:   64,
			Temperature: llm.Ptr(0.0),
			TopP:        llm.Ptr(0.9),
			Seed:        llm.Ptr(int64(7)),
			Stop:        []string{"END"},
			Extra:       map[string]any{"user": "conformance"},
			Endpoint:    "conformance",
			Tenant:      "tenant-a",
		}
		if stream {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		fn := reflect.ValueOf(req.Stream).Pointer()
		want := deepCopy(req)
		resp, err := c.Generate(context.Background(), req)
		checkResult(t, resp, err)
		if err != nil {
			t.Fatalf("Generate (stream=%v): %v", stream, err)
		}
		if reflect.ValueOf(req.Stream).Pointer() != fn {
			t.Fatalf("stream=%v: the client replaced the caller's Stream callback", stream)
		}
		got := deepCopy(req)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream=%v: request modified:\n got %+v\nwant %+v", stream, got, want)
		}
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	c, _ := s.client(t)
	const workers, calls = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				req := prompt(t)
				req.Messages[0].Content += fmt.Sprintf(" %d/%d", w, i)
				resp, err := c.Generate(context.Background(), req)
				switch {
				case err != nil:
					errs <- err
				case resp == nil || resp.Text == "":
					errs <- errors.New("empty response")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Generate: %v", err)
	}
}

func (s *suite) testCanceledBefore(t *testing.T) {
	c, _ := s.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := c.Generate(ctx, prompt(t))
	checkResult(t, resp, err)
	if got := llm.KindOf(err); got != llm.KindCanceled {
		t.Fatalf("Generate with a canceled context: kind %v (%v), want canceled", got, err)
	}
}

func (s *suite) testCanceledDuring(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	up := &Fake{Func: func(int, *llm.Request) Step {
		once.Do(func() { close(started) })
		return Step{Hang: true}
	}}
	c := s.newClient(t, up)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		resp *llm.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Generate(ctx, prompt(t))
		done <- result{resp, err}
	}()
	bound := time.NewTimer(s.liveness)
	defer bound.Stop()
	select {
	case <-started:
	case <-bound.C:
		t.Fatal("upstream never received the call")
	}
	cancel()
	select {
	case r := <-done:
		checkResult(t, r.resp, r.err)
		if got := llm.KindOf(r.err); got != llm.KindCanceled {
			t.Fatalf("canceled call: kind %v (%v), want canceled", got, r.err)
		}
	case <-bound.C:
		t.Fatalf("Generate did not return within %v of its context being canceled", s.liveness)
	}
}

func (s *suite) testErrorKinds(t *testing.T) {
	for _, kind := range s.kinds {
		t.Run(kind.String(), func(t *testing.T) {
			c, _ := s.client(t, Step{Err: Error(kind)})
			if s.retrying && llm.Retryable(Error(kind)) {
				fail := Error(kind)
				if fail.RetryAfter > 0 {
					fail.RetryAfter = time.Millisecond
				}
				c = s.newClient(t, &Fake{Default: Step{Err: fail}})
			}
			resp, err := c.Generate(context.Background(), prompt(t))
			checkResult(t, resp, err)
			if got := llm.KindOf(err); got != kind {
				t.Fatalf("kind = %v (%v), want %v", got, err, kind)
			}
			if !errors.Is(err, sentinelOf(kind)) {
				t.Fatalf("errors.Is(%v, sentinel %v) = false", err, kind)
			}
			if kind == llm.KindRateLimited && llm.RetryAfterOf(err) <= 0 {
				t.Fatalf("rate-limit error lost its RetryAfter: %v", err)
			}
		})
	}
}

func sentinelOf(k llm.Kind) error {
	for _, e := range []*llm.Error{
		llm.ErrUnknown, llm.ErrRateLimited, llm.ErrTimeout, llm.ErrUnavailable, llm.ErrOverloaded,
		llm.ErrBadRequest, llm.ErrAuth, llm.ErrContextLength, llm.ErrContentFilter, llm.ErrCanceled,
		llm.ErrCircuitOpen, llm.ErrStreamCut,
	} {
		if e.Kind == k {
			return e
		}
	}
	return llm.ErrUnknown
}

func (s *suite) testStreamOrder(t *testing.T) {
	want := []string{"Hel", "lo, ", "wor", "ld"}
	c, _ := s.client(t, Step{Chunks: want})
	var got []llm.Chunk
	req := prompt(t)
	req.Stream = func(ch llm.Chunk) error {
		got = append(got, ch)
		return nil
	}
	resp, err := c.Generate(context.Background(), req)
	checkResult(t, resp, err)
	if err != nil {
		t.Fatalf("streamed Generate: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("the Stream callback was never called")
	}
	var b strings.Builder
	for i, ch := range got {
		if ch.Index != i {
			t.Fatalf("chunk %d has Index %d: chunks out of order", i, ch.Index)
		}
		b.WriteString(ch.Text)
	}
	if b.String() != resp.Text {
		t.Fatalf("chunks join to %q but Response.Text is %q", b.String(), resp.Text)
	}
	if !s.standalone && resp.Text != strings.Join(want, "") {
		t.Fatalf("Response.Text = %q, want %q", resp.Text, strings.Join(want, ""))
	}
}

func (s *suite) testStreamCallbackError(t *testing.T) {
	stop := errors.New("caller stops reading")
	c, _ := s.client(t, Step{Chunks: []string{"a", " b", " c", " d", " e"}})
	calls := 0
	req := prompt(t)
	req.Stream = func(ch llm.Chunk) error {
		calls++
		if ch.Index == 1 {
			return stop
		}
		return nil
	}
	resp, err := c.Generate(context.Background(), req)
	checkResult(t, resp, err)
	if !errors.Is(err, stop) {
		t.Fatalf("Generate returned %v, want the callback's error", err)
	}
	if calls != 2 {
		t.Fatalf("callback called %d times, want 2: a callback error must stop the stream", calls)
	}
}

func (s *suite) testStreamCut(t *testing.T) {
	c, _ := s.client(t, Step{Chunks: []string{"one", " two", " three", " four"}, CutAfter: 2})
	var got []string
	req := prompt(t)
	req.Stream = func(ch llm.Chunk) error {
		got = append(got, ch.Text)
		return nil
	}
	resp, err := c.Generate(context.Background(), req)
	checkResult(t, resp, err)
	if !errors.Is(err, llm.ErrStreamCut) {
		t.Fatalf("cut stream returned %v, want a stream_cut error", err)
	}
	if strings.Join(got, "") != "one two" {
		t.Fatalf("chunks before the cut = %q, want %q", strings.Join(got, ""), "one two")
	}
}
