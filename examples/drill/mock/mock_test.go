package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/openai"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient runs the mock on a loopback test server and returns llmkit's
// OpenAI adapter pointed at it: the mock is tested through the client the
// service uses.
func newClient(t *testing.T) (*openai.Client, *httptest.Server) {
	t.Helper()
	ts := httptest.NewServer(newMock())
	t.Cleanup(ts.Close)
	c, err := openai.NewFromConfig("sk-dummy", ts.URL+"/v1", openai.WithModel("gpt-4o-mini"))
	if err != nil {
		t.Fatal(err)
	}
	return c, ts
}

func setFault(t *testing.T, ts *httptest.Server, query string) {
	t.Helper()
	resp, err := http.Post(ts.URL+"/fault?"+query, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /fault?%s: %s", query, resp.Status)
	}
}

func ask(stream func(llm.Chunk) error) *llm.Request {
	return &llm.Request{Messages: []llm.Message{llm.User("简单提示词")}, Stream: stream}
}

func TestAnswersThroughTheOpenAIAdapter(t *testing.T) {
	c, _ := newClient(t)
	resp, err := c.Generate(context.Background(), ask(nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != answer || resp.FinishReason != llm.FinishStop || resp.Usage.OutputTokens != len(answerWords) || resp.Usage.InputTokens == 0 {
		t.Fatalf("response = %+v", resp)
	}
}

func TestStreamsWordByWord(t *testing.T) {
	c, _ := newClient(t)
	var chunks []string
	resp, err := c.Generate(context.Background(), ask(func(ch llm.Chunk) error {
		chunks = append(chunks, ch.Text)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != len(answerWords) || strings.Join(chunks, "") != answer || resp.Text != answer {
		t.Fatalf("chunks = %q, text = %q", chunks, resp.Text)
	}
	if resp.Usage.OutputTokens != len(answerWords) {
		t.Fatalf("stream usage = %+v, want the usage chunk's", resp.Usage)
	}
}

func TestFaultsSwitchOverHTTP(t *testing.T) {
	c, ts := newClient(t)

	setFault(t, ts, "mode=unavailable")
	_, err := c.Generate(context.Background(), ask(nil))
	if k := llm.KindOf(err); k != llm.KindUnavailable && k != llm.KindOverloaded {
		t.Fatalf("unavailable: err = %v (kind %v), want a retryable provider outage", err, k)
	}
	if !llm.Retryable(err) {
		t.Fatalf("unavailable: %v is not retryable", err)
	}
	// A stream fails the same way, before any chunk.
	if _, serr := c.Generate(context.Background(), ask(func(llm.Chunk) error { return nil })); serr == nil || llm.KindOf(serr) != llm.KindOf(err) {
		t.Fatalf("unavailable stream: err = %v, want kind %v", serr, llm.KindOf(err))
	}

	setFault(t, ts, "mode=ratelimited&retry_after=30s")
	_, err = c.Generate(context.Background(), ask(nil))
	if llm.KindOf(err) != llm.KindRateLimited || llm.RetryAfterOf(err) != 30*time.Second {
		t.Fatalf("ratelimited: err = %v, kind %v, retry after %v", err, llm.KindOf(err), llm.RetryAfterOf(err))
	}

	setFault(t, ts, "mode=ok")
	if _, err := c.Generate(context.Background(), ask(nil)); err != nil {
		t.Fatalf("ok again: %v", err)
	}

	resp, err := http.Get(ts.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]int64
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats["ok"] != 1 || stats["unavailable"] != 2 || stats["ratelimited"] != 1 {
		t.Fatalf("stats = %v", stats)
	}
}

func TestBadFaultIsRejected(t *testing.T) {
	for _, q := range []string{"mode=broken", "", "mode=slow&delay=-1s", "mode=slow&delay=1h", "mode=ratelimited&retry_after=10ms"} {
		vals, _ := url.ParseQuery(q)
		if _, err := parseFault(vals); err == nil {
			t.Errorf("parseFault(%q) accepted", q)
		}
	}
	_, ts := newClient(t)
	resp, err := http.Post(ts.URL+"/fault?mode=broken", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad fault: %s", resp.Status)
	}
}

// The slow mode waits its delay on a timer, and gives up when the caller
// does: checked in a synctest bubble, so no real time passes.
func TestSlowModeWaitsAndHonoursCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMock()
		m.fault.Store(&fault{Mode: modeSlow, Delay: 3 * time.Second})
		body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

		start := time.Now()
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body)))
		if rec.Code != http.StatusOK || time.Since(start) != 3*time.Second {
			t.Fatalf("slow: status %d after %v", rec.Code, time.Since(start))
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rec = httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions", strings.NewReader(body)))
		if m.canceled.Load() != 1 || m.ok.Load() != 1 {
			t.Fatalf("canceled = %d, ok = %d", m.canceled.Load(), m.ok.Load())
		}
	})
}

func TestRunListensOnLoopbackOnly(t *testing.T) {
	if err := run(context.Background(), "0.0.0.0:0", func(string) {}); err == nil {
		t.Fatal("run accepted a non-loopback address")
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", func(a string) { addrs <- a }) }()
	addr := <-addrs
	resp, err := http.Get("http://" + addr + "/fault")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}
