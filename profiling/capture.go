package profiling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// The reasons a capture is taken, in Capture.Reason and file names.
const (
	ReasonSlow    = "slow"    // the call ran past the Threshold
	ReasonSampled = "sampled" // the call was one in Sample(n)
)

// The kinds of artefact a capture holds, in Capture.Kind.
const (
	KindTrace = "trace" // a runtime/trace flight-recorder snapshot
	KindCPU   = "cpu"   // a CPU profile (gzipped pprof protobuf)
)

// Defaults for NewCapturer.
const (
	DefaultInterval  = time.Minute
	DefaultMaxWindow = 30 * time.Second
	// DefaultTraceAge is the flight recorder's MinAge: how far back a
	// snapshot reaches.
	DefaultTraceAge = 10 * time.Second
	// DefaultTraceBytes is the flight recorder's MaxBytes.
	DefaultTraceBytes = 32 << 20
)

// ErrCPUProfileBusy is reported (through OnError) when a capture wanted a
// CPU profile but another one was running: Go allows one CPU profile per
// process. The capture keeps its trace snapshot.
var ErrCPUProfileBusy = errors.New("profiling: a CPU profile is already running")

// Capture is one artefact a Capturer saved.
type Capture struct {
	// Time is when the capture was triggered.
	Time time.Time
	// Reason is ReasonSlow or ReasonSampled.
	Reason string
	// Endpoint and Model describe the call that triggered the capture,
	// bounded by the Endpoints and Models options and sanitized to the
	// characters [a-zA-Z0-9_.-]. The artefact itself covers the whole
	// process, not only that call; Labels tells calls apart inside it.
	Endpoint, Model string
	// Kind is KindTrace or KindCPU.
	Kind string
	// Window is how long the capture window lasted: from the trigger
	// until the call returned (or the window's bounds).
	Window time.Duration
	// Data is the artefact: a trace readable by `go tool trace`, or a
	// profile readable by `go tool pprof`.
	Data []byte
}

// FileName returns a name for the artefact made of its time, reason,
// endpoint and model, such as
// "llm_20250102T150405.123456789Z_slow_summarize_gpt-4o.trace". Names sort
// in time order and hold only the characters [a-zA-Z0-9_.-].
func (c Capture) FileName() string {
	ext := ".trace"
	if c.Kind == KindCPU {
		ext = ".pb.gz"
	}
	return filePrefix + c.Time.UTC().Format(fileTime) + "_" + sanitize(c.Reason) + "_" +
		sanitize(c.Endpoint) + "_" + sanitize(c.Model) + ext
}

const (
	filePrefix = "llm_"
	fileTime   = "20060102T150405.000000000Z"
)

// sanitize keeps [a-zA-Z0-9_.-], replaces anything else with '_' and cuts
// the result to 64 bytes. An empty string becomes Unset.
func sanitize(s string) string {
	if s == "" {
		return Unset
	}
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// Sink receives captures. Save may be called from a background goroutine,
// one capture at a time.
type Sink interface {
	Save(Capture) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Capture) error

// Save calls f(c).
func (f SinkFunc) Save(c Capture) error { return f(c) }

// CaptureOption configures NewCapturer. Endpoints and Models are
// CaptureOptions too.
type CaptureOption interface {
	applyCapture(*captureConfig) error
}

type captureOptionFunc func(*captureConfig) error

func (f captureOptionFunc) applyCapture(c *captureConfig) error { return f(c) }

type captureConfig struct {
	bounds
	threshold time.Duration
	sample    uint64
	interval  time.Duration
	maxWindow time.Duration
	trace     bool
	fr        trace.FlightRecorderConfig
	cpu       bool
	cpuMin    time.Duration
	onError   func(error)
}

// Threshold triggers a capture when a call is still running d after it
// started. A call then costs a timer (time.AfterFunc) that is stopped when
// it returns. d must be positive.
func Threshold(d time.Duration) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if d <= 0 {
			return errors.New("profiling: Threshold must be positive")
		}
		c.threshold = d
		return nil
	})
}

// Sample triggers a capture on one call in n: its window is the whole
// call. n must be positive; Sample(1) captures every call the rate limit
// lets through.
func Sample(n int) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if n <= 0 {
			return errors.New("profiling: Sample must be positive")
		}
		c.sample = uint64(n)
		return nil
	})
}

// Interval allows at most one capture per d, however many calls trigger.
// Default DefaultInterval.
func Interval(d time.Duration) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if d <= 0 {
			return errors.New("profiling: Interval must be positive")
		}
		c.interval = d
		return nil
	})
}

// MaxWindow ends a capture window d after the trigger even if the call is
// still running, so a hung call still yields a capture. Default the
// smaller of DefaultMaxWindow and the Interval; d must not exceed the
// Interval, so windows never overlap.
func MaxWindow(d time.Duration) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if d <= 0 {
			return errors.New("profiling: MaxWindow must be positive")
		}
		c.maxWindow = d
		return nil
	})
}

// FlightRecorder sets the flight recorder's window (see
// trace.FlightRecorderConfig). The default keeps DefaultTraceAge of
// history within DefaultTraceBytes.
func FlightRecorder(cfg trace.FlightRecorderConfig) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		c.trace = true
		c.fr = cfg
		return nil
	})
}

// NoTrace turns the flight recorder off; the capture then needs
// CPUProfile. Without a flight recorder the process pays no tracing cost.
func NoTrace() CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		c.trace = false
		return nil
	})
}

// CPUProfile also records a CPU profile of the capture window, which then
// lasts at least min (so a call that ends just past the threshold still
// yields samples; 0 is allowed). Go runs one CPU profile per process: when
// another is running the capture reports ErrCPUProfileBusy and keeps its
// trace.
func CPUProfile(min time.Duration) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if min < 0 {
			return errors.New("profiling: CPUProfile window must not be negative")
		}
		c.cpu = true
		c.cpuMin = min
		return nil
	})
}

// OnError receives what goes wrong in the background: a sink that fails, a
// busy CPU profiler. The default logs at warning level with slog.Default.
// f must be safe for concurrent use.
func OnError(f func(error)) CaptureOption {
	return captureOptionFunc(func(c *captureConfig) error {
		if f != nil {
			c.onError = f
		}
		return nil
	})
}

// artefact is what a recorder produced.
type artefact struct {
	kind string
	data []byte
}

// beginFunc starts recording a window and returns the function that ends
// it. Tests inject one; the real one drives the CPU profiler and the
// flight recorder.
type beginFunc func() (end func() ([]artefact, error))

// Capturer saves a flight-recorder snapshot and/or a CPU profile when a
// call is slow or sampled, at most once per interval. Its Middleware method
// is the llm.Middleware; Close stops the flight recorder and waits for
// captures in progress. A Capturer is safe for concurrent use.
type Capturer struct {
	cfg   captureConfig
	sink  Sink
	fr    *trace.FlightRecorder
	begin beginFunc

	calls    atomic.Uint64 // for Sample
	watchers sync.Pool     // of *slowCall, for Threshold
	next     atomic.Int64  // unix nanoseconds before which no capture starts

	mu     sync.Mutex
	closed bool
	cur    *window // the open window, if any; guarded by mu
	wg     sync.WaitGroup
}

// NewCapturer returns a Capturer saving to sink. It needs a trigger
// (Threshold, Sample or both). Unless NoTrace is given it starts a
// runtime/trace flight recorder, which fails if another one is running in
// the process: Go allows one at a time. Call Close when done.
func NewCapturer(sink Sink, opts ...CaptureOption) (*Capturer, error) {
	return newCapturer(sink, nil, opts...)
}

func newCapturer(sink Sink, begin beginFunc, opts ...CaptureOption) (*Capturer, error) {
	if sink == nil {
		return nil, errors.New("profiling: NewCapturer needs a Sink")
	}
	cfg := captureConfig{
		interval: DefaultInterval,
		trace:    true,
		fr:       trace.FlightRecorderConfig{MinAge: DefaultTraceAge, MaxBytes: DefaultTraceBytes},
		onError: func(err error) {
			slog.Default().Warn("profiling: capture failed", "err", err)
		},
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyCapture(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.threshold == 0 && cfg.sample == 0 {
		return nil, errors.New("profiling: NewCapturer needs a trigger: Threshold or Sample")
	}
	if !cfg.trace && !cfg.cpu {
		return nil, errors.New("profiling: NoTrace without CPUProfile leaves nothing to capture")
	}
	if cfg.maxWindow == 0 {
		cfg.maxWindow = min(DefaultMaxWindow, cfg.interval)
	}
	if cfg.maxWindow > cfg.interval {
		return nil, fmt.Errorf("profiling: MaxWindow %v exceeds Interval %v", cfg.maxWindow, cfg.interval)
	}
	if cfg.cpuMin > cfg.maxWindow {
		return nil, fmt.Errorf("profiling: CPUProfile window %v exceeds MaxWindow %v", cfg.cpuMin, cfg.maxWindow)
	}
	c := &Capturer{cfg: cfg, sink: sink, begin: begin}
	if c.begin == nil {
		if cfg.trace {
			c.fr = trace.NewFlightRecorder(cfg.fr)
			if err := c.fr.Start(); err != nil {
				return nil, fmt.Errorf("profiling: starting the flight recorder: %w", err)
			}
		}
		c.begin = c.record
	}
	return c, nil
}

// Close ends a capture window in progress (saving what it holds), waits
// for captures to reach the sink and stops the flight recorder. Calls made
// after Close pass through without capture. Close is idempotent.
func (c *Capturer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	w := c.cur
	c.mu.Unlock()
	if w != nil {
		w.finish()
	}
	c.wg.Wait()
	if c.fr != nil {
		c.fr.Stop()
	}
	return nil
}

// Middleware is the capturing llm.Middleware: pass the method value
// (capturer.Middleware) to llm.Chain or llm.Wrap.
func (c *Capturer) Middleware(next llm.Client) llm.Client {
	return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		resp, err := c.generate(ctx, next, req)
		return resp, llm.RedactError(err)
	})
}

func (c *Capturer) generate(ctx context.Context, next llm.Client, req *llm.Request) (*llm.Response, error) {
	if req == nil {
		return next.Generate(ctx, req)
	}
	// The deferred calls end the watch even when next panics.
	if c.cfg.sample > 0 && c.calls.Add(1)%c.cfg.sample == 0 {
		if w := c.trigger(ReasonSampled, req); w != nil {
			defer w.callDone()
			return next.Generate(ctx, req)
		}
	}
	if c.cfg.threshold == 0 {
		return next.Generate(ctx, req)
	}
	defer c.unwatch(c.watch(req))
	return next.Generate(ctx, req)
}

// watch arms a timer that fires when the call passes the threshold. The
// watchers and their timers are pooled: an uncaptured call costs a timer
// Reset and Stop and no allocation.
func (c *Capturer) watch(req *llm.Request) *slowCall {
	s, _ := c.watchers.Get().(*slowCall)
	if s == nil {
		s = &slowCall{c: c}
		s.timer = time.AfterFunc(time.Hour, s.fire)
		s.timer.Stop()
	}
	s.req = req
	s.timer.Reset(c.cfg.threshold)
	return s
}

// unwatch disarms the timer. A watcher whose timer fired is not reused:
// its fire may still be running.
func (c *Capturer) unwatch(s *slowCall) {
	if s.timer.Stop() {
		s.req = nil
		c.watchers.Put(s)
		return
	}
	s.done()
}

// slowCall is the state of one call being watched for the threshold. The
// lock is only taken once the timer fired, which is rare.
type slowCall struct {
	c     *Capturer
	req   *llm.Request
	timer *time.Timer

	mu       sync.Mutex
	returned bool
	w        *window
}

func (s *slowCall) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.returned {
		s.w = s.c.trigger(ReasonSlow, s.req)
	}
}

func (s *slowCall) done() {
	s.mu.Lock()
	s.returned = true
	w := s.w
	s.mu.Unlock()
	if w != nil {
		w.callDone()
	}
}

// trigger opens a capture window if the rate limit allows one, or returns
// nil.
func (c *Capturer) trigger(reason string, req *llm.Request) *window {
	now := time.Now()
	next := c.next.Load()
	if now.UnixNano() < next || !c.next.CompareAndSwap(next, now.Add(c.cfg.interval).UnixNano()) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cur != nil {
		return nil
	}
	w := &window{
		c: c, at: now, reason: reason,
		endpoint: c.cfg.endpoint(req.Endpoint), model: c.cfg.model(req.Model),
	}
	w.pending.Store(1)
	w.end = c.begin()
	// The timers may fire before they are stored: finish reads them
	// under w.mu.
	w.mu.Lock()
	if c.cfg.cpu && c.cfg.cpuMin > 0 {
		w.pending.Add(1)
		w.minTimer = time.AfterFunc(c.cfg.cpuMin, w.release)
	}
	w.maxTimer = time.AfterFunc(c.cfg.maxWindow, w.finish)
	w.mu.Unlock()
	c.cur = w
	c.wg.Add(1)
	return w
}

// window is one capture in progress. It ends when the call has returned
// and the CPUProfile minimum has passed, at MaxWindow, or at Close.
type window struct {
	c               *Capturer
	at              time.Time
	reason          string
	endpoint, model string
	end             func() ([]artefact, error)
	pending         atomic.Int32
	once            sync.Once
	mu              sync.Mutex
	minTimer        *time.Timer // guarded by mu
	maxTimer        *time.Timer // guarded by mu
}

func (w *window) callDone() { w.release() }

func (w *window) release() {
	if w.pending.Add(-1) == 0 {
		w.finish()
	}
}

// finish ends the window once; the recording is collected and saved in
// the background so the caller is not delayed.
func (w *window) finish() {
	w.once.Do(func() {
		w.mu.Lock()
		w.maxTimer.Stop()
		if w.minTimer != nil {
			w.minTimer.Stop()
		}
		w.mu.Unlock()
		go w.save()
	})
}

func (w *window) save() {
	c := w.c
	defer c.wg.Done()
	arts, err := w.end()
	elapsed := time.Since(w.at)
	c.mu.Lock()
	if c.cur == w {
		c.cur = nil
	}
	c.mu.Unlock()
	if err != nil {
		c.cfg.onError(err)
	}
	for _, a := range arts {
		capture := Capture{
			Time: w.at, Reason: w.reason, Endpoint: sanitize(w.endpoint), Model: sanitize(w.model),
			Kind: a.kind, Window: elapsed, Data: a.data,
		}
		if err := c.sink.Save(capture); err != nil {
			c.cfg.onError(fmt.Errorf("profiling: saving %s: %w", capture.FileName(), err))
		}
	}
}

// record is the real beginFunc: it starts the CPU profile if configured;
// the returned function stops it and snapshots the flight recorder.
func (c *Capturer) record() func() ([]artefact, error) {
	var cpu *bytes.Buffer
	var startErr error
	if c.cfg.cpu {
		cpu = new(bytes.Buffer)
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu, startErr = nil, fmt.Errorf("%w: %v", ErrCPUProfileBusy, err)
		}
	}
	return func() ([]artefact, error) {
		errs := []error{startErr}
		var arts []artefact
		if cpu != nil {
			pprof.StopCPUProfile()
			arts = append(arts, artefact{KindCPU, cpu.Bytes()})
		}
		if c.fr != nil {
			var b bytes.Buffer
			if _, err := c.fr.WriteTo(&b); err != nil {
				errs = append(errs, fmt.Errorf("profiling: flight recorder snapshot: %w", err))
			} else {
				arts = append(arts, artefact{KindTrace, b.Bytes()})
			}
		}
		return arts, errors.Join(errs...)
	}
}
