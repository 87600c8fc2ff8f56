package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeService answers POST /generate as examples/service does: JSON, or
// SSE ending in a "done" event. Every third call is a cache hit and every
// tenth a 429.
func fakeService(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		var in struct {
			Prompt string `json:"prompt"`
			Stream bool   `json:"stream"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/generate" || json.NewDecoder(r.Body).Decode(&in) != nil || in.Prompt == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if n%10 == 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"kind":"rate_limited"}}`, http.StatusTooManyRequests)
			return
		}
		cached := n%3 == 0
		if !in.Stream {
			fmt.Fprintf(w, `{"text":"ok","cached":%v,"degraded":false}`, cached)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"text\":\"o\"}\n\ndata: {\"text\":\"k\"}\n\n")
		fmt.Fprintf(w, "event: done\ndata: {\"text\":\"ok\",\"cached\":%v,\"degraded\":false}\n\n", cached)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func testConfig(url string) config {
	return config{URL: url, Duration: time.Minute, Requests: 90, Concurrency: 4,
		StreamShare: 0.5, RepeatShare: 0.7, Timeout: 10 * time.Second}
}

// The run stops by itself after -requests, and reports what came back.
func TestLoadBoundedAndCounted(t *testing.T) {
	srv, calls := fakeService(t)
	var out bytes.Buffer
	if err := run(context.Background(), &out, testConfig(srv.URL)); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if calls.Load() != 90 {
		t.Fatalf("the service saw %d requests, want exactly -requests=90", calls.Load())
	}
	for _, want := range []string{"90 requests", "81 answered 200 (27 cached", "status 429: 9", "latency", "time to first chunk"} {
		if !strings.Contains(s, want) {
			t.Fatalf("report lacks %q:\n%s", want, s)
		}
	}
}

// The run stops by itself when its time is up, even with requests left:
// in-flight requests are abandoned, not waited for.
func TestLoadStopsAtDeadline(t *testing.T) {
	var calls atomic.Int64
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// Read the body: only then does the server watch the connection
		// and cancel r.Context() when the client goes away.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // never answers; the client gives up
	}))
	defer hang.Close()
	cfg := testConfig(hang.URL)
	cfg.Requests = 1_000_000
	// A request that outlived the run would hang for an hour and time the
	// test out: the run must abandon it when its own deadline comes.
	cfg.Timeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	_ = run(ctx, &out, cfg)
	if ctx.Err() == nil {
		t.Fatal("run returned before its deadline with requests left")
	}
	if n := calls.Load(); n > int64(cfg.Concurrency) {
		t.Fatalf("%d requests reached a service that never answers, want at most one per user (%d)", n, cfg.Concurrency)
	}
}

func TestConfigRejectsRemoteAndBadValues(t *testing.T) {
	ok := testConfig("http://127.0.0.1:8000")
	if err := ok.validate(); err != nil {
		t.Fatalf("loopback rejected: %v", err)
	}
	for name, mutate := range map[string]func(*config){
		"remote host":                      func(c *config) { c.URL = "http://example.com:8000" },
		"private range":                    func(c *config) { c.URL = "http://10.0.0.5:8000" },
		"not a URL":                        func(c *config) { c.URL = "::" },
		"no users":                         func(c *config) { c.Concurrency = 0 },
		"share over 1":                     func(c *config) { c.StreamShare = 1.5 },
		"negative rate":                    func(c *config) { c.Rate = -1 },
		"rate past a tick per microsecond": func(c *config) { c.Rate = 2e9 },
	} {
		c := ok
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, h := range []string{"localhost", "127.0.0.1", "127.3.4.5", "::1"} {
		if !loopback(h) {
			t.Errorf("loopback(%q) = false", h)
		}
	}
	remote := ok
	remote.URL, remote.AllowRemote = "http://example.com", true
	if err := remote.validate(); err != nil {
		t.Errorf("-allow-remote did not allow: %v", err)
	}
}

func TestUnreachableServiceFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	cfg := testConfig(url)
	cfg.Requests = 5
	if err := run(context.Background(), &bytes.Buffer{}, cfg); err == nil {
		t.Fatal("a run where no request reached the service succeeded")
	}
}
