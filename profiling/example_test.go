package profiling_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/profiling"
)

// Labels puts the endpoint and model on the goroutine running the call, so
// CPU and goroutine profiles split work by call site.
func ExampleLabels() {
	labels, err := profiling.Labels(profiling.Models("gpt-4o", "claude-sonnet"))
	if err != nil {
		log.Fatal(err)
	}
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		ep, _ := pprof.Label(ctx, "endpoint")
		model, _ := pprof.Label(ctx, "model")
		fmt.Printf("endpoint=%s model=%s\n", ep, model)
		return &llm.Response{Text: "ok"}, nil
	})
	client := llm.Wrap(provider, labels)
	client.Generate(context.Background(), &llm.Request{Endpoint: "summarize", Model: "gpt-4o"})
	client.Generate(context.Background(), &llm.Request{Endpoint: "chat", Model: "some-new-model"})
	// Output:
	// endpoint=summarize model=gpt-4o
	// endpoint=chat model=other
}

// A Capturer saves a CPU profile (here; a flight-recorder trace by
// default) when a call is slow or sampled, at most once per interval.
func ExampleNewCapturer() {
	sink := profiling.SinkFunc(func(c profiling.Capture) error {
		fmt.Println(c.Kind, c.Reason, c.Endpoint, c.Model, len(c.Data) > 0)
		return nil
	})
	capturer, err := profiling.NewCapturer(sink,
		profiling.Sample(2),           // every second call...
		profiling.Interval(time.Hour), // ...but at most one capture an hour
		profiling.NoTrace(), profiling.CPUProfile(0),
	)
	if err != nil {
		log.Fatal(err)
	}
	client := llm.Wrap(llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "ok"}, nil
	}), capturer.Middleware)
	for range 4 {
		client.Generate(context.Background(), &llm.Request{Endpoint: "summarize", Model: "gpt-4o"})
	}
	capturer.Close() // waits for the capture to reach the sink
	// Output:
	// cpu sampled summarize gpt-4o true
}

// Serve the profiles on a loopback listener of their own, never on the
// public mux, and require a token.
func ExampleHandler() {
	h, err := profiling.Handler(profiling.Token("s3cret"))
	if err != nil {
		log.Fatal(err)
	}
	// In a service:
	//
	//	srv := &http.Server{Addr: "127.0.0.1:6060", Handler: h, ReadHeaderTimeout: 5 * time.Second}
	//	go srv.ListenAndServe()
	//
	// and then: go tool pprof -http=: -H 'Authorization: Bearer s3cret' \
	//	http://127.0.0.1:6060/debug/pprof/profile?seconds=10
	for _, token := range []string{"", "s3cret"} {
		r := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// 401
	// 200
}

// Time a block of code outside a Client with one deferred call.
func ExampleTime() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // vary from run to run
			}
			return a
		},
	}))
	rerank := func(ctx context.Context) {
		defer profiling.Time(ctx, logger, "rerank")()
		// ... the work being timed ...
	}
	rerank(context.Background())
	// Output:
	// level=INFO msg=timing name=rerank
}
