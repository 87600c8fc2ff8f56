package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func validRequest() *llm.Request {
	return &llm.Request{
		Model:       "m",
		System:      "be brief",
		Messages:    []llm.Message{llm.User("hello"), llm.Assistant("hi"), llm.User("again")},
		MaxTokens:   10,
		Temperature: llm.Ptr(0.0),
		TopP:        llm.Ptr(1.0),
		Seed:        llm.Ptr(int64(0)),
		Stop:        []string{"\n\n"},
		Extra:       map[string]any{"reasoning_effort": "low"},
	}
}

func TestValidateRules(t *testing.T) {
	big := strings.Repeat("x", llm.DefaultLimits.MaxContentBytes)
	tests := []struct {
		name   string
		mutate func(r *llm.Request)
		want   string // "" means valid
	}{
		{"valid", func(r *llm.Request) {}, ""},
		{"zero values are valid", func(r *llm.Request) {
			r.Temperature, r.TopP, r.MaxTokens = llm.Ptr(0.0), llm.Ptr(0.0), 0
		}, ""},
		{"upper bounds are valid", func(r *llm.Request) { r.Temperature, r.TopP = llm.Ptr(2.0), llm.Ptr(1.0) }, ""},
		{"no messages", func(r *llm.Request) { r.Messages = nil }, "empty prompt"},
		{"only a system prompt", func(r *llm.Request) { r.Messages = []llm.Message{llm.SystemMessage("x")} }, "empty prompt"},
		{"blank user message", func(r *llm.Request) { r.Messages = []llm.Message{llm.User(" \n\t")} }, "empty prompt"},
		{"unknown role", func(r *llm.Request) { r.Messages[1].Role = "tool" }, "message 1: unknown role"},
		{"negative max tokens", func(r *llm.Request) { r.MaxTokens = -1 }, "max tokens is negative"},
		{"temperature below 0", func(r *llm.Request) { r.Temperature = llm.Ptr(-0.1) }, "temperature out of range"},
		{"temperature above 2", func(r *llm.Request) { r.Temperature = llm.Ptr(2.01) }, "temperature out of range"},
		{"temperature NaN", func(r *llm.Request) { r.Temperature = llm.Ptr(math.NaN()) }, "temperature out of range"},
		{"top-p above 1", func(r *llm.Request) { r.TopP = llm.Ptr(1.5) }, "top-p out of range"},
		{"top-p negative", func(r *llm.Request) { r.TopP = llm.Ptr(-1.0) }, "top-p out of range"},
		{"top-p NaN", func(r *llm.Request) { r.TopP = llm.Ptr(math.NaN()) }, "top-p out of range"},
		{"empty stop sequence", func(r *llm.Request) { r.Stop = []string{"a", ""} }, "stop sequence 1 is empty"},
		{"too many stop sequences", func(r *llm.Request) { r.Stop = make([]string, 17) }, "too many stop sequences"},
		{"empty extra name", func(r *llm.Request) { r.Extra = map[string]any{"": 1} }, "extra parameter with an empty name"},
		{"content too large", func(r *llm.Request) { r.Messages[0].Content = big }, "request content too large"},
		{"system prompt counts toward size", func(r *llm.Request) { r.System = big }, "request content too large"},
		{"extra text counts toward size", func(r *llm.Request) {
			r.Extra = map[string]any{"metadata": map[string]any{"notes": []any{big}}}
		}, "request content too large"},
		// Extra built in Go rather than decoded from JSON: any type.
		{"extra raw JSON counts toward size", func(r *llm.Request) {
			r.Extra = map[string]any{"schema": json.RawMessage(big)}
		}, "request content too large"},
		{"extra map of strings counts toward size", func(r *llm.Request) {
			r.Extra = map[string]any{"metadata": map[string]string{"notes": big}}
		}, "request content too large"},
		{"extra slice of maps counts toward size", func(r *llm.Request) {
			r.Extra = map[string]any{"tools": []map[string]any{{"description": big}}}
		}, "request content too large"},
		{"extra struct counts toward size", func(r *llm.Request) {
			r.Extra = map[string]any{"tool": struct{ Description *string }{&big}}
		}, "request content too large"},
		{"extra nested too deep", func(r *llm.Request) {
			var v any = "x"
			for range 40 {
				v = []any{v}
			}
			r.Extra = map[string]any{"deep": v}
		}, "request content too large"},
		{"extra sharing its parts is not walked forever", func(r *llm.Request) {
			// 2^30 paths through one small map each level reuses.
			var v any = map[string]any{}
			for range 30 {
				v = map[string]any{"a": v, "b": v}
			}
			r.Extra = map[string]any{"dag": v}
		}, "request content too large"},
		{"too many messages", func(r *llm.Request) {
			r.Messages = make([]llm.Message, llm.DefaultLimits.MaxMessages+1)
		}, "too many messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, llm.ErrBadRequest) {
				t.Fatalf("Validate: %v, want a bad_request error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestValidateNilAndLimits(t *testing.T) {
	var r *llm.Request
	if !errors.Is(r.Validate(), llm.ErrBadRequest) {
		t.Fatal("nil request accepted")
	}
	req := llm.Prompt(strings.Repeat("a", 100))
	if err := req.ValidateLimits(llm.Limits{MaxContentBytes: 99}); !errors.Is(err, llm.ErrBadRequest) {
		t.Fatalf("100 bytes under a 99-byte limit: %v", err)
	}
	if err := req.ValidateLimits(llm.Limits{MaxContentBytes: 100}); err != nil {
		t.Fatalf("100 bytes under a 100-byte limit: %v", err)
	}
}

// An oversized prompt must be rejected before the size of anything else is
// looked at: the error text must not carry the content.
func TestValidateOversizedNeverEchoesContent(t *testing.T) {
	canary := "CANARY-" + strings.Repeat("z", 2<<20)
	err := llm.Prompt(canary).Validate()
	if err == nil || strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("oversized prompt: %v", err)
	}
}

func TestValidateMiddleware(t *testing.T) {
	calls := 0
	next := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		calls++
		return &llm.Response{Text: "ok"}, nil
	})
	c := llm.Validate(llm.Limits{})(next)
	if _, err := c.Generate(context.Background(), &llm.Request{}); !errors.Is(err, llm.ErrBadRequest) || calls != 0 {
		t.Fatalf("invalid request: err=%v calls=%d", err, calls)
	}
	if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil || calls != 1 {
		t.Fatalf("valid request: err=%v calls=%d", err, calls)
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	r := validRequest()
	if n := testing.AllocsPerRun(1000, func() { _ = r.Validate() }); n != 0 {
		t.Fatalf("Validate of a valid request allocates %v times, want 0", n)
	}
}

func TestChainSkipsNil(t *testing.T) {
	var order []string
	mw := func(name string) llm.Middleware {
		return func(next llm.Client) llm.Client {
			return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
				order = append(order, name)
				return next.Generate(ctx, req)
			})
		}
	}
	base := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return &llm.Response{}, nil })
	_, _ = llm.Chain(nil, mw("a"), nil, mw("b"))(base).Generate(context.Background(), llm.Prompt("x"))
	if strings.Join(order, ",") != "a,b" {
		t.Fatalf("order %v", order)
	}
	order = nil
	if c := llm.Wrap(base); fmt.Sprintf("%p", c) != fmt.Sprintf("%p", base) {
		t.Fatal("Wrap with no middleware must return the client itself")
	}
}

func passThrough(next llm.Client) llm.Client {
	return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return next.Generate(ctx, req)
	})
}

var okResponse = &llm.Response{Text: "ok"}

func okClient() llm.Client {
	return llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return okResponse, nil })
}

// One empty middleware layer must not allocate.
func TestEmptyMiddlewareZeroAllocs(t *testing.T) {
	c := llm.Wrap(okClient(), passThrough)
	req, ctx := llm.Prompt("x"), context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(ctx, req) }); n != 0 {
		t.Fatalf("one pass-through layer allocates %v times per call, want 0", n)
	}
}

func TestErrorIsAndAs(t *testing.T) {
	cause := errors.New("socket closed")
	err := fmt.Errorf("wrapped: %w", &llm.Error{Kind: llm.KindUnavailable, Status: 503, Provider: "p", Message: "down", Err: cause})
	if !errors.Is(err, llm.ErrUnavailable) || errors.Is(err, llm.ErrRateLimited) {
		t.Fatal("Is against sentinels")
	}
	if !errors.Is(err, cause) {
		t.Fatal("Unwrap lost the cause")
	}
	// Two distinct non-sentinel errors of one kind are not Is-equal.
	if errors.Is(&llm.Error{Kind: llm.KindTimeout}, &llm.Error{Kind: llm.KindTimeout}) {
		t.Fatal("Is matched a non-sentinel target")
	}
	var e *llm.Error
	if !errors.As(err, &e) || e.Status != 503 {
		t.Fatal("As")
	}
	if got := e.Error(); got != "llm: p: unavailable (status 503): down: socket closed" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestErrorTextRedactsCause(t *testing.T) {
	err := &llm.Error{Kind: llm.KindAuth, Err: errors.New("bad header Authorization: Bearer sk-live-0123456789abcdefghij")}
	if strings.Contains(err.Error(), "sk-live") {
		t.Fatalf("secret in error text: %q", err)
	}
}

type netErr struct{ timeout bool }

func (e netErr) Error() string   { return "net" }
func (e netErr) Timeout() bool   { return e.timeout }
func (e netErr) Temporary() bool { return false }

func TestKindOf(t *testing.T) {
	tests := []struct {
		err  error
		want llm.Kind
	}{
		{nil, llm.KindUnknown},
		{errors.New("x"), llm.KindUnknown},
		{context.Canceled, llm.KindCanceled},
		{context.DeadlineExceeded, llm.KindTimeout},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), llm.KindTimeout},
		{io.ErrUnexpectedEOF, llm.KindUnavailable},
		{netErr{timeout: true}, llm.KindTimeout},
		{netErr{}, llm.KindUnavailable},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, llm.KindUnavailable},
		{&llm.Error{Kind: llm.KindContextLength}, llm.KindContextLength},
	}
	for _, tt := range tests {
		if got := llm.KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	yes := []llm.Kind{llm.KindRateLimited, llm.KindTimeout, llm.KindUnavailable, llm.KindOverloaded, llm.KindStreamCut}
	no := []llm.Kind{llm.KindUnknown, llm.KindBadRequest, llm.KindAuth, llm.KindContextLength, llm.KindContentFilter, llm.KindCanceled, llm.KindCircuitOpen}
	if len(yes)+len(no) != len(llm.Kinds()) {
		t.Fatal("a kind is neither retryable nor not: classify it here")
	}
	for _, k := range yes {
		if !llm.Retryable(&llm.Error{Kind: k}) {
			t.Errorf("%v not retryable", k)
		}
	}
	for _, k := range no {
		if llm.Retryable(&llm.Error{Kind: k}) {
			t.Errorf("%v retryable", k)
		}
	}
}

func TestKindForStatus(t *testing.T) {
	want := map[int]llm.Kind{
		0: llm.KindUnknown, 200: llm.KindUnknown, 302: llm.KindUnknown,
		400: llm.KindBadRequest, 404: llm.KindBadRequest, 413: llm.KindBadRequest, 422: llm.KindBadRequest,
		401: llm.KindAuth, 402: llm.KindAuth, 403: llm.KindAuth,
		408: llm.KindTimeout, 429: llm.KindRateLimited,
		500: llm.KindUnavailable, 502: llm.KindUnavailable, 503: llm.KindUnavailable, 504: llm.KindUnavailable,
		529: llm.KindOverloaded, 600: llm.KindUnknown,
	}
	for status, k := range want {
		if got := llm.KindForStatus(status); got != k {
			t.Errorf("KindForStatus(%d) = %v, want %v", status, got, k)
		}
	}
	// HTTPStatus is its inverse for every kind that comes from HTTP.
	for _, k := range llm.Kinds() {
		s := k.HTTPStatus()
		if s == 0 {
			continue
		}
		back := llm.KindForStatus(s)
		if back != k && back != llm.KindBadRequest {
			t.Errorf("KindForStatus(%v.HTTPStatus() = %d) = %v", k, s, back)
		}
	}
}

func TestKindNamesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range llm.Kinds() {
		s := k.String()
		if seen[s] || s == "" {
			t.Fatalf("duplicate or empty name %q", s)
		}
		seen[s] = true
		if back, ok := llm.ParseKind(s); !ok || back != k {
			t.Fatalf("ParseKind(%q) = %v %v", s, back, ok)
		}
	}
	if llm.Kind(200).String() != "unknown" {
		t.Fatal("out-of-range kind must map to unknown")
	}
}

func TestFromContext(t *testing.T) {
	if llm.FromContext(context.Background(), "p") != nil {
		t.Fatal("live context gave an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := llm.FromContext(ctx, "p"); !errors.Is(err, llm.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if err := llm.FromContext(ctx, "p"); !errors.Is(err, llm.ErrTimeout) {
		t.Fatalf("deadline: %v", err)
	}
	// A cause set by a decorator names the kind.
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(&llm.Error{Kind: llm.KindTimeout, Message: "attempt timeout"})
	if err := llm.FromContext(ctx, "p"); !errors.Is(err, llm.ErrTimeout) {
		t.Fatalf("cause: %v", err)
	}
}

func TestRedact(t *testing.T) {
	secrets := []string{
		"Authorization: Bearer sk-proj-CANARYabcdefghijklmnop",
		`{"authorization":"Bearer CANARYtoken12345678"}`,
		"x-api-key: CANARY-ant-key",
		"api_key=CANARY1234",
		`"apiKey": "CANARY1234"`,
		"https://host/v1?key=CANARYxyz&x=1",
		"https://host/v1?alt=json&token=CANARYxyz",
		"invalid key sk-ant-api03-CANARYabcdefghijklmnop given",
		"key AIzaSyCANARY0123456789abcdefghijklmnopq",
		"password=CANARY",
		"Request-Id: req_sk-ant-api03-CANARYabcdefghijklmnop",
		"xsk-proj-CANARYabcdefghijklmnop",
	}
	for _, s := range secrets {
		got := llm.Redact(s)
		if strings.Contains(got, "CANARY") {
			t.Errorf("Redact(%q) = %q still holds the secret", s, got)
		}
		if !strings.Contains(got, llm.Redacted) {
			t.Errorf("Redact(%q) = %q has no marker", s, got)
		}
	}
	plain := "model overloaded, try again in 3 seconds (request id req_123)"
	if llm.Redact(plain) != plain {
		t.Errorf("Redact changed ordinary text: %q", llm.Redact(plain))
	}
}

func TestObserverChain(t *testing.T) {
	if llm.Observed(context.Background()) {
		t.Fatal("Observed with nobody listening")
	}
	llm.Emit(context.Background(), llm.Event{Kind: llm.EventRetry}) // nobody listens: no panic
	var got []string
	outer := llm.ObserverFunc(func(_ context.Context, ev llm.Event) { got = append(got, "outer:"+ev.Kind.String()) })
	inner := llm.ObserverFunc(func(_ context.Context, ev llm.Event) { got = append(got, "inner:"+ev.Kind.String()) })
	ctx := llm.WithObserver(context.Background(), outer)
	ctx = llm.WithObserver(ctx, nil)
	ctx = llm.WithObserver(ctx, inner)
	if !llm.Observed(ctx) {
		t.Fatal("not Observed")
	}
	// The observer context keeps cancellation and values working.
	cctx, cancel := context.WithCancel(ctx)
	llm.Emit(cctx, llm.Event{Kind: llm.EventCacheHit})
	cancel()
	if cctx.Err() == nil {
		t.Fatal("cancel lost")
	}
	if strings.Join(got, ",") != "inner:cache_hit,outer:cache_hit" {
		t.Fatalf("events %v", got)
	}
}

// EmitTo reports to the decorator's own observer first, then to the
// context's; MultiObserver fans out in order, skips nils and flattens.
func TestEmitToAndMultiObserver(t *testing.T) {
	var got []string
	rec := func(name string) llm.Observer {
		return llm.ObserverFunc(func(_ context.Context, ev llm.Event) { got = append(got, name+":"+ev.Kind.String()) })
	}
	if llm.MultiObserver(nil, nil) != nil {
		t.Fatal("MultiObserver of nils is not nil")
	}
	one := rec("one")
	if o := llm.MultiObserver(nil, one); o == nil {
		t.Fatal("MultiObserver(nil, one) = nil")
	}
	own := llm.MultiObserver(rec("a"), nil, llm.MultiObserver(rec("b"), rec("c")))
	ctx := llm.WithObserver(context.Background(), rec("ctx"))
	llm.EmitTo(ctx, own, llm.Event{Kind: llm.EventRetry})
	llm.EmitTo(context.Background(), nil, llm.Event{Kind: llm.EventRetry}) // nobody: no panic
	if s := strings.Join(got, ","); s != "a:retry,b:retry,c:retry,ctx:retry" {
		t.Fatalf("events %s", s)
	}
}

func TestEmitWithoutObserverDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	req := llm.Prompt("x")
	if n := testing.AllocsPerRun(1000, func() {
		llm.Emit(ctx, llm.Event{Kind: llm.EventAttempt, Request: req, Attempt: 1})
	}); n != 0 {
		t.Fatalf("Emit with nobody listening allocates %v", n)
	}
}

func TestRequestHelpers(t *testing.T) {
	r := validRequest()
	c := r.Clone()
	c.Model = "other"
	if r.Model != "m" {
		t.Fatal("Clone shares top-level fields")
	}
	if (*llm.Request)(nil).Clone() != nil {
		t.Fatal("Clone(nil)")
	}
	if r.PromptText() != "again" {
		t.Fatalf("PromptText = %q", r.PromptText())
	}
	if got := llm.Prompt("abcdefgh").EstimateInputTokens(); got != 4+2 {
		t.Fatalf("EstimateInputTokens(8 ascii bytes) = %d, want 6", got)
	}
	if got := llm.Prompt("你好世界").EstimateInputTokens(); got != 4+4 {
		t.Fatalf("EstimateInputTokens(4 CJK) = %d, want 8", got)
	}
}

func TestQuotaAndResponse(t *testing.T) {
	q := llm.NewQuota()
	if q.Known() {
		t.Fatal("fresh quota known")
	}
	q.RemainingTokens = 0
	if !q.Known() {
		t.Fatal("a zero remaining count is a real, known value")
	}
	r := &llm.Response{Quota: &q}
	c := r.Clone()
	c.Quota.RemainingTokens = 5
	if r.Quota.RemainingTokens != 0 {
		t.Fatal("Response.Clone shares the quota")
	}
	if !llm.FinishStop.Complete() || llm.FinishLength.Complete() {
		t.Fatal("Complete")
	}
}

func BenchmarkEmptyMiddleware(b *testing.B) {
	ctx, req := context.Background(), llm.Prompt("x")
	b.Run("bare", func(b *testing.B) {
		c := okClient()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Generate(ctx, req)
		}
	})
	b.Run("one-layer", func(b *testing.B) {
		c := llm.Wrap(okClient(), passThrough)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Generate(ctx, req)
		}
	})
	b.Run("ten-layers", func(b *testing.B) {
		mws := make([]llm.Middleware, 10)
		for i := range mws {
			mws[i] = passThrough
		}
		c := llm.Wrap(okClient(), mws...)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Generate(ctx, req)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	b.Run("small", func(b *testing.B) {
		r := validRequest()
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Validate()
		}
	})
	b.Run("4KiB", func(b *testing.B) {
		r := llm.Prompt(strings.Repeat("word ", 820))
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Validate()
		}
	})
	b.Run("oversized", func(b *testing.B) {
		r := llm.Prompt(strings.Repeat("x", 2<<20))
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Validate()
		}
	})
}

func BenchmarkEmit(b *testing.B) {
	req := llm.Prompt("x")
	b.Run("nobody-listens", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			llm.Emit(ctx, llm.Event{Kind: llm.EventAttempt, Request: req})
		}
	})
	b.Run("one-observer", func(b *testing.B) {
		ctx := llm.WithObserver(context.Background(), llm.ObserverFunc(func(context.Context, llm.Event) {}))
		b.ReportAllocs()
		for b.Loop() {
			llm.Emit(ctx, llm.Event{Kind: llm.EventAttempt, Request: req})
		}
	})
}

func BenchmarkRedact(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			_ = llm.Redact("model overloaded, try again in 3 seconds")
		}
	})
	b.Run("secret", func(b *testing.B) {
		for b.Loop() {
			_ = llm.Redact("Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz")
		}
	})
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := llm.Sleep(context.Background(), time.Minute); err != nil || time.Since(start) != time.Minute {
			t.Fatalf("Sleep(1m) = %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		if err := llm.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("Sleep past the deadline = %v after %v", err, time.Since(start))
		}
		if err := llm.Sleep(ctx, 0); err == nil {
			t.Fatal("Sleep(0) on a done context returned nil")
		}
	})
}

// An error whose text holds a secret (an http.Do to a URL with ?key=…)
// comes back redacted, with its kind, and still wrapping its clean cause.
func TestRedactError(t *testing.T) {
	cause := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	leaky := &url.Error{Op: "Post", URL: "https://llm.example/v1/chat?key=SECRET123", Err: cause}
	err := llm.RedactError(leaky)
	if strings.Contains(err.Error(), "SECRET123") {
		t.Fatalf("secret in %q", err)
	}
	if !strings.Contains(err.Error(), "key="+llm.Redacted) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("redacted error lost its context: %q", err)
	}
	if llm.KindOf(err) != llm.KindUnavailable {
		t.Fatalf("kind %v, want unavailable", llm.KindOf(err))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatal("the clean cause is no longer reachable")
	}
	for e := error(err); e != nil; e = errors.Unwrap(e) {
		var ue *url.Error
		if errors.As(e, &ue) {
			t.Fatal("the leaky *url.Error is still reachable through Unwrap")
		}
	}
	rl := &llm.Error{Kind: llm.KindRateLimited, Status: 429, RetryAfter: time.Second, Err: leaky}
	got := llm.RedactError(rl)
	if llm.RetryAfterOf(got) != time.Second || llm.KindOf(got) != llm.KindRateLimited {
		t.Fatalf("RetryAfter or kind lost: %v", got)
	}
	for e := got; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "SECRET123") {
			t.Fatalf("a cause of the redacted *llm.Error still holds the secret: %q", e)
		}
	}
	if rl.Err != leaky {
		t.Fatal("RedactError modified the caller's error")
	}
	plain := errors.New("nothing to hide")
	if llm.RedactError(plain) != plain || llm.RedactError(nil) != nil {
		t.Fatal("a clean error must come back unchanged")
	}
}
