package profiling

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/pprof/profile"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// fakeRecorder stands in for the CPU profiler and flight recorder: it
// counts windows begun and ended.
type fakeRecorder struct {
	mu           sync.Mutex
	begins, ends int
	collected    []Capture
}

func (f *fakeRecorder) begin() func() ([]artefact, error) {
	f.mu.Lock()
	f.begins++
	f.mu.Unlock()
	return func() ([]artefact, error) {
		f.mu.Lock()
		f.ends++
		f.mu.Unlock()
		return []artefact{{KindTrace, []byte("fake trace")}}, nil
	}
}

func (f *fakeRecorder) Save(c Capture) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.collected = append(f.collected, c)
	return nil
}

func (f *fakeRecorder) counts() (begins, ends int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.begins, f.ends
}

func (f *fakeRecorder) captures() []Capture {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Capture(nil), f.collected...)
}

func newFakeCapturer(t *testing.T, opts ...CaptureOption) (*Capturer, *fakeRecorder) {
	t.Helper()
	rec := &fakeRecorder{}
	opts = append([]CaptureOption{OnError(func(err error) { t.Errorf("capture error: %v", err) })}, opts...)
	c, err := newCapturer(rec, rec.begin, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func req(endpoint, model string) *llm.Request {
	return &llm.Request{Endpoint: endpoint, Model: model, Messages: []llm.Message{llm.User("hi")}}
}

func TestCaptureSlowCallsOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond), Interval(time.Minute))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 200 * time.Millisecond}})
		start := time.Now()
		// 1050 slow calls one after another: 210 s of fake time, so the
		// interval allows captures at about 0.1 s, 60.1 s, 120.1 s, 180.1 s.
		for range 1050 {
			if _, err := client.Generate(context.Background(), req("summarize", "gpt-4o")); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		got := rec.captures()
		begins, ends := rec.counts()
		if len(got) != 4 || begins != 4 || ends != 4 {
			t.Fatalf("%d captures (%d begun, %d ended) in 210 s of slow calls, want 4", len(got), begins, ends)
		}
		for i, cp := range got {
			if cp.Reason != ReasonSlow || cp.Endpoint != "summarize" || cp.Model != "gpt-4o" || cp.Kind != KindTrace {
				t.Fatalf("capture %d = %+v", i, cp)
			}
			// Triggered at the threshold, the window lasts until the call
			// returns 100 ms later.
			if cp.Window != 100*time.Millisecond {
				t.Fatalf("capture %d window %v, want 100ms", i, cp.Window)
			}
			if i > 0 && cp.Time.Sub(got[i-1].Time) < time.Minute {
				t.Fatalf("captures %d and %d only %v apart", i-1, i, cp.Time.Sub(got[i-1].Time))
			}
		}
		if d := got[0].Time.Sub(start); d != 100*time.Millisecond {
			t.Fatalf("first capture %v after start, want at the 100ms threshold", d)
		}
	})
}

func TestCaptureFastCallsNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond), Interval(time.Second))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 99 * time.Millisecond}})
		for range 200 {
			client.Generate(context.Background(), req("chat", "m"))
		}
		c.Close()
		if begins, _ := rec.counts(); begins != 0 || len(rec.captures()) != 0 {
			t.Fatalf("fast calls began %d captures, saved %d; want none", begins, len(rec.captures()))
		}
	})
}

func TestCaptureConcurrentSlowCallsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: time.Second}})
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { client.Generate(context.Background(), req("chat", "m")) })
		}
		wg.Wait()
		c.Close()
		if n, begins := len(rec.captures()), first(rec.counts()); n != 1 || begins != 1 {
			t.Fatalf("20 concurrent slow calls: %d captures, %d begun; want 1", n, begins)
		}
	})
}

func TestCaptureSample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Sample(5), Interval(time.Millisecond))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 10 * time.Millisecond}})
		for range 20 {
			client.Generate(context.Background(), req("chat", "m"))
		}
		c.Close()
		got := rec.captures()
		if len(got) != 4 {
			t.Fatalf("Sample(5) over 20 calls: %d captures, want 4", len(got))
		}
		for _, cp := range got {
			// MaxWindow defaults to the 1 ms interval, ending the window
			// before the 10 ms call returns.
			if cp.Reason != ReasonSampled || cp.Window != time.Millisecond {
				t.Fatalf("capture %+v, want sampled with a 1ms window", cp)
			}
		}
	})
}

func TestCaptureSampledWindowCoversCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Sample(1))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 3 * time.Second}})
		client.Generate(context.Background(), req("chat", "m"))
		client.Generate(context.Background(), req("chat", "m")) // inside the interval
		c.Close()
		got := rec.captures()
		if len(got) != 1 || got[0].Window != 3*time.Second {
			t.Fatalf("captures %+v, want one whose window is the whole 3s call", got)
		}
	})
}

func TestCaptureHungCallEndsAtMaxWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond), MaxWindow(5*time.Second))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Hang: true}})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done := make(chan struct{})
		go func() {
			client.Generate(ctx, req("chat", "m"))
			close(done)
		}()
		time.Sleep(6 * time.Second) // fake time: the call is still hanging
		synctest.Wait()
		got := rec.captures()
		if len(got) != 1 || got[0].Window != 5*time.Second {
			t.Fatalf("captures of a hung call %+v, want one with a 5s window", got)
		}
		cancel()
		<-done
		c.Close()
	})
}

func TestCaptureCPUMinimumWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond), CPUProfile(2*time.Second))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 200 * time.Millisecond}})
		client.Generate(context.Background(), req("chat", "m"))
		synctest.Wait()
		if _, ends := rec.counts(); ends != 0 {
			t.Fatal("window ended when the call returned, before the CPU minimum")
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		got := rec.captures()
		if len(got) != 1 || got[0].Window != 2*time.Second {
			t.Fatalf("captures %+v, want one with the 2s minimum window", got)
		}
		c.Close()
	})
}

func TestCaptureCloseEndsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Sample(1), CPUProfile(10*time.Second))
		client := c.Middleware(&llmtest.Fake{})
		client.Generate(context.Background(), req("chat", "m"))
		c.Close()
		if len(rec.captures()) != 1 {
			t.Fatal("Close did not save the open window")
		}
		time.Sleep(time.Hour)
		client.Generate(context.Background(), req("chat", "m"))
		synctest.Wait()
		if begins, _ := rec.counts(); begins != 1 {
			t.Fatalf("a call after Close began a capture")
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCaptureSinkErrorReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &fakeRecorder{}
		boom := errors.New("disk full")
		var mu sync.Mutex
		var got []error
		c, err := newCapturer(SinkFunc(func(Capture) error { return boom }), rec.begin, Sample(1),
			OnError(func(err error) { mu.Lock(); got = append(got, err); mu.Unlock() }))
		if err != nil {
			t.Fatal(err)
		}
		c.Middleware(&llmtest.Fake{}).Generate(context.Background(), req("chat", "m"))
		c.Close()
		if len(got) != 1 || !errors.Is(got[0], boom) {
			t.Fatalf("errors reported %v, want the sink's", got)
		}
	})
}

func TestCaptureOptionErrors(t *testing.T) {
	rec := &fakeRecorder{}
	cases := map[string][]CaptureOption{
		"no trigger":         {Interval(time.Second)},
		"Threshold(0)":       {Threshold(0)},
		"Sample(0)":          {Sample(0)},
		"Interval(0)":        {Sample(1), Interval(0)},
		"MaxWindow>Interval": {Sample(1), Interval(time.Second), MaxWindow(2 * time.Second)},
		"nothing to capture": {Sample(1), NoTrace()},
		"CPU min>MaxWindow":  {Sample(1), MaxWindow(time.Second), CPUProfile(2 * time.Second)},
		"CPU min<0":          {Sample(1), CPUProfile(-1)},
		"empty endpoint":     {Sample(1), Endpoints("")},
	}
	for name, opts := range cases {
		if _, err := newCapturer(rec, rec.begin, opts...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewCapturer(nil, Sample(1)); err == nil {
		t.Error("nil sink: no error")
	}
}

func TestCaptureConformance(t *testing.T) {
	c, _ := newFakeCapturer(t, Threshold(time.Millisecond), Sample(3), Interval(time.Millisecond))
	defer c.Close()
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client { return c.Middleware(up) })
}

// TestCaptureRealEndToEnd runs the real flight recorder and CPU profiler
// and checks the files a DirSink writes parse.
func TestCaptureRealEndToEnd(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCapturer(sink, Sample(1), CPUProfile(200*time.Millisecond),
		OnError(func(err error) { t.Errorf("capture error: %v", err) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCapturer(sink, Sample(1)); err == nil {
		t.Error("a second flight recorder started while one runs")
	}
	client := c.Middleware(llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		sinkU64.Add(burn(50 * time.Millisecond))
		return &llm.Response{Text: "ok"}, nil
	}))
	if _, err := client.Generate(context.Background(), req("sum/marize", "gpt 4o")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	files, err := sink.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("files %v, want a trace and a CPU profile", files)
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains([]byte(name), []byte("_sampled_sum_marize_gpt_4o.")) {
			t.Errorf("file name %q lacks the sanitized reason, endpoint and model", name)
		}
		switch filepath.Ext(name) {
		case ".trace":
			if !bytes.HasPrefix(data, []byte("go 1.")) || len(data) < 100 {
				t.Errorf("%s: %d bytes without a Go trace header", name, len(data))
			}
		case ".gz":
			if _, err := profile.ParseData(data); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			t.Errorf("unexpected file %s", name)
		}
	}
	// The flight recorder was stopped: a new one can start.
	c2, err := NewCapturer(sink, Sample(1))
	if err != nil {
		t.Fatalf("flight recorder not released by Close: %v", err)
	}
	c2.Close()
}

func TestCaptureCPUProfileBusy(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatal(err)
	}
	defer pprof.StopCPUProfile()
	var mu sync.Mutex
	var errs []error
	var kinds []string
	c, err := NewCapturer(SinkFunc(func(cp Capture) error { mu.Lock(); kinds = append(kinds, cp.Kind); mu.Unlock(); return nil }),
		Sample(1), CPUProfile(0), OnError(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	c.Middleware(&llmtest.Fake{}).Generate(context.Background(), req("chat", "m"))
	c.Close()
	if len(errs) != 1 || !errors.Is(errs[0], ErrCPUProfileBusy) {
		t.Fatalf("errors %v, want ErrCPUProfileBusy", errs)
	}
	if len(kinds) != 1 || kinds[0] != KindTrace {
		t.Fatalf("saved %v, want the trace alone", kinds)
	}
}

func first(a, _ int) int { return a }

func TestCaptureNoTriggerAllocs(t *testing.T) {
	for _, opt := range []CaptureOption{Threshold(time.Hour), Sample(1 << 40)} {
		c, _ := newFakeCapturer(t, opt)
		client := c.Middleware(llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return nil, nil }))
		r := req("chat", "m")
		ctx := context.Background()
		client.Generate(ctx, r)
		if n := testing.AllocsPerRun(1000, func() { client.Generate(ctx, r) }); n != 0 {
			t.Errorf("uncaptured call: %v allocs, want 0", n)
		}
		c.Close()
	}
}

func TestCapturePanicEndsWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newFakeCapturer(t, Threshold(100*time.Millisecond), Sample(2), MaxWindow(time.Minute))
		client := c.Middleware(&llmtest.Fake{Default: llmtest.Step{Latency: 10 * time.Millisecond, Panic: "boom"}})
		for range 2 { // the first is watched by the threshold, the second sampled
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("panic swallowed")
					}
				}()
				client.Generate(context.Background(), req("chat", "m"))
			}()
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := rec.captures()
		// Only the sampled call captured, and its window ended with the
		// panic (10 ms), not at MaxWindow; the threshold timer never fired.
		if len(got) != 1 || got[0].Reason != ReasonSampled || got[0].Window != 10*time.Millisecond {
			t.Fatalf("captures after panics: %+v", got)
		}
		c.Close()
	})
}
