package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	cacheredis "github.com/llmkit/llmkit/cache/redis"
	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is an environment for loadConfig and run.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// testConfig is the configuration env gives, with short retry backoffs
// (Retry-After included).
func testConfig(t *testing.T, e env) config {
	t.Helper()
	cfg, err := loadConfig(e.get)
	if err != nil {
		t.Fatal(err)
	}
	retry := *cfg.Policies.Retry
	retry.BaseDelay, retry.MaxDelay = time.Millisecond, 5*time.Millisecond
	cfg.Policies.Retry = &retry
	return cfg
}

// newTestServer runs the service's handler, configured by e, around a
// zero-latency simulated model on a loopback test server.
func newTestServer(t *testing.T, e env) (*httptest.Server, *server, *sim.Model) {
	t.Helper()
	model := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1, MinTokens: 4, MaxTokens: 8})
	s, err := newServer(serverConfig{config: testConfig(t, e), Provider: model, ProviderName: "sim",
		Model: sim.DefaultModel, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts, s, model
}

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/generate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestGenerateAndCache(t *testing.T) {
	ts, s, _ := newTestServer(t, nil)
	body := `{"prompt":"Why is the sky blue?","endpoint":"chat","tenant":"acme","temperature":0}`
	resp, b := post(t, ts.URL, body)
	var out generateResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.Text == "" || out.Cached {
		t.Fatalf("first call: %d %s", resp.StatusCode, b)
	}
	s.store.Wait() // ristretto applies writes asynchronously
	resp, b = post(t, ts.URL, body)
	var again generateResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &again) != nil || !again.Cached || again.Text != out.Text {
		t.Fatalf("second call: %d %s, want the cached answer %q", resp.StatusCode, b, out.Text)
	}
	// Another tenant asking the same question is not served tenant acme's entry.
	_, b = post(t, ts.URL, strings.Replace(body, "acme", "globex", 1))
	var other generateResponse
	if json.Unmarshal(b, &other) != nil || other.Cached {
		t.Fatalf("another tenant got a cached answer: %s", b)
	}
}

func TestErrorsMapToStatus(t *testing.T) {
	ts, _, model := newTestServer(t, nil)
	tests := []struct {
		body   string
		status int
		kind   string
	}{
		{`{"prompt":""}`, 400, "bad_request"},
		{`{"prompt":"x","temperature":3}`, 400, "bad_request"},
		{`{"prompt":"x","unknown_field":1}`, 400, "bad_request"},
		{`not json`, 400, "bad_request"},
		{`{"prompt":"` + strings.Repeat("a", maxBody) + `"}`, 413, "bad_request"},
	}
	for _, tt := range tests {
		resp, b := post(t, ts.URL, tt.body)
		var e map[string]errorJSON
		if resp.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || e["error"].Kind != tt.kind {
			t.Errorf("%.40s: %d %.200s, want %d %s", tt.body, resp.StatusCode, b, tt.status, tt.kind)
		}
	}
	// The provider's credentials failing is the service's problem: 502,
	// never retried, never degraded.
	if err := model.SetErrors(map[llm.Kind]float64{llm.KindAuth: 1}); err != nil {
		t.Fatal(err)
	}
	resp, b := post(t, ts.URL, `{"prompt":"hello"}`)
	if resp.StatusCode != 502 || !strings.Contains(string(b), `"auth"`) {
		t.Fatalf("auth failure: %d %s", resp.StatusCode, b)
	}
}

// An outage is answered degraded (the static fallback), not with an error.
func TestOutageIsDegraded(t *testing.T) {
	ts, _, model := newTestServer(t, nil)
	if err := model.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1}); err != nil {
		t.Fatal(err)
	}
	resp, b := post(t, ts.URL, `{"prompt":"hello","temperature":0.7}`)
	var out generateResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || !out.Degraded || out.DegradedReason != "unavailable" {
		t.Fatalf("outage: %d %s, want a degraded answer", resp.StatusCode, b)
	}
}

func TestStream(t *testing.T) {
	ts, _, _ := newTestServer(t, nil)
	resp, err := http.Post(ts.URL+"/generate", "application/json", strings.NewReader(`{"prompt":"Tell me a story","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var text strings.Builder
	var done *generateResponse
	event := ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			if event == "done" {
				done = &generateResponse{}
				if err := json.Unmarshal(data, done); err != nil {
					t.Fatal(err)
				}
				continue
			}
			var c map[string]string
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			text.WriteString(c["text"])
		}
	}
	if done == nil || text.Len() == 0 || done.Text != text.String() {
		t.Fatalf("streamed %q, done event %+v: want chunks that join to the final text", text.String(), done)
	}
}

func TestMetricsReadyAndNoPprof(t *testing.T) {
	ts, _, _ := newTestServer(t, nil)
	post(t, ts.URL, `{"prompt":"hello","endpoint":"chat"}`)
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `llm_requests_total{endpoint="chat",model="sim-1",status="ok"} 1`) {
		t.Fatalf("/metrics: %d\n%.2000s", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Fatalf("/debug/pprof/ on the service's port: %d, want 404", code)
	}
}

// run listens, serves pprof on its own loopback listener with a token, and
// shuts down cleanly when its context ends.
func TestRunServesAndShutsDown(t *testing.T) {
	e := env{"LISTEN_ADDR": "127.0.0.1:0", "PPROF_TOKEN": "t0ken", "LOG_LEVEL": "error", "DRAIN_DELAY": "1s"}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, e.get, listening) }()
	var addr string
	select {
	case addr = <-listening:
	case err := <-errc:
		t.Fatalf("run: %v", err)
	}
	resp, err := http.Post("http://"+addr+"/generate", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("generate through run: %d", resp.StatusCode)
	}
	probeEnv := env{"LISTEN_ADDR": addr}
	if err := probe(probeEnv.get, nil); err != nil {
		t.Fatalf("probe of a running service: %v", err)
	}
	if err := probe(probeEnv.get, []string{"/nothing-here"}); err == nil {
		t.Fatal("probe of a 404 path passed")
	}

	// Shutting down: /readyz fails for DRAIN_DELAY while requests are
	// still served, then run returns.
	cancel()
	draining := false
	for range 10000 { // bounded: 200 until run sees the cancel, then 503 for a second
		err := probe(probeEnv.get, nil)
		if err == nil {
			continue
		}
		draining = strings.Contains(err.Error(), "503")
		break
	}
	if !draining {
		t.Fatal("/readyz never answered 503 while draining")
	}
	if err := probe(probeEnv.get, []string{"/healthz"}); err != nil {
		t.Fatalf("/healthz while draining: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := probe(probeEnv.get, nil); err == nil {
		t.Fatal("probe passed after shutdown")
	}
}

func TestRunRejectsBadEnv(t *testing.T) {
	if err := run(context.Background(), env{"LOG_LEVEL": "loud"}.get, nil); err == nil {
		t.Fatal("a bad LOG_LEVEL was accepted")
	}
}

// With REDIS_ADDR the cache is shared: a second service instance (another
// replica) answers from the first one's entry.
func TestReplicasShareRedis(t *testing.T) {
	addr := cacheredis.Addr()
	probe := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { probe.Close() })
	redistest.Require(t, probe, addr)
	prefix := "llmkit:test:service:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() { deletePrefix(t, probe, prefix) })
	mk := func() (*httptest.Server, *server) {
		model := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1})
		s, err := newServer(serverConfig{config: testConfig(t, env{"REDIS_URL": "redis://" + addr,
			"REDIS_KEY_PREFIX": prefix}), Provider: model, ProviderName: "sim", Model: sim.DefaultModel,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		t.Cleanup(func() { ts.Close(); s.Close() })
		return ts, s
	}
	a, sa := mk()
	b, _ := mk()
	q := `{"prompt":"replica test ` + strconv.FormatInt(time.Now().UnixNano(), 10) + `","temperature":0}`
	if _, body := post(t, a.URL, q); !strings.Contains(string(body), `"cached":false`) {
		t.Fatalf("replica a: %s", body)
	}
	sa.l2.Wait() // the write to Redis is asynchronous
	if _, body := post(t, b.URL, q); !strings.Contains(string(body), `"cached":true`) {
		t.Fatalf("replica b did not get replica a's entry from Redis: %s", body)
	}
	if n, err := probe.Keys(context.Background(), prefix+"*").Result(); err != nil || len(n) == 0 {
		t.Fatalf("no Redis key under REDIS_KEY_PREFIX %q: %v %v", prefix, n, err)
	}
	code, body := get(t, a.URL+"/statusz")
	var st statusJSON
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Redis == nil || st.Redis.Ping != "ok" || st.Redis.Breaker != "closed" {
		t.Fatalf("/statusz with Redis: %d %s", code, body)
	}
}

// deletePrefix deletes the Redis keys under prefix: what a test wrote.
func deletePrefix(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	var cursor uint64
	for range 1000 { // bounded: a test writes few keys
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 100).Result()
		if err != nil {
			t.Errorf("cleaning %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleaning %s*: %v", prefix, err)
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// With Redis, a key's limits hold across replicas: two replicas together
// admit its requests per minute, not twice that.
func TestKeyLimitsAcrossReplicas(t *testing.T) {
	addr := cacheredis.Addr()
	probe := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { probe.Close() })
	redistest.Require(t, probe, addr)
	prefix := "llmkit:test:service:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() { deletePrefix(t, probe, prefix) })
	e := env{"REDIS_ADDR": addr, "REDIS_KEY_PREFIX": prefix, "LLMKIT_API_KEYS": acmeKey + " acme 2"}
	var urls []string
	for range 2 {
		s, err := newServer(serverConfig{config: testConfig(t, e), Provider: sim.MustNew(sim.Config{TTFT: -1, PerToken: -1}),
			ProviderName: "sim", Model: sim.DefaultModel, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		t.Cleanup(func() { ts.Close(); s.Close() })
		urls = append(urls, ts.URL)
	}
	var codes []int
	for i := range 4 {
		resp, b := call(t, urls[i%2], `{"prompt":"hi"}`, map[string]string{"X-API-Key": acmeKey})
		if resp.StatusCode != 200 && resp.StatusCode != 429 {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, b)
		}
		codes = append(codes, resp.StatusCode)
	}
	if !slices.Equal(codes, []int{200, 200, 429, 429}) {
		t.Fatalf("statuses %v across two replicas at 2 requests per minute, want [200 200 429 429]", codes)
	}
	if n, err := probe.Keys(context.Background(), prefix+"limit:*").Result(); err != nil || len(n) == 0 {
		t.Fatalf("no limiter key under %slimit: %v %v", prefix, n, err)
	}
}
