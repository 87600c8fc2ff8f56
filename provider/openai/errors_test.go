package openai_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/openai"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// rawClient points the adapter at a hand-written handler.
func rawClient(t *testing.T, h http.HandlerFunc, opts ...openai.Option) *openai.Client {
	t.Helper()
	return newTestClient(t, h, opts...)
}

func writeCompletion(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, text)
}

func asLLMError(t *testing.T, err error) *llm.Error {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	return e
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		kind    llm.Kind
		message string // a substring the Message must hold
	}{
		{"429", 429, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, llm.KindRateLimited, "Rate limit reached (rate_limit_exceeded)"},
		{"500", 500, `{"error":{"message":"boom","type":"server_error","code":null}}`, llm.KindUnavailable, "boom"},
		{"502 plain text from a proxy", 502, `<html>Bad Gateway</html>`, llm.KindUnavailable, "Bad Gateway"},
		{"503", 503, `{"error":{"message":"The engine is currently overloaded","type":"server_error"}}`, llm.KindUnavailable, "overloaded"},
		{"529", 529, `{"error":{"message":"Overloaded","type":"overloaded_error"}}`, llm.KindOverloaded, "Overloaded"},
		{"408", 408, `{"error":{"message":"Request timed out","type":"timeout"}}`, llm.KindTimeout, "timed out"},
		{"401", 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, llm.KindAuth, "invalid_api_key"},
		{"403", 403, `{"error":{"message":"Country not supported","type":"request_forbidden","code":"unsupported_country_region_territory"}}`, llm.KindAuth, "Country"},
		{"400", 400, `{"error":{"message":"Invalid value for temperature","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`, llm.KindBadRequest, "temperature"},
		{"404 model", 404, `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`, llm.KindBadRequest, "model_not_found"},
		{"context_length_exceeded", 400, `{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`, llm.KindContextLength, "8192"},
		{"string_above_max_length", 400, `{"error":{"message":"string too long","type":"invalid_request_error","code":"string_above_max_length"}}`, llm.KindContextLength, "too long"},
		{"vLLM context length without code", 400, `{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","param":null,"code":400}`, llm.KindContextLength, "4096"},
		{"content_filter", 400, `{"error":{"message":"filtered","type":"invalid_request_error","code":"content_filter"}}`, llm.KindContentFilter, "filtered"},
		{"content_policy_violation", 400, `{"error":{"message":"Your request was rejected","type":"invalid_request_error","code":"content_policy_violation"}}`, llm.KindContentFilter, "rejected"},
		{"FastAPI detail", 422, `{"detail":"Field required: messages"}`, llm.KindBadRequest, "Field required"},
		{"error as a string", 400, `{"error":"model is required"}`, llm.KindBadRequest, "model is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("x-ratelimit-remaining-requests", "0")
					if strings.HasPrefix(tc.body, "{") {
						w.Header().Set("Content-Type", "application/json")
					}
					w.WriteHeader(tc.status)
					fmt.Fprint(w, tc.body)
				})
				req := llm.Prompt("hi")
				if stream {
					req.Stream = func(llm.Chunk) error { t.Error("chunk from an error response"); return nil }
				}
				resp, err := c.Generate(context.Background(), req)
				if resp != nil {
					t.Fatalf("stream=%v: got a response with the error", stream)
				}
				e := asLLMError(t, err)
				if e.Kind != tc.kind || e.Status != tc.status || e.Provider != "openai" {
					t.Fatalf("stream=%v: got kind %v status %d provider %q (%v), want %v %d openai", stream, e.Kind, e.Status, e.Provider, err, tc.kind, tc.status)
				}
				if !strings.Contains(e.Message, tc.message) {
					t.Fatalf("stream=%v: message %q does not hold %q", stream, e.Message, tc.message)
				}
				if e.Quota == nil || e.Quota.RemainingRequests != 0 {
					t.Fatalf("stream=%v: quota on error = %+v, want remaining requests 0", stream, e.Quota)
				}
				var apiErr *sdk.Error
				if strings.HasPrefix(tc.body, `{"error":{`) && !errors.As(err, &apiErr) {
					t.Fatalf("stream=%v: the SDK's *openai.Error is not reachable with errors.As", stream)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name     string
		headers  map[string]string
		min, max time.Duration
	}{
		{"seconds", map[string]string{"retry-after": "7"}, 7 * time.Second, 7 * time.Second},
		{"milliseconds win", map[string]string{"retry-after": "7", "retry-after-ms": "1500"}, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"http date", map[string]string{"retry-after": future}, 80 * time.Second, 91 * time.Second},
		{"quota reset when nothing else", map[string]string{"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, 6 * time.Minute, 6 * time.Minute},
		{"none", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.headers {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(429)
				fmt.Fprint(w, `{"error":{"message":"slow down","type":"tokens","code":"rate_limit_exceeded"}}`)
			})
			_, err := c.Generate(context.Background(), llm.Prompt("hi"))
			e := asLLMError(t, err)
			if e.Kind != llm.KindRateLimited {
				t.Fatalf("kind %v", e.Kind)
			}
			if got := llm.RetryAfterOf(err); got < tc.min || got > tc.max {
				t.Fatalf("RetryAfter = %v, want in [%v, %v]", got, tc.min, tc.max)
			}
		})
	}
}

// TestOneRequestPer503: the SDK would retry a 503 twice on its own; the
// adapter turns that off, for clients it builds and for clients it wraps.
func TestOneRequestPer503(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		fmt.Fprint(w, `{"error":{"message":"unavailable","type":"server_error"}}`)
	}))
	t.Cleanup(srv.Close)

	fromConfig, err := openai.NewFromConfig(testKey, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	// A user's SDK client with the SDK's default retries (2) and no
	// backoff to speak of.
	wrapped, err := openai.New(sdkClientFor(t, srv.URL, option.WithMaxRetries(2), option.WithMaxRetryDelay(time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*openai.Client{"NewFromConfig": fromConfig, "New": wrapped} {
		for _, stream := range []bool{false, true} {
			before := hits.Load()
			req := llm.Prompt("hi")
			if stream {
				req.Stream = func(llm.Chunk) error { return nil }
			}
			_, err := c.Generate(context.Background(), req)
			if llm.KindOf(err) != llm.KindUnavailable {
				t.Fatalf("%s stream=%v: %v, want unavailable", name, stream, err)
			}
			if n := hits.Load() - before; n != 1 {
				t.Fatalf("%s stream=%v: %d HTTP requests for one Generate, want 1", name, stream, n)
			}
		}
	}
}

func TestSDKRetriesCanBeTurnedBackOn(t *testing.T) {
	var hits atomic.Int64
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		writeCompletion(w, "second time")
	}, openai.WithRequestOptions(option.WithMaxRetries(1), option.WithMaxRetryDelay(time.Millisecond)))
	resp, err := c.Generate(context.Background(), llm.Prompt("hi"))
	if err != nil || resp.Text != "second time" || hits.Load() != 2 {
		t.Fatalf("resp=%v err=%v hits=%d, want the SDK's retry to succeed", resp, err, hits.Load())
	}
}

func TestQuota(t *testing.T) {
	headers := map[string]string{
		"x-ratelimit-limit-requests":     "10000",
		"x-ratelimit-remaining-requests": "9999",
		"x-ratelimit-limit-tokens":       "2000000",
		"x-ratelimit-remaining-tokens":   "1999000",
		"x-ratelimit-reset-requests":     "6ms",
		"x-ratelimit-reset-tokens":       "1m30.5s",
	}
	want := llm.Quota{LimitRequests: 10000, RemainingRequests: 9999, LimitTokens: 2000000, RemainingTokens: 1999000,
		ResetRequests: 6 * time.Millisecond, ResetTokens: 90*time.Second + 500*time.Millisecond}
	for _, stream := range []bool{false, true} {
		for _, fail := range []bool{false, true} {
			c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range headers {
					w.Header().Set(k, v)
				}
				switch {
				case fail:
					w.WriteHeader(500)
				case stream:
					w.Header().Set("Content-Type", "text/event-stream")
					fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
				default:
					writeCompletion(w, "hi")
				}
			})
			req := llm.Prompt("hi")
			if stream {
				req.Stream = func(llm.Chunk) error { return nil }
			}
			resp, err := c.Generate(context.Background(), req)
			var got *llm.Quota
			if fail {
				got = asLLMError(t, err).Quota
			} else if err != nil {
				t.Fatal(err)
			} else {
				got = resp.Quota
			}
			if got == nil || *got != want {
				t.Fatalf("stream=%v fail=%v: quota = %+v, want %+v", stream, fail, got, want)
			}
		}
	}
}

// TestCanaryKey: the key the client was given never appears in an error's
// text, even when the server echoes the Authorization header back.
func TestCanaryKey(t *testing.T) {
	const canary = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
	echo := func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if !strings.Contains(auth, canary) {
			t.Errorf("server got Authorization %q, want the canary key", auth)
		}
		switch r.URL.Query().Get("shape") {
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. You sent Authorization: %s","type":"invalid_request_error","code":"invalid_api_key"}}`, canary, auth)
		case "text":
			w.WriteHeader(403)
			fmt.Fprintf(w, "forbidden for %s (key %s)", auth, strings.TrimPrefix(auth, "Bearer "))
		case "stream":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"key %s revoked\",\"type\":\"invalid_request_error\"}}\n\n", canary)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(echo))
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	fromConfig, err := openai.NewFromConfig(canary, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sdkc := sdk.NewClient(option.WithAPIKey(canary), option.WithBaseURL(srv.URL))
	wrapped, err := openai.New(&sdkc)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*openai.Client{"NewFromConfig": fromConfig, "New": wrapped} {
		for _, shape := range []string{"json", "text", "stream"} {
			opt := openai.WithRequestOptions(option.WithQuery("shape", shape))
			c2, err := openai.New(c.SDK(), opt)
			if err != nil {
				t.Fatal(err)
			}
			req := llm.Prompt("hi")
			if shape == "stream" {
				req.Stream = func(llm.Chunk) error { return nil }
			}
			_, err = c2.Generate(context.Background(), req)
			if err == nil {
				t.Fatalf("%s/%s: no error", name, shape)
			}
			e := asLLMError(t, err)
			for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), e.Message} {
				if strings.Contains(text, canary) || strings.Contains(text, "canary") {
					t.Fatalf("%s/%s: the key leaked into the error: %s", name, shape, text)
				}
			}
			if !strings.Contains(e.Message, llm.Redacted) {
				t.Fatalf("%s/%s: message %q shows no redaction: did the echo arrive?", name, shape, e.Message)
			}
		}
	}
}

// TestCanaryKeyWithoutKeyShape: a key that does not look like one (so
// llm.Redact cannot know it) is still removed, because the adapter strips
// the credentials the request itself carried.
func TestCanaryKeyWithoutKeyShape(t *testing.T) {
	const canary = "plainlocaltoken42"
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":{"message":"unknown token %s","type":"auth"}}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}, openai.WithRequestOptions(option.WithAPIKey(canary)))
	_, err := c.Generate(context.Background(), llm.Prompt("hi"))
	if llm.KindOf(err) != llm.KindAuth || strings.Contains(err.Error(), canary) {
		t.Fatalf("got %v, want auth without the token", err)
	}
}

func TestContextErrors(t *testing.T) {
	release := make(chan struct{})
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	for _, stream := range []bool{false, true} {
		req := llm.Prompt("hi")
		if stream {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		_, err := c.Generate(ctx, req)
		if e := asLLMError(t, err); e.Kind != llm.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stream=%v: %v, want timeout wrapping DeadlineExceeded", stream, err)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := openai.New(sdkClientFor(t, "http://"+addr+"/v1?key=sk-should-not-leak-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Generate(context.Background(), llm.Prompt("hi"))
	e := asLLMError(t, err)
	if e.Kind != llm.KindUnavailable || !llm.Retryable(err) {
		t.Fatalf("connection refused: %v, want unavailable", err)
	}
	if strings.Contains(err.Error(), "sk-should-not-leak") {
		t.Fatalf("key in URL leaked: %v", err)
	}
}

func TestInvalidRequestNeverSent(t *testing.T) {
	var hits atomic.Int64
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	for _, req := range []*llm.Request{nil, {}, {Messages: []llm.Message{llm.User("x")}, Temperature: llm.Ptr(3.0)}} {
		_, err := c.Generate(context.Background(), req)
		if llm.KindOf(err) != llm.KindBadRequest {
			t.Fatalf("%+v: %v, want bad_request", req, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d invalid requests reached the server", hits.Load())
	}
}

func TestOptionsValidated(t *testing.T) {
	good := sdkClientFor(t, "http://127.0.0.1:1")
	for name, build := range map[string]func() (*openai.Client, error){
		"nil client":     func() (*openai.Client, error) { return openai.New(nil) },
		"empty model":    func() (*openai.Client, error) { return openai.New(good, openai.WithModel("")) },
		"empty provider": func() (*openai.Client, error) { return openai.New(good, openai.WithProvider("")) },
	} {
		if c, err := build(); err == nil || c != nil {
			t.Fatalf("%s: got %v, %v; want an error", name, c, err)
		}
	}
	if _, err := openai.New(good, nil); err != nil {
		t.Fatalf("nil option: %v", err)
	}
}

func TestProviderName(t *testing.T) {
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, openai.WithProvider("vllm"))
	_, err := c.Generate(context.Background(), llm.Prompt("hi"))
	if e := asLLMError(t, err); e.Provider != "vllm" || !strings.HasPrefix(err.Error(), "llm: vllm: unavailable (status 500)") {
		t.Fatalf("error %v, want provider vllm", err)
	}
}

// TestBaseURLQueryKept: a query string in the base URL (an Azure-style
// gateway's ?api-version=…) reaches the server with every request, streamed
// or not, at the base URL's path; a base URL that is not an absolute
// http(s) URL is refused without echoing a key it may hold.
func TestBaseURLQueryKept(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path + "?" + r.URL.RawQuery)
		if strings.Contains(r.URL.RawQuery, "api-version") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"message":"seen","type":"invalid_request_error"}}`)
			return
		}
		w.WriteHeader(404)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	c, err := openai.NewFromConfig(testKey, srv.URL+"/openai/deployments/d1?api-version=2024-10-21")
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		req := llm.Prompt("hi")
		if stream {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		_, err := c.Generate(context.Background(), req)
		if llm.KindOf(err) != llm.KindBadRequest {
			t.Fatalf("stream=%v: %v, want the server's 400 (it saw the query)", stream, err)
		}
		if s, _ := got.Load().(string); s != "/openai/deployments/d1/chat/completions?api-version=2024-10-21" {
			t.Fatalf("stream=%v: the server saw %q", stream, s)
		}
	}
	for _, bad := range []string{"localhost:8000/v1?key=SECRETKEY", "ftp://x/v1", "http://x/v1#frag", "http://%zz"} {
		_, err := openai.NewFromConfig(testKey, bad)
		if err == nil {
			t.Fatalf("NewFromConfig(%q) accepted", bad)
		}
		if strings.Contains(err.Error(), "SECRETKEY") {
			t.Fatalf("the error echoes the key: %v", err)
		}
	}
}
