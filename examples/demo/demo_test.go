package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The demo runs its whole workload (three phases, an outage in the middle)
// on fake time, prints its summary, and the stack keeps every call answered
// through the outage: degraded answers in the outage, none failed.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), &out, options{phase: 2 * time.Second, workers: 16}); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		s := out.String()
		for _, want := range []string{"healthy", "outage", "recovered", "Prometheus", "OpenTelemetry", "Health:"} {
			if !strings.Contains(s, want) {
				t.Fatalf("summary lacks %q:\n%s", want, s)
			}
		}
		row := func(phase string) []string {
			m := regexp.MustCompile(`(?m)^\s*` + phase + `\s+(.*)$`).FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("no row for %s:\n%s", phase, s)
			}
			return strings.Fields(m[1])
		}
		num := func(f string) int {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("not a number %q in:\n%s", f, s)
			}
			return n
		}
		// columns: calls calls/s answered cached degraded failed retried p50 p95 p99
		healthy, outage := row("healthy"), row("outage")
		if num(healthy[0]) == 0 || num(outage[0]) == 0 {
			t.Fatalf("a phase made no calls:\n%s", s)
		}
		if num(healthy[4]) != 0 || num(healthy[5]) != 0 {
			t.Fatalf("the healthy phase degraded or failed calls:\n%s", s)
		}
		if num(outage[4]) == 0 {
			t.Fatalf("the outage produced no degraded answers:\n%s", s)
		}
		if num(outage[5]) != 0 {
			t.Fatalf("calls failed during the outage although fallbacks were configured:\n%s", s)
		}
		if num(healthy[3]) == 0 {
			t.Fatalf("no cache hits for repeated deterministic questions:\n%s", s)
		}
		if !regexp.MustCompile(`llm_retries_total [1-9]`).MatchString(s) {
			t.Fatalf("no retries counted during the outage:\n%s", s)
		}
		// One deployment failing: the router moves its calls to the
		// others, and every call is answered in full, none degraded.
		failover := row("failover")
		if num(failover[0]) == 0 || num(failover[4]) != 0 || num(failover[5]) != 0 {
			t.Fatalf("with one deployment down, calls were degraded or failed:\n%s", s)
		}
		m := regexp.MustCompile(`routes failover\s+east=(\d+) \[(\d+)\] west=(\d+) \[0\] central=(\d+) \[0\]`).FindStringSubmatch(s)
		if m == nil || num(m[1]) != 0 || num(m[2]) == 0 || num(m[3]) == 0 || num(m[4]) == 0 {
			t.Fatalf("in the failover phase east should answer nothing and west and central everything:\n%s", s)
		}
	})
}

func TestRunRejectsBadFlags(t *testing.T) {
	if err := run(context.Background(), &bytes.Buffer{}, options{workers: 1}); err == nil {
		t.Fatal("phase 0 accepted")
	}
}

// With OPENAI_BASE_URL set, the demo talks to that OpenAI-compatible
// server (here a loopback one speaking the chat-completions wire format)
// through the same stack, and the repeated question is a cache hit.
func TestDemoRealEndpoint(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if !body.Stream {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range []string{"2", ", 3", ", 5"} {
			fmt.Fprintf(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", part)
		}
		io.WriteString(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	t.Setenv("OPENAI_BASE_URL", srv.URL)
	t.Setenv("OPENAI_API_KEY", "sk-demo-test-key-0123456789abcdef")
	t.Setenv("ANTHROPIC_API_KEY", "")
	t.Setenv("LLMKIT_MODEL", "m")
	var out bytes.Buffer
	if err := run(context.Background(), &out, options{phase: time.Second, workers: 1, getenv: os.Getenv}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "streamed: 2, 3, 5") {
		t.Fatalf("the streamed answer was not printed as it arrived:\n%s", s)
	}
	if strings.Count(s, "cached=true") != 1 || strings.Contains(s, "degraded=true") {
		t.Fatalf("want exactly one cache hit and no degraded answer:\n%s", s)
	}
	if calls.Load() != 2 {
		t.Fatalf("server saw %d calls, want 2 (the repeat is served from the cache)", calls.Load())
	}
	if strings.Contains(s, "sk-demo-test-key") {
		t.Fatal("the API key appears in the demo's output")
	}
}

// Slow-call capture, on the real clock (the runtime's tracer cannot start
// inside a synctest bubble): with a threshold every provider call passes
// and a long interval, a short run saves exactly one trace snapshot.
func TestDemoCapturesSlowCalls(t *testing.T) {
	var out bytes.Buffer
	o := options{phase: 200 * time.Millisecond, workers: 4, slow: time.Millisecond, captureEvery: time.Hour}
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !regexp.MustCompile(`Slow-call captures: 1 runtime trace snapshot\(s\), [0-9]+ KiB, e.g. \S+`).MatchString(out.String()) {
		t.Fatalf("want exactly one capture reported:\n%s", out.String())
	}
}
