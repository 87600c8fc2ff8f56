package anthropic

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestConstructionErrors(t *testing.T) {
	sc := &sdk.Client{}
	for name, build := range map[string]func() (*Client, error){
		"nil client":        func() (*Client, error) { return New(nil) },
		"zero max tokens":   func() (*Client, error) { return New(sc, WithMaxTokens(0)) },
		"empty model":       func() (*Client, error) { return New(sc, WithModel(" ")) },
		"empty provider":    func() (*Client, error) { return New(sc, WithProvider("")) },
		"nil request opt":   func() (*Client, error) { return New(sc, WithRequestOptions(nil)) },
		"relative base URL": func() (*Client, error) { return NewFromConfig(testKey, "api.example.com/v1") },
		"no key anywhere": func() (*Client, error) {
			t.Setenv(EnvAPIKey, "")
			return NewFromConfig("", "")
		},
	} {
		if c, err := build(); c != nil || err == nil {
			t.Errorf("%s: got %v, %v; want an error", name, c, err)
		}
	}
	if _, err := New(sc, nil, WithMaxTokens(10)); err != nil {
		t.Errorf("a nil Option must be ignored: %v", err)
	}
}

func TestNewFromConfigReadsEnv(t *testing.T) {
	tr := handler(&llmtest.Fake{})
	srv := serve(t, tr)
	t.Setenv(EnvAPIKey, testKey)
	c, err := NewFromConfig("", srv.URL, WithRequestOptions(option.WithHTTPClient(srv.Client())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Generate(context.Background(), llm.Prompt("hi")); err != nil {
		t.Fatalf("with the key from %s: %v", EnvAPIKey, err)
	}
}

func TestWithProviderAndRequestOptions(t *testing.T) {
	var sawHeader string
	up := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return nil, llmtest.Error(llm.KindBadRequest)
	})
	tr := handler(up)
	srv := serve(t, tr)
	c := newAdapter(t, srv, WithProvider("anthropic-eu"),
		WithRequestOptions(option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			sawHeader = r.Header.Get("Anthropic-Beta")
			return next(r)
		}), option.WithHeader("anthropic-beta", "test-beta")))
	_, err := c.Generate(context.Background(), llm.Prompt("hi"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Provider != "anthropic-eu" {
		t.Fatalf("err %v: want Provider anthropic-eu", err)
	}
	if sawHeader != "test-beta" {
		t.Fatalf("anthropic-beta header = %q: request options not applied", sawHeader)
	}
}

func TestLargeMaxTokensWithoutStreaming(t *testing.T) {
	tr := handler(&llmtest.Fake{})
	c := newAdapter(t, serve(t, tr))
	req := llm.Prompt("write a book")
	req.MaxTokens = 64000
	_, err := c.Generate(context.Background(), req)
	if !errors.Is(err, llm.ErrBadRequest) || tr.calls.Load() != 0 {
		t.Fatalf("got %v after %d requests; want the SDK's refusal as bad_request, before any request", err, tr.calls.Load())
	}
	req.Stream = func(llm.Chunk) error { return nil }
	if _, err := c.Generate(context.Background(), req); err != nil {
		t.Fatalf("streamed, the same request is fine: %v", err)
	}
}

func TestStreamCanceledMidway(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Chunks: []string{"a", "b", "c"}, ChunkDelay: time.Hour}}
	c := newAdapter(t, serve(t, handler(up)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := llm.Prompt("hi")
	var got []string
	req.Stream = func(ch llm.Chunk) error {
		got = append(got, ch.Text)
		cancel() // the caller gives up after the first chunk
		return nil
	}
	resp, err := c.Generate(ctx, req)
	if resp != nil || !errors.Is(err, llm.ErrCanceled) {
		t.Fatalf("got %v, %v; want canceled", resp, err)
	}
	if len(got) != 1 {
		t.Fatalf("chunks = %q, want just the first", got)
	}
}

func TestExtraNotEncodable(t *testing.T) {
	tr := handler(&llmtest.Fake{})
	c := newAdapter(t, serve(t, tr))
	for _, v := range []any{make(chan int), func() {}} {
		req := llm.Prompt("x")
		req.Extra = map[string]any{"bad": v}
		if _, err := c.Generate(context.Background(), req); !errors.Is(err, llm.ErrBadRequest) {
			t.Errorf("Extra %T: %v, want bad_request", v, err)
		}
	}
	if n := tr.calls.Load(); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}
