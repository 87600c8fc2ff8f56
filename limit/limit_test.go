package limit

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	cacheredis "github.com/llmkit/llmkit/cache/redis"
	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) {
	redistest.QuietLogs()
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name)) // a replica started by a test of this package
	}
	goleak.VerifyTestMain(m)
}

// countEvents returns how many events of kind with reason (any when "")
// rec heard.
func countEvents(rec *llmtest.Recorder, kind llm.EventKind, reason string) int {
	n := 0
	for _, ev := range rec.Events(kind) {
		if reason == "" || ev.Reason == reason {
			n++
		}
	}
	return n
}

// lastEvent returns the last event of kind rec heard.
func lastEvent(rec *llmtest.Recorder, kind llm.EventKind) (llm.Event, bool) {
	evs := rec.Events(kind)
	if len(evs) == 0 {
		return llm.Event{}, false
	}
	return evs[len(evs)-1], true
}

// liveRedis returns a client of the shared Redis ($LLMKIT_REDIS_ADDR) and
// a key prefix of this test's own, deleted when the test ends. Without
// Redis the test fails under CI and is skipped elsewhere.
func liveRedis(t testing.TB) (*goredis.Client, string) {
	t.Helper()
	return redistest.Live(t, cacheredis.Addr(), "limit:")
}

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tokensHeld returns the tokens the log of scope holds in Redis.
func tokensHeld(t *testing.T, rdb *goredis.Client, l *Limiter, scope string) int {
	t.Helper()
	n, err := rdb.HGet(context.Background(), l.storeKey(scope)+":h", "#t").Int()
	if err != nil && !errors.Is(err, goredis.Nil) {
		t.Fatal(err)
	}
	return n
}

func TestNewRejectsBadConfig(t *testing.T) {
	noTimeout := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer noTimeout.Close()
	rdb := redistest.Client("127.0.0.1:1")
	defer rdb.Close()
	var nilClient *goredis.Client
	for name, cfg := range map[string]Config{
		"no redis":             {},
		"nil client":           {Redis: nilClient},
		"no context timeout":   {Redis: noTimeout},
		"negative rpm":         {Redis: rdb, RPM: -1},
		"negative tpm":         {Redis: rdb, TPM: -1},
		"negative lease":       {Redis: rdb, Lease: -1},
		"tiny window":          {Redis: rdb, Window: time.Microsecond},
		"negative timeout":     {Redis: rdb, Timeout: -1},
		"unknown mode":         {Redis: rdb, OnRedisError: 7},
		"local share, no size": {Redis: rdb, OnRedisError: LocalShare},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := NewHints(nil, HintsConfig{}); err == nil {
		t.Error("NewHints accepted a nil client")
	}
	if _, err := NewHints(rdb, HintsConfig{Refresh: 2 * time.Second}); err == nil {
		t.Error("NewHints accepted a Refresh over 1 s")
	}
}

func TestConformance(t *testing.T) {
	rdb, prefix := liveRedis(t)
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, Name: "conf", RPM: 1 << 20, TPM: 1 << 30})
		return l.Middleware()(up)
	})
}

func TestRPMRefusesOverTheLimitPerKey(t *testing.T) {
	rdb, prefix := liveRedis(t)
	rec := &llmtest.Recorder{}
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, RPM: 3, Observer: rec})
	fake := &llmtest.Fake{}
	c := l.Middleware()(fake)
	ctx := context.Background()
	acme := &llm.Request{Messages: []llm.Message{llm.User("hi")}, Tenant: "acme"}
	for i := range 3 {
		if _, err := c.Generate(ctx, acme); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := c.Generate(ctx, acme)
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.KindRateLimited || e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
		t.Fatalf("4th call: %v, want rate_limited with a RetryAfter within the window", err)
	}
	if fake.Calls() != 3 {
		t.Fatalf("the provider saw %d calls, want 3", fake.Calls())
	}
	// Another tenant has a limit of its own.
	other := acme.Clone()
	other.Tenant = "globex"
	if _, err := c.Generate(ctx, other); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	if a, r := countEvents(rec, llm.EventLimit, "allowed"), countEvents(rec, llm.EventLimit, "rejected"); a != 4 || r != 1 {
		t.Fatalf("events: %d allowed, %d rejected; want 4 and 1", a, r)
	}
	if ev, _ := lastEvent(rec, llm.EventLimit); ev.Source != "limit" || ev.Request != other {
		t.Fatalf("event %+v: want Source limit and the caller's request", ev)
	}
}

func TestRetryAfterIsWhenTheOldestLeaves(t *testing.T) {
	rdb, prefix := liveRedis(t)
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, RPM: 1, Window: 10 * time.Second})
	c := l.Middleware()(&llmtest.Fake{})
	if _, err := c.Generate(context.Background(), llm.Prompt("a")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Generate(context.Background(), llm.Prompt("b"))
	// The only entry leaves 10 s after it was admitted, a moment ago.
	if ra := llm.RetryAfterOf(err); ra <= 5*time.Second || ra > 10*time.Second {
		t.Fatalf("RetryAfter %v, want just under the 10 s window", ra)
	}
}

func TestTokensAreReservedThenSettled(t *testing.T) {
	rdb, prefix := liveRedis(t)
	rec := &llmtest.Recorder{}
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, TPM: 1000, Observer: rec})
	used := llm.Usage{InputTokens: 40, OutputTokens: 60}
	fake := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Usage: used}}}
	c := l.Middleware()(fake)
	req := &llm.Request{Messages: []llm.Message{llm.User("hello there")}, MaxTokens: 400}
	reserve := req.EstimateInputTokens() + 400
	// Each call reserves `reserve` and keeps 100: the window holds 100 per
	// call settled, so calls pass while 100·n + reserve ≤ 1000.
	want := (1000-reserve)/100 + 1
	admitted := 0
	for range want + 1 {
		if _, err := c.Generate(context.Background(), req); err == nil {
			admitted++
		} else if llm.KindOf(err) != llm.KindRateLimited {
			t.Fatal(err)
		}
	}
	if admitted != want {
		t.Fatalf("%d calls admitted, want %d (without settling only %d would be)", admitted, want, 1000/reserve)
	}
	if got := tokensHeld(t, rdb, l, ""); got != 100*want {
		t.Fatalf("Redis holds %d tokens, want %d", got, 100*want)
	}
	if ev, _ := lastEvent(rec, llm.EventLimitSettle); ev.Tokens != 100 || ev.Err != nil {
		t.Fatalf("settle event %+v, want Tokens 100", ev)
	}
	if ev, _ := lastEvent(rec, llm.EventLimit); ev.Reason != "rejected" {
		t.Fatalf("last decision %+v, want rejected", ev)
	}
	if countEvents(rec, llm.EventLimit, "allowed") != want {
		t.Fatal("allowed events do not match the calls admitted")
	}
}

// TestSettledOnEveryPath checks what each way a call can end leaves
// reserved in Redis.
func TestSettledOnEveryPath(t *testing.T) {
	rdb, prefix := liveRedis(t)
	req := &llm.Request{Messages: []llm.Message{llm.User(strings.Repeat("word ", 40))}, MaxTokens: 500}
	input := req.EstimateInputTokens()
	canceled, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name   string
		step   llmtest.Step
		ctx    context.Context
		stream bool
		bare   bool // answer Text alone, with no Usage
		want   int
	}{
		{name: "success", step: llmtest.Step{Response: &llm.Response{Usage: llm.Usage{InputTokens: 50, OutputTokens: 7}}}, want: 57},
		{name: "success without usage", bare: true, want: input + 4},
		{name: "refused by the provider", step: llmtest.Step{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}}, want: 0},
		{name: "timeout", step: llmtest.Step{Err: &llm.Error{Kind: llm.KindTimeout}}, want: input},
		{name: "canceled", step: llmtest.Step{Hang: true}, ctx: canceled, want: input},
		{name: "cut stream", step: llmtest.Step{Chunks: []string{"abcd", "efgh", "ijkl"}, CutAfter: 2}, stream: true, want: input + 2},
		{name: "streamed", step: llmtest.Step{Chunks: []string{"abcd", "efgh"}, Response: &llm.Response{Usage: llm.Usage{InputTokens: 9, OutputTokens: 2}}}, stream: true, want: 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, Name: strings.ReplaceAll(tc.name, " ", "_"), TPM: 100000})
			step := tc.step
			var up llm.Client = &llmtest.Fake{Func: func(int, *llm.Request) llmtest.Step {
				if step.Hang {
					cancel()
				}
				return step
			}}
			if tc.bare {
				up = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
					return &llm.Response{Text: "four byte text!!"}, nil
				})
			}
			c := l.Middleware()(up)
			r := req.Clone()
			if tc.stream {
				r.Stream = func(llm.Chunk) error { return nil }
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			c.Generate(ctx, r)
			if got := tokensHeld(t, rdb, l, ""); got != tc.want {
				t.Fatalf("Redis holds %d tokens after the call, want %d (reserved %d)", got, tc.want, input+500)
			}
		})
	}
}

func TestPanicKeepsTheReservation(t *testing.T) {
	rdb, prefix := liveRedis(t)
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, TPM: 10000})
	c := l.Middleware()(&llmtest.Fake{Default: llmtest.Step{Panic: "boom"}})
	req := &llm.Request{Messages: []llm.Message{llm.User("hi")}, MaxTokens: 100}
	func() {
		defer func() { recover() }()
		c.Generate(context.Background(), req)
	}()
	if got, want := tokensHeld(t, rdb, l, ""), req.EstimateInputTokens()+100; got != want {
		t.Fatalf("after a panic Redis holds %d tokens, want the reservation %d", got, want)
	}
}

func TestLargeCallWaitsForAnEmptyWindow(t *testing.T) {
	rdb, prefix := liveRedis(t)
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, TPM: 100, Window: time.Hour})
	c := l.Middleware()(&llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Usage: llm.Usage{InputTokens: 1}}}})
	big := &llm.Request{Messages: []llm.Message{llm.User("x")}, MaxTokens: 5000}
	if _, err := c.Generate(context.Background(), big); err != nil {
		t.Fatalf("a call larger than the TPM in an empty window: %v", err)
	}
	if _, err := c.Generate(context.Background(), big); llm.KindOf(err) != llm.KindRateLimited {
		t.Fatalf("a second one: %v, want rate_limited", err)
	}
}

func TestRedisKeysHoldNoRawScope(t *testing.T) {
	rdb, prefix := liveRedis(t)
	secret := "sk-live-THISISASECRETKEY"
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, RPM: 10, TPM: 1000, Key: func(r *llm.Request) string { return r.Tenant }})
	c := l.Middleware()(&llmtest.Fake{})
	if _, err := c.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.User("x")}, Tenant: secret}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v: want the log and its hash", keys, err)
	}
	for _, k := range keys {
		if strings.Contains(k, secret) || !strings.Contains(k, "{") {
			t.Fatalf("key %q holds the raw scope or no hash tag", k)
		}
	}
}

func TestLimitsPerCall(t *testing.T) {
	rdb, prefix := liveRedis(t)
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, Limits: func(r *llm.Request) (int, int) {
		if r.Tenant == "free" {
			return 1, 0
		}
		return 0, 0 // unlimited
	}})
	fake := &llmtest.Fake{}
	c := l.Middleware()(fake)
	free := &llm.Request{Messages: []llm.Message{llm.User("x")}, Tenant: "free"}
	pro := &llm.Request{Messages: []llm.Message{llm.User("x")}, Tenant: "pro"}
	c.Generate(context.Background(), free)
	if _, err := c.Generate(context.Background(), free); llm.KindOf(err) != llm.KindRateLimited {
		t.Fatalf("free tier second call: %v", err)
	}
	for range 5 {
		if _, err := c.Generate(context.Background(), pro); err != nil {
			t.Fatal(err)
		}
	}
	if keys, _ := rdb.Keys(context.Background(), prefix+"*").Result(); len(keys) != 2 {
		t.Fatalf("keys %v: an unlimited call should not touch Redis", keys)
	}
}

func TestCanceledCallIsNotDecided(t *testing.T) {
	rdb, prefix := liveRedis(t)
	rec := &llmtest.Recorder{}
	l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, RPM: 5, Observer: rec})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Middleware()(&llmtest.Fake{}).Generate(ctx, llm.Prompt("x")); llm.KindOf(err) != llm.KindCanceled {
		t.Fatalf("%v, want canceled", err)
	}
	if countEvents(rec, llm.EventLimit, "") != 0 {
		t.Fatal("a canceled call was decided")
	}
}
