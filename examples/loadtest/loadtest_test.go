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
	"path/filepath"
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
			Prompt   string `json:"prompt"`
			Stream   bool   `json:"stream"`
			Endpoint string `json:"endpoint"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/generate" || json.NewDecoder(r.Body).Decode(&in) != nil || in.Prompt == "" || in.Endpoint == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if n%10 == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"kind":"rate_limited","message":"slow down"}}`)
			return
		}
		cached := n%3 == 0
		if !in.Stream {
			fmt.Fprintf(w, `{"text":"ok","cached":%v,"degraded":false,"usage":{"input":7,"output":2}}`, cached)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"text\":\"o\"}\n\ndata: {\"text\":\"k\"}\n\n")
		fmt.Fprintf(w, "event: done\ndata: {\"text\":\"ok\",\"cached\":%v,\"degraded\":false,\"usage\":{\"input\":7,\"output\":2}}\n\n", cached)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func testConfig(t *testing.T, url string) *config {
	c := defaultConfig()
	c.URL, c.Duration, c.Requests, c.Concurrency = url, time.Minute, 90, 4
	c.StreamShare, c.Timeout, c.Drain, c.Seed = 0.5, 10*time.Second, time.Second, 1
	c.Out = t.TempDir()
	return &c
}

func readReport(t *testing.T, dir string) *report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	return &r
}

// The run stops by itself after -requests, reports what came back, and
// writes JSON and HTML.
func TestLoadBoundedAndCounted(t *testing.T) {
	srv, calls := fakeService(t)
	var out bytes.Buffer
	cfg := testConfig(t, srv.URL)
	code, err := run(context.Background(), &out, cfg)
	if err != nil || code != exitMet {
		t.Fatalf("run: %d %v\n%s", code, err, out.String())
	}
	if calls.Load() != 90 {
		t.Fatalf("the service saw %d requests, want exactly -requests=90", calls.Load())
	}
	r := readReport(t, cfg.Out)
	res := r.Result
	if res.Sent != 90 || res.Answered != 81 || res.Outcomes["rate_limited"] != 9 || res.Statuses["429"] != 9 || res.Statuses["200"] != 81 {
		t.Fatalf("counts: sent %d answered %d outcomes %v statuses %v", res.Sent, res.Answered, res.Outcomes, res.Statuses)
	}
	if res.Outcomes["cached"]+res.Outcomes["ok"] != 81 || res.Outcomes["cached"] < 20 {
		t.Fatalf("outcomes %v: want 81 answered, about a third cached", res.Outcomes)
	}
	if res.TokensIn != 81*7 || res.TokensOut != 81*2 {
		t.Fatalf("tokens in/out %d/%d, want %d/%d", res.TokensIn, res.TokensOut, 81*7, 81*2)
	}
	e2e, ttft, itl := res.Latency["e2e"], res.Latency["ttft"], res.Latency["itl"]
	if e2e.N != 81 || ttft.N == 0 || ttft.N >= 81 || itl.N != ttft.N || e2e.P50 <= 0 || e2e.P99 < e2e.P50 || e2e.Max < e2e.P99 {
		t.Fatalf("latency: e2e %+v ttft %+v itl %+v", e2e, ttft, itl)
	}
	var byClass int64
	for _, c := range classes {
		byClass += res.ByClass[c.Name]["e2e"].N
	}
	if byClass != 81 || res.ByClass["short"]["e2e"].N <= res.ByClass["long"]["e2e"].N {
		t.Fatalf("by class: %v (want 81 in all, the 3:2:1 mix)", res.ByClass)
	}
	if r.Config == nil || r.Config.Requests != 90 || r.Config.URL != srv.URL || len(r.Classes) != 3 {
		t.Fatalf("the report lacks the config that produced it: %+v", r.Config)
	}
	html, err := os.ReadFile(filepath.Join(cfg.Out, "report.html"))
	if err != nil || !bytes.Contains(html, []byte(`<img class="plot"`)) {
		t.Fatalf("report.html: %v", err)
	}
	for _, want := range []string{"90 requests", "rate_limited", "status 429: 9", "e2e", "ttft", "report.html"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// The run stops by itself when its time is up, even with requests left:
// in-flight requests get -drain, then are abandoned.
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
	cfg := testConfig(t, hang.URL)
	cfg.Requests = 1_000_000
	// A request that outlived the run would hang for an hour and time the
	// test out: the run must abandon it after its drain time.
	cfg.Timeout, cfg.Duration, cfg.Drain = time.Hour, 100*time.Millisecond, 50*time.Millisecond
	code, _ := run(context.Background(), &bytes.Buffer{}, cfg)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d: no request was answered", code, exitFailed)
	}
	if n := calls.Load(); n > int64(cfg.Concurrency) {
		t.Fatalf("%d requests reached a service that never answers, want at most one per user (%d)", n, cfg.Concurrency)
	}
	if r := readReport(t, cfg.Out); r.Result.Outcomes[outAbandoned] != int(calls.Load()) {
		t.Fatalf("outcomes %v, want %d abandoned", r.Result.Outcomes, calls.Load())
	}
}

func TestConfigRejectsRemoteAndBadValues(t *testing.T) {
	ok := *testConfig(t, "http://127.0.0.1:8000")
	if err := ok.validate(); err != nil {
		t.Fatalf("loopback rejected: %v", err)
	}
	for name, mutate := range map[string]func(*config){
		"remote host":            func(c *config) { c.URL = "http://example.com:8000" },
		"private range":          func(c *config) { c.URL = "http://10.0.0.5:8000" },
		"not a URL":              func(c *config) { c.URL = "::" },
		"no users":               func(c *config) { c.Concurrency = 0 },
		"share over 1":           func(c *config) { c.StreamShare = 1.5 },
		"rate on a closed loop":  func(c *config) { c.Rate = 5 },
		"open loop without rate": func(c *config) { c.Profile = "poisson" },
		"rate past a million":    func(c *config) { c.Profile, c.Rate = "constant", 2e9 },
		"unknown profile":        func(c *config) { c.Profile = "burst" },
		"sweep without SLO":      func(c *config) { c.Profile, c.SweepRates = "sweep", []float64{1, 2} },
		"sweep without steps":    func(c *config) { c.Profile, c.SLO = "sweep", slo{TTFT: time.Second} },
		"sweep descending":       func(c *config) { c.Profile, c.SLO, c.SweepRates = "sweep", slo{TTFT: time.Second}, []float64{4, 2} },
		"sweep over rates and users": func(c *config) {
			c.Profile, c.SLO, c.SweepRates, c.SweepUsers = "sweep", slo{E2E: 1}, []float64{1}, []int{1}
		},
		"wait max below min":            func(c *config) { c.Wait = waitRange{2 * time.Second, time.Second} },
		"SLO target over 1":             func(c *config) { c.SLOTarget = 1.5 },
		"no output directory":           func(c *config) { c.Out = "" },
		"negative drain":                func(c *config) { c.Drain = -1 },
		"no duration":                   func(c *config) { c.Duration = 0 },
		"more users than can be opened": func(c *config) { c.Concurrency = 1 << 30 },
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

func TestFlagsParseSLOWaitAndSweep(t *testing.T) {
	c := defaultConfig()
	fs := newFlagSet(&c)
	err := fs.Parse([]string{"-slo", "ttft=500ms, itl=50ms,e2e=5s", "-wait", "1s,5s", "-profile", "sweep", "-sweep-rates", "10,20,40.5"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SLO != (slo{TTFT: 500 * time.Millisecond, ITL: 50 * time.Millisecond, E2E: 5 * time.Second}) || c.SLO.String() != "ttft=500ms,itl=50ms,e2e=5s" {
		t.Fatalf("slo %+v %q", c.SLO, c.SLO.String())
	}
	if c.Wait != (waitRange{time.Second, 5 * time.Second}) || len(c.SweepRates) != 3 || c.SweepRates[2] != 40.5 {
		t.Fatalf("wait %v sweep %v", c.Wait, c.SweepRates)
	}
	for _, bad := range []string{"ttft", "ttft=-1s", "speed=1s", "ttft=fast"} {
		var s slo
		if s.Set(bad) == nil {
			t.Errorf("-slo %q accepted", bad)
		}
	}
}

func TestUnreachableServiceFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	cfg := testConfig(t, url)
	cfg.Requests = 5
	if code, err := run(context.Background(), &bytes.Buffer{}, cfg); err == nil || code != exitFailed {
		t.Fatalf("a run where no request reached the service: exit %d, %v", code, err)
	}
	if r := readReport(t, cfg.Out); r.Result.Outcomes[outTransport] != 5 || r.ExitCode != exitFailed {
		t.Fatalf("report: %+v", r.Result.Outcomes)
	}
}

// The API key is sent as X-API-Key and never lands in a report.
func TestAPIKeySentNotReported(t *testing.T) {
	const key = "sk-test-do-not-leak"
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != key {
			bad.Add(1)
		}
		fmt.Fprint(w, `{"text":"ok","cached":false,"degraded":false}`)
	}))
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	cfg.APIKey, cfg.Requests, cfg.StreamShare = key, 10, 0
	var out bytes.Buffer
	if code, err := run(context.Background(), &out, cfg); code != exitMet {
		t.Fatalf("exit %d: %v", code, err)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d requests without the key", bad.Load())
	}
	for _, f := range []string{"report.json", "report.html"} {
		b, _ := os.ReadFile(filepath.Join(cfg.Out, f))
		if bytes.Contains(b, []byte(key)) {
			t.Fatalf("%s holds the API key", f)
		}
	}
	if strings.Contains(out.String(), key) {
		t.Fatal("the summary holds the API key")
	}
}
