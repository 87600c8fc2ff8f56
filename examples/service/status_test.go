package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// fakeOpenAI is an OpenAI-compatible endpoint that answers every call
// with status and headers, as a provider in an outage or out of quota does.
func fakeOpenAI(t *testing.T, status int, headers map[string]string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"message":"provider trouble","type":"server_error"}}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// A provider-wide outage, or its quota run out, leaves every replica
// ready: each still answers, with the fallback. /statusz says what is
// wrong; once the replica shuts down, /readyz says 503.
func TestReadinessDoesNotCascade(t *testing.T) {
	for _, tt := range []struct {
		name    string
		status  int
		headers map[string]string
		reason  string // in /statusz's provider reasons
	}{
		{"outage", http.StatusServiceUnavailable, nil, "circuit breaker"},
		{"quota exhausted", http.StatusTooManyRequests, map[string]string{
			"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
			// The breaker opens on the 429s; the quota itself is not seen
			// by stack.Health once the fallback answered.
			"x-ratelimit-reset-requests": "1h", "retry-after": "3600"}, "circuit breaker"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			provider := fakeOpenAI(t, tt.status, tt.headers)
			e := env{"OPENAI_BASE_URL": provider.URL + "/v1", "OPENAI_API_KEY": "sk-test-not-a-key",
				"FALLBACK_MESSAGE": "Try again in a minute."}
			s, err := newServer(serverConfig{config: testConfig(t, e), Getenv: e.get, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(s)
			t.Cleanup(func() { ts.Close(); s.Close() })

			for i := range 4 { // enough failed attempts to open the breaker
				resp, b := post(t, ts.URL, `{"prompt":"hello","temperature":0.5}`)
				var out generateResponse
				if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || !out.Degraded || out.Text != "Try again in a minute." {
					t.Fatalf("call %d: %d %s, want the fallback answer", i, resp.StatusCode, b)
				}
			}
			if code, b := get(t, ts.URL+"/readyz"); code != 200 {
				t.Fatalf("/readyz during %s: %d %s, want 200", tt.name, code, b)
			}
			code, b := get(t, ts.URL+"/statusz")
			var st statusJSON
			if code != 200 || json.Unmarshal(b, &st) != nil {
				t.Fatalf("/statusz: %d %s", code, b)
			}
			if !st.Ready || st.Provider.Status != "unavailable" || !strings.Contains(strings.Join(st.Provider.Reasons, ";"), tt.reason) {
				t.Fatalf("/statusz during %s: %s, want ready with the provider unavailable (%s)", tt.name, b, tt.reason)
			}
			if strings.Contains(string(b), "sk-test-not-a-key") {
				t.Fatalf("/statusz shows the provider key: %s", b)
			}

			s.drain()
			if code, b := get(t, ts.URL+"/readyz"); code != 503 || !strings.Contains(string(b), "draining") {
				t.Fatalf("/readyz while shutting down: %d %s, want 503", code, b)
			}
			if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
				t.Fatalf("/healthz while shutting down: %d, want 200 (alive)", code)
			}
		})
	}
}

func TestStatusHealthy(t *testing.T) {
	ts, _, _ := newTestServer(t, env{"LLMKIT_API_KEYS": "k1 acme 10, k2 globex", "CACHE_NONDETERMINISTIC": "0"})
	code, b := get(t, ts.URL+"/statusz")
	var st statusJSON
	if code != 200 || json.Unmarshal(b, &st) != nil {
		t.Fatalf("/statusz: %d %s", code, b)
	}
	if !st.Ready || st.Provider.Status != "ready" || st.Provider.Name != "sim" || st.APIKeys != 2 || st.Limits != 1 || st.Redis != nil {
		t.Fatalf("/statusz: %s", b)
	}
	if strings.Contains(string(b), "k1") || strings.Contains(string(b), "k2") {
		t.Fatalf("/statusz shows a key: %s", b)
	}
}
