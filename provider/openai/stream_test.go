package openai_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
)

const (
	chunkA    = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}` + "\n\n"
	chunkB    = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}` + "\n\n"
	chunkStop = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	chunkUse  = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}}}` + "\n\n"
	done      = "data: [DONE]\n\n"
)

func sseServer(t *testing.T, body string) func() (*llm.Response, []string, error) {
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, body)
	})
	return func() (*llm.Response, []string, error) {
		var got []string
		req := llm.Prompt("hi")
		req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
		resp, err := c.Generate(context.Background(), req)
		return resp, got, err
	}
}

func TestStreamEndDetection(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		cut  bool
	}{
		{"complete", chunkA + chunkB + chunkStop + chunkUse + done, false},
		{"complete with comments and event names", ": keep-alive\n\n" + chunkA + "event: message\n" + chunkB + chunkStop + done, false},
		{"no [DONE]", chunkA + chunkB + chunkStop + chunkUse, true},
		{"no finish reason", chunkA + chunkB + done, true},
		{"neither", chunkA + chunkB, true},
		{"empty body", "", true},
		{"JSON instead of SSE", `{"id":"x","choices":[]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, chunks, err := sseServer(t, tc.body)()
			if tc.cut {
				if !errors.Is(err, llm.ErrStreamCut) || resp != nil {
					t.Fatalf("got %v, %v; want a stream_cut error", resp, err)
				}
				if !llm.Retryable(err) {
					t.Fatal("stream_cut must be retryable")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != "Hello" || strings.Join(chunks, "|") != "Hel|lo" || resp.FinishReason != llm.FinishStop || resp.ID != "c1" {
				t.Fatalf("response %+v chunks %q", resp, chunks)
			}
			if strings.Contains(tc.body, chunkUse) && resp.Usage != (llm.Usage{InputTokens: 9, OutputTokens: 2, CachedInputTokens: 4}) {
				t.Fatalf("usage %+v", resp.Usage)
			}
		})
	}
}

// TestStreamConnectionDropped: the server hijacks the connection and closes
// it in the middle of the chunked body.
func TestStreamConnectionDropped(t *testing.T) {
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, chunkA)
		w.(http.Flusher).Flush()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		// Half a chunk of the chunked encoding, then the connection ends.
		buf.WriteString("40\r\ndata: {\"id\"")
		buf.Flush()
		conn.Close()
	})
	var got []string
	req := llm.Prompt("hi")
	req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
	_, err := c.Generate(context.Background(), req)
	if !errors.Is(err, llm.ErrStreamCut) || strings.Join(got, "") != "Hel" {
		t.Fatalf("got %v after %q, want stream_cut after the first chunk", err, got)
	}
}

func TestStreamErrorEvent(t *testing.T) {
	resp, chunks, err := sseServer(t, chunkA+`data: {"error":{"message":"The server had an error while processing your request","type":"server_error"}}`+"\n\n")()
	if resp != nil || llm.KindOf(err) != llm.KindUnavailable || len(chunks) != 1 {
		t.Fatalf("got %v %v %q, want unavailable after one chunk", resp, err, chunks)
	}
	if !strings.Contains(err.Error(), "server had an error") {
		t.Fatalf("error %q lost the provider's message", err)
	}
}

// TestStreamCallbackErrorCancelsRequest: the server sees the request end as
// soon as the callback fails, instead of streaming to nobody.
func TestStreamCallbackErrorCancelsRequest(t *testing.T) {
	gone := make(chan struct{})
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, chunkA)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // would stream forever otherwise
		close(gone)
	})
	stop := errors.New("enough")
	req := llm.Prompt("hi")
	req.Stream = func(llm.Chunk) error { return stop }
	_, err := c.Generate(context.Background(), req)
	if err != stop {
		t.Fatalf("got %v, want the callback's error unchanged", err)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second): // a liveness bound, not a timing assertion
		t.Fatal("the server never saw the request canceled")
	}
}

func TestStreamCanceledMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, chunkA)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	req := llm.Prompt("hi")
	req.Stream = func(llm.Chunk) error { cancel(); return nil }
	_, err := c.Generate(ctx, req)
	if llm.KindOf(err) != llm.KindCanceled {
		t.Fatalf("got %v, want canceled", err)
	}
}
