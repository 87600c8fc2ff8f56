package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuantileAndLevels(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if q := quantile(d, 0.5); q != 5 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(d, 0.99); q != 10 {
		t.Errorf("p99 = %v", q)
	}
	if q := quantile(d[:1], 0.5); q != 1 {
		t.Errorf("p50 of one = %v", q)
	}
	if l, err := parseLevels("1, 8,64"); err != nil || len(l) != 3 || l[2] != 64 {
		t.Errorf("parseLevels = %v, %v", l, err)
	}
	for _, bad := range []string{"", "0", "1,x", "2000"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted", bad)
		}
	}
}

// measure counts only 200 answers posted with the target's body, and
// reports the others as errors.
func TestMeasureCountsAnswers(t *testing.T) {
	var calls, bad atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if n := calls.Add(1); !bytes.Equal(b, uncached) || n%5 == 0 && r.URL.Path == "/flaky" {
			bad.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer ts.Close()

	res, err := measure(context.Background(), target{"ok", ts.URL + "/", uncached}, 4, 20*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 || int64(res.Requests) > calls.Load() {
		t.Fatalf("result = %+v after %d calls", res, calls.Load())
	}
	res, err = measure(context.Background(), target{"flaky", ts.URL + "/flaky", uncached}, 2, 0, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "503") || res.Errors == 0 {
		t.Fatalf("flaky: result %+v, err %v", res, err)
	}
}

// The proxy forwards to its upstream with the path and body unchanged.
func TestProxyForwards(t *testing.T) {
	var got atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.URL.Path + " " + string(b))
		io.WriteString(w, "answer")
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	proxy := newProxy(u)
	px := httptest.NewServer(proxy)
	defer px.Close()
	defer proxy.Transport.(*http.Transport).CloseIdleConnections()

	resp, err := http.Post(px.URL+"/v1/chat/completions", "application/json", bytes.NewReader(openAIBody))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "answer" || got.Load() != "/v1/chat/completions "+string(openAIBody) {
		t.Fatalf("proxy answered %q; upstream saw %v", b, got.Load())
	}
	if err := loopbackOnly("0.0.0.0:1"); err == nil {
		t.Error("a non-loopback listen address was accepted")
	}
}

// The adapter reference answers /generate through the OpenAI adapter.
func TestAdapterAnswers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}`)
	}))
	defer up.Close()
	h, err := newAdapterHandler(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/generate", bytes.NewReader(uncached)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"text":"hello"`) {
		t.Fatalf("adapter: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/generate", strings.NewReader("{")))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("bad body: %d", rec.Code)
	}
}

// The table compares every target with the right reference.
func TestWriteTable(t *testing.T) {
	res := func(rps int, p50 time.Duration) result {
		return result{Requests: rps, Elapsed: time.Second, P50: p50}
	}
	var b strings.Builder
	writeTable(&b, []row{{Concurrency: 8, Results: map[string]result{
		"direct": res(1000, 100*time.Microsecond), "proxy": res(800, 150*time.Microsecond),
		"adapter": res(500, 200*time.Microsecond), "service": res(400, 250*time.Microsecond),
		"cached": res(1500, 90*time.Microsecond),
	}}}, benchConfig{Duration: time.Second})
	want := "| 8 | 1000, 100 µs | 800, 150 µs (+50 µs) | 500, 200 µs (+100 µs) | 400 (0.50×, 0.80×), 250 µs (+150 µs) | 1500 (1.50×), 90 µs (-10 µs) |"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("table:\n%s\nwant the row\n%s", b.String(), want)
	}
}
