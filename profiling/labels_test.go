package profiling

import (
	"bytes"
	"context"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// seen returns a client that records the pprof labels its context carries.
func labelRecorder(got *[]map[string]string, mu *sync.Mutex) llm.Client {
	return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		m := map[string]string{}
		pprof.ForLabels(ctx, func(k, v string) bool { m[k] = v; return true })
		mu.Lock()
		*got = append(*got, m)
		mu.Unlock()
		return &llm.Response{Text: "ok"}, nil
	})
}

func mustLabels(t testing.TB, opts ...LabelOption) llm.Middleware {
	t.Helper()
	mw, err := Labels(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestLabelsValues(t *testing.T) {
	tests := []struct {
		name string
		opts []LabelOption
		req  llm.Request
		want map[string]string
	}{
		{"plain", nil, llm.Request{Endpoint: "summarize", Model: "m1", Tenant: "acme"},
			map[string]string{"endpoint": "summarize", "model": "m1"}},
		{"unset", nil, llm.Request{},
			map[string]string{"endpoint": Unset, "model": Unset}},
		{"allow-lists", []LabelOption{Endpoints("chat"), Models("m1")},
			llm.Request{Endpoint: "summarize", Model: "m1"},
			map[string]string{"endpoint": Other, "model": "m1"}},
		{"tenant opt-in", []LabelOption{Tenant()}, llm.Request{Endpoint: "e", Model: "m", Tenant: "acme"},
			map[string]string{"endpoint": "e", "model": "m", "tenant": "acme"}},
		{"tenant allow-list", []LabelOption{Tenant("acme")}, llm.Request{Endpoint: "e", Model: "m", Tenant: "evil"},
			map[string]string{"endpoint": "e", "model": "m", "tenant": Other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []map[string]string
			var mu sync.Mutex
			c := mustLabels(t, tt.opts...)(labelRecorder(&got, &mu))
			if _, err := c.Generate(context.Background(), &tt.req); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !equalMaps(got[0], tt.want) {
				t.Fatalf("labels = %v, want %v", got, tt.want)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestLabelsBounded(t *testing.T) {
	var got []map[string]string
	var mu sync.Mutex
	c := mustLabels(t, MaxLabelSets(2))(labelRecorder(&got, &mu))
	for _, ep := range []string{"a", "b", "c", "a", "d"} {
		if _, err := c.Generate(context.Background(), &llm.Request{Endpoint: ep, Model: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a", "b", Other, "a", Other}
	for i, w := range want {
		if got[i]["endpoint"] != w {
			t.Fatalf("call %d: endpoint label %q, want %q (all: %v)", i, got[i]["endpoint"], w, got)
		}
	}
	if got[2]["model"] != Other {
		t.Fatalf("overflow combination kept model %q, want %q", got[2]["model"], Other)
	}
}

func TestLabelsAllowListedSurviveJunk(t *testing.T) {
	// Junk models fill the raw table but bound to one set, so an
	// allow-listed model seen later still gets its own label.
	var got []map[string]string
	var mu sync.Mutex
	c := mustLabels(t, MaxLabelSets(2), Models("good"))(labelRecorder(&got, &mu))
	for i := range 10 {
		c.Generate(context.Background(), &llm.Request{Endpoint: "e", Model: "junk" + string(rune('a'+i))})
	}
	c.Generate(context.Background(), &llm.Request{Endpoint: "e", Model: "good"})
	if last := got[len(got)-1]; last["model"] != "good" {
		t.Fatalf("allow-listed model labelled %v after junk", last)
	}
}

func TestLabelsClipLongValues(t *testing.T) {
	var got []map[string]string
	var mu sync.Mutex
	c := mustLabels(t)(labelRecorder(&got, &mu))
	long := string(bytes.Repeat([]byte("é"), 200))
	c.Generate(context.Background(), &llm.Request{Endpoint: long, Model: "m"})
	if n := len(got[0]["endpoint"]); n > maxValueLen || n == 0 {
		t.Fatalf("endpoint label of %d bytes, want 1..%d", n, maxValueLen)
	}
}

func TestLabelsKeepOuterLabels(t *testing.T) {
	var got []map[string]string
	var mu sync.Mutex
	c := mustLabels(t)(labelRecorder(&got, &mu))
	pprof.Do(context.Background(), pprof.Labels("job", "nightly"), func(ctx context.Context) {
		c.Generate(ctx, &llm.Request{Endpoint: "e", Model: "m"})
	})
	if got[0]["job"] != "nightly" || got[0]["endpoint"] != "e" {
		t.Fatalf("labels = %v, want the outer job label kept", got[0])
	}
}

func TestLabelsOptionErrors(t *testing.T) {
	for name, opt := range map[string]LabelOption{
		"MaxLabelSets(0)": MaxLabelSets(0),
		"Endpoints(\"\")": Endpoints(""),
		"Models(\"\")":    Models("x", ""),
		"Tenant(\"\")":    Tenant(""),
	} {
		if _, err := Labels(opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Labels(nil); err != nil {
		t.Errorf("nil option: %v", err)
	}
}

func TestLabelsAllocs(t *testing.T) {
	c := mustLabels(t)(llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return nil, nil
	}))
	req := &llm.Request{Endpoint: "summarize", Model: "m1"}
	ctx := context.Background()
	c.Generate(ctx, req)
	if n := testing.AllocsPerRun(1000, func() { c.Generate(ctx, req) }); n > 1 {
		t.Fatalf("%v allocs per call, budget 1", n)
	}
}

// burn spins for d of wall time: enough for the 100 Hz CPU profiler to
// take samples, bounded so the test cannot run away.
func burn(d time.Duration) uint64 {
	var x uint64 = 1
	for start := time.Now(); time.Since(start) < d; {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}

var sinkU64 atomic.Uint64

func TestLabelsInCPUProfile(t *testing.T) {
	c := mustLabels(t)(llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		sinkU64.Add(burn(300 * time.Millisecond))
		return &llm.Response{Text: "ok"}, nil
	}))
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, ep := range []string{"summarize", "chat"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Generate(context.Background(), &llm.Request{Endpoint: ep, Model: "m-" + ep})
		}()
	}
	wg.Wait()
	pprof.StopCPUProfile()
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, s := range p.Sample {
		ep, model := s.Label["endpoint"], s.Label["model"]
		if len(ep) == 1 && len(model) == 1 && model[0] == "m-"+ep[0] {
			found[ep[0]]++
		}
	}
	if found["summarize"] == 0 || found["chat"] == 0 {
		t.Fatalf("labelled samples per endpoint = %v, want both endpoints (of %d samples)", found, len(p.Sample))
	}
}

func TestLabelsConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		return mustLabels(t, Tenant())(up)
	})
}
