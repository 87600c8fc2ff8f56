package sim_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/provider/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// instant is a configuration without latency.
var instant = sim.Config{Seed: 42, TTFT: -1, PerToken: -1}

func newModel(t testing.TB, cfg sim.Config) *sim.Model {
	t.Helper()
	m, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return m
}

func generate(t testing.TB, m *sim.Model, req *llm.Request) *llm.Response {
	t.Helper()
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return resp
}

// timed runs one call and reports how long it took in the bubble's time.
func timed(ctx context.Context, m *sim.Model, req *llm.Request) (*llm.Response, time.Duration, error) {
	start := time.Now()
	resp, err := m.Generate(ctx, req)
	return resp, time.Since(start), err
}

func TestConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, _ llm.Client) llm.Client {
		return newModel(t, instant)
	}, llmtest.Standalone())
}

func TestDeterministic(t *testing.T) {
	a, b := newModel(t, instant), newModel(t, instant)
	req := &llm.Request{System: "Be brief.", Messages: []llm.Message{llm.User("Why is the sky blue?")}}
	first := generate(t, a, req).Text
	if again := generate(t, a, req).Text; again != first {
		t.Fatalf("same model, same request: %q then %q", first, again)
	}
	if other := generate(t, b, req).Text; other != first {
		t.Fatalf("same seed, another model: %q vs %q", other, first)
	}

	// Anything that decides the answer changes it.
	variants := map[string]*llm.Request{
		"prompt": {System: "Be brief.", Messages: []llm.Message{llm.User("Why is the sea blue?")}},
		"system": {System: "Be long.", Messages: []llm.Message{llm.User("Why is the sky blue?")}},
		"model":  {Model: "sim-2", System: "Be brief.", Messages: []llm.Message{llm.User("Why is the sky blue?")}},
		"seed":   {System: "Be brief.", Messages: []llm.Message{llm.User("Why is the sky blue?")}, Seed: llm.Ptr(int64(1))},
		"role":   {System: "Be brief.", Messages: []llm.Message{llm.Assistant("Why is the sky blue?"), llm.User("?")}},
	}
	for name, v := range variants {
		if got := generate(t, a, v).Text; got == first {
			t.Errorf("%s changed but the answer did not: %q", name, got)
		}
	}
	seeded := instant
	seeded.Seed++
	if got := generate(t, newModel(t, seeded), req).Text; got == first {
		t.Errorf("Config.Seed changed but the answer did not: %q", got)
	}

	// Caller metadata and sampling knobs do not.
	same := *req
	same.Endpoint, same.Tenant, same.Temperature = "chat", "acme", llm.Ptr(1.5)
	if got := generate(t, a, &same).Text; got != first {
		t.Errorf("metadata changed the answer: %q vs %q", got, first)
	}
}

func TestAnswerShape(t *testing.T) {
	m := newModel(t, instant)
	ids := map[string]bool{}
	for i := range 200 {
		req := llm.Prompt(fmt.Sprintf("question %d", i))
		resp := generate(t, m, req)
		words := strings.Fields(resp.Text)
		if n := resp.Usage.OutputTokens; n != len(words) || n < sim.DefaultMinTokens || n > sim.DefaultMaxTokens {
			t.Fatalf("OutputTokens %d, %d words, want equal and in [%d, %d]", n, len(words), sim.DefaultMinTokens, sim.DefaultMaxTokens)
		}
		if strings.Join(words, " ") != resp.Text {
			t.Fatalf("words not separated by single spaces: %q", resp.Text)
		}
		if !strings.HasSuffix(resp.Text, ".") || resp.Text[0] < 'A' || resp.Text[0] > 'Z' {
			t.Fatalf("answer is not whole sentences: %q", resp.Text)
		}
		if got, want := resp.Usage.InputTokens, req.EstimateInputTokens(); got != want {
			t.Fatalf("InputTokens %d, want %d", got, want)
		}
		if resp.Usage.CachedInputTokens != 0 || resp.Cached || resp.Degraded || resp.Attempts != 0 {
			t.Fatalf("decorator fields set: %+v", resp)
		}
		if resp.FinishReason != llm.FinishStop || resp.Model != sim.DefaultModel {
			t.Fatalf("finish %q model %q", resp.FinishReason, resp.Model)
		}
		if !strings.HasPrefix(resp.ID, "sim-") || ids[resp.ID] {
			t.Fatalf("ID %q: want a new sim-<hex>", resp.ID)
		}
		ids[resp.ID] = true
	}

	req := llm.Prompt("hi")
	req.Model = "sim-large"
	if got := generate(t, m, req).Model; got != "sim-large" {
		t.Errorf("Model = %q, want the request's", got)
	}
	if got := generate(t, newModel(t, sim.Config{Model: "mine", TTFT: -1, PerToken: -1}), llm.Prompt("hi")).Model; got != "mine" {
		t.Errorf("Model = %q, want the config's", got)
	}
}

func TestTokenBounds(t *testing.T) {
	for _, tc := range []struct{ min, max, wantMin, wantMax int }{
		{3, 5, 3, 5},
		{7, 7, 7, 7},
		{0, 8, 8, 8}, // MinTokens follows a small MaxTokens
		{0, 200, 16, 200},
		{150, 0, 150, 150},
		{1, 0, 1, 96},
	} {
		cfg := instant
		cfg.MinTokens, cfg.MaxTokens = tc.min, tc.max
		m := newModel(t, cfg)
		lo, hi := math.MaxInt, 0
		for i := range 300 {
			n := generate(t, m, llm.Prompt(fmt.Sprint(i))).Usage.OutputTokens
			lo, hi = min(lo, n), max(hi, n)
		}
		if lo < tc.wantMin || hi > tc.wantMax {
			t.Errorf("Min %d Max %d: lengths in [%d, %d], want within [%d, %d]", tc.min, tc.max, lo, hi, tc.wantMin, tc.wantMax)
		}
		if tc.wantMax-tc.wantMin >= 2 && (lo == hi) {
			t.Errorf("Min %d Max %d: every answer has %d words", tc.min, tc.max, lo)
		}
	}
}

func TestRequestMaxTokens(t *testing.T) {
	m := newModel(t, instant)
	req := llm.Prompt("tell me everything")
	full := generate(t, m, req)
	n := full.Usage.OutputTokens

	capped := *req
	capped.MaxTokens = 5
	resp := generate(t, m, &capped)
	if resp.Usage.OutputTokens != 5 || resp.FinishReason != llm.FinishLength {
		t.Fatalf("capped: %d tokens, finish %q; want 5, length", resp.Usage.OutputTokens, resp.FinishReason)
	}
	if !strings.HasPrefix(full.Text, resp.Text+" ") {
		t.Fatalf("capped answer %q is not a prefix of %q", resp.Text, full.Text)
	}

	for _, limit := range []int{n, n + 1, 4096} {
		capped.MaxTokens = limit
		resp := generate(t, m, &capped)
		if resp.Text != full.Text || resp.FinishReason != llm.FinishStop {
			t.Fatalf("MaxTokens %d >= %d: %q finish %q, want the full answer and stop", limit, n, resp.Text, resp.FinishReason)
		}
	}
}

func TestValidatesFirst(t *testing.T) {
	m := newModel(t, sim.Config{Errors: map[llm.Kind]float64{llm.KindUnavailable: 1}})
	bad := &llm.Request{Messages: []llm.Message{llm.User("  ")}}
	want := bad.Validate()
	resp, err := m.Generate(context.Background(), bad)
	if resp != nil || err == nil || !reflect.DeepEqual(err, want) || !errors.Is(err, llm.ErrBadRequest) {
		t.Fatalf("Generate(invalid) = %v, %v; want Validate's error", resp, err)
	}
	if _, err := m.Generate(context.Background(), nil); !errors.Is(err, llm.ErrBadRequest) {
		t.Fatalf("Generate(nil) = %v, want bad_request", err)
	}
}

// deepCopy copies every part of a request Generate could modify.
func deepCopy(r *llm.Request) *llm.Request {
	c := *r
	c.Messages = append([]llm.Message(nil), r.Messages...)
	c.Stop = append([]string(nil), r.Stop...)
	c.Temperature, c.TopP, c.Seed = llm.Ptr(*r.Temperature), llm.Ptr(*r.TopP), llm.Ptr(*r.Seed)
	c.Extra = map[string]any{}
	for k, v := range r.Extra {
		c.Extra[k] = v
	}
	c.Stream = nil
	return &c
}

func TestRequestNotModified(t *testing.T) {
	m := newModel(t, instant)
	for _, stream := range []bool{false, true} {
		req := &llm.Request{
			Model:       "sim-x",
			System:      "sys",
			Messages:    []llm.Message{llm.User("a"), llm.Assistant("b"), llm.User("c")},
			MaxTokens:   10,
			Temperature: llm.Ptr(0.0),
			TopP:        llm.Ptr(0.5),
			Seed:        llm.Ptr(int64(3)),
			Stop:        []string{"x"},
			Extra:       map[string]any{"k": "v"},
			Endpoint:    "e",
			Tenant:      "t",
			Cache:       llm.CacheBypass,
		}
		if stream {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		fn := reflect.ValueOf(req.Stream).Pointer()
		want := deepCopy(req)
		generate(t, m, req)
		if reflect.ValueOf(req.Stream).Pointer() != fn {
			t.Fatal("Stream replaced")
		}
		if got := deepCopy(req); !reflect.DeepEqual(got, want) {
			t.Fatalf("stream=%v: request modified:\n got %+v\nwant %+v", stream, got, want)
		}
	}
}

func TestQuota(t *testing.T) {
	m := newModel(t, sim.Config{TTFT: -1, PerToken: -1, QuotaRequests: 3, QuotaTokens: 1000})
	var used int64
	for i, wantReq := range []int64{2, 1, 0, 2, 1} {
		resp := generate(t, m, llm.Prompt(fmt.Sprint(i)))
		q := resp.Quota
		if q == nil {
			t.Fatal("no quota")
		}
		used += int64(resp.Usage.Total())
		if q.LimitRequests != 3 || q.RemainingRequests != wantReq {
			t.Fatalf("call %d: requests %d of %d, want %d of 3", i, q.RemainingRequests, q.LimitRequests, wantReq)
		}
		if q.LimitTokens != 1000 || q.RemainingTokens != 1000-used%1000 {
			t.Fatalf("call %d: tokens %d of %d, want %d of 1000", i, q.RemainingTokens, q.LimitTokens, 1000-used%1000)
		}
	}

	q := generate(t, newModel(t, instant), llm.Prompt("x")).Quota
	if q == nil || q.LimitRequests != sim.DefaultQuotaRequests || q.LimitTokens != sim.DefaultQuotaTokens {
		t.Fatalf("default quota %+v", q)
	}
	q = generate(t, newModel(t, sim.Config{TTFT: -1, PerToken: -1, QuotaRequests: -1}), llm.Prompt("x")).Quota
	if q == nil || q.LimitRequests != llm.QuotaUnknown || q.RemainingRequests != llm.QuotaUnknown || q.LimitTokens != sim.DefaultQuotaTokens {
		t.Fatalf("quota without requests %+v", q)
	}
	if q := generate(t, newModel(t, sim.Config{TTFT: -1, PerToken: -1, QuotaRequests: -1, QuotaTokens: -1}), llm.Prompt("x")).Quota; q != nil {
		t.Fatalf("quota %+v, want nil when both are off", q)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  sim.Config
		want string
	}{
		"jitter above 1":   {sim.Config{Jitter: 1.5}, "jitter"},
		"jitter NaN":       {sim.Config{Jitter: math.NaN()}, "jitter"},
		"negative min":     {sim.Config{MinTokens: -1}, "negative token"},
		"negative max":     {sim.Config{MaxTokens: -1}, "negative token"},
		"min above max":    {sim.Config{MinTokens: 10, MaxTokens: 5}, "exceeds MaxTokens"},
		"max too large":    {sim.Config{MaxTokens: 1 << 30}, "exceeds"},
		"negative rate":    {sim.Config{Errors: map[llm.Kind]float64{llm.KindTimeout: -0.1}}, "not in [0, 1]"},
		"rate above 1":     {sim.Config{Errors: map[llm.Kind]float64{llm.KindTimeout: 1.1}}, "not in [0, 1]"},
		"rate NaN":         {sim.Config{Errors: map[llm.Kind]float64{llm.KindTimeout: math.NaN()}}, "not in [0, 1]"},
		"rates sum over 1": {sim.Config{Errors: map[llm.Kind]float64{llm.KindTimeout: 0.6, llm.KindAuth: 0.5}}, "sum to"},
		"unknown kind":     {sim.Config{Errors: map[llm.Kind]float64{llm.Kind(200): 0.1}}, "unknown kind 200"},
		"canceled":         {sim.Config{Errors: map[llm.Kind]float64{llm.KindCanceled: 0.1}}, "cannot fail with kind canceled"},
		"circuit open":     {sim.Config{Errors: map[llm.Kind]float64{llm.KindCircuitOpen: 0.1}}, "cannot fail with kind circuit_open"},
	} {
		m, err := sim.New(tc.cfg)
		if err == nil || m != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, m, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "sim: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to mention %q", name, err, tc.want)
		}
	}

	// Edge values that are fine.
	for _, cfg := range []sim.Config{
		{},
		{Jitter: 1},
		{Jitter: -3, TTFT: -time.Hour, PerToken: -1, RetryAfter: -1, QuotaRequests: -5, QuotaTokens: -5},
		{Errors: map[llm.Kind]float64{llm.KindTimeout: 0.1, llm.KindAuth: 0.2, llm.KindOverloaded: 0.7}},
		{Errors: map[llm.Kind]float64{llm.KindUnknown: 0, llm.KindStreamCut: 1}},
		{MinTokens: 1, MaxTokens: 1},
	} {
		if _, err := sim.New(cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("MustNew did not panic on a bad config")
		}
	}()
	sim.MustNew(sim.Config{Jitter: 2})
}

func TestConcurrentSetters(t *testing.T) {
	m := newModel(t, instant)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				switch w {
				case 0:
					if err := m.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: float64(i%2) / 2}); err != nil {
						t.Error(err)
					}
				case 1:
					m.SetLatency(-1, -1)
				default:
					resp, err := m.Generate(context.Background(), llm.Prompt(fmt.Sprint(w, i)))
					if (resp == nil) == (err == nil) {
						t.Errorf("resp %v err %v", resp, err)
					}
					if err != nil && !errors.Is(err, llm.ErrUnavailable) {
						t.Errorf("unexpected error %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestConcurrent5000(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{Seed: 7}) // defaults: 50ms + 5ms a word, 20% jitter
		const calls = 5000
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		start := time.Now()
		for i := range calls {
			wg.Go(func() {
				resp, err := m.Generate(t.Context(), llm.Prompt(fmt.Sprintf("load %d", i)))
				if err == nil && resp.Text == "" {
					err = errors.New("empty answer")
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("call failed: %v", err)
		}
		// All ran at once: the batch took as long as the slowest call.
		longest := time.Duration(1.2 * float64(sim.DefaultTTFT+sim.DefaultMaxTokens*sim.DefaultPerToken))
		if took := time.Since(start); took <= 0 || took > longest {
			t.Fatalf("5000 concurrent calls took %v of fake time, want within (0, %v]", took, longest)
		}
	})
}
