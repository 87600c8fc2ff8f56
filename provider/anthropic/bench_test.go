package anthropic

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmkit/llmkit/llm"
)

const benchBody = `{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",` +
	`"content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10}}`

var benchStream = strings.Join([]string{
	`event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}`,
	`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello!"}}`,
	`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" How can I"}}`,
	`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" help you today?"}}`,
	`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":0}`,
	`event: message_delta` + "\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":10}}`,
	`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
}, "\n\n") + "\n\n"

// benchServer answers like the Messages API, quota headers included.
func benchServer(b *testing.B) *sdk.Client {
	hdr := quotaHeaders(time.Now())
	srv := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header()[k] = v
		}
		if strings.Contains(r.Header.Get("Accept"), "event-stream") || r.ContentLength > 0 && peekStream(r) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte(benchStream))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(benchBody))
	}))
	c := sdk.NewClient(option.WithAPIKey(testKey), option.WithBaseURL(srv.URL),
		option.WithHTTPClient(srv.Client()), option.WithMaxRetries(0))
	return &c
}

func peekStream(r *http.Request) bool {
	buf := make([]byte, r.ContentLength)
	n, _ := r.Body.Read(buf)
	return strings.Contains(string(buf[:n]), `"stream":true`)
}

// BenchmarkOverhead measures the adapter against a raw SDK call to the same
// loopback server: sdk and adapter report ns/op, B/op and allocs/op;
// ratio interleaves the two, call by call, so that load from elsewhere on
// the machine falls on both, and reports the ratio of their medians.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		name := "generate"
		if stream {
			name = "stream"
		}
		b.Run(name, func(b *testing.B) {
			sc := benchServer(b)
			c, err := New(sc)
			if err != nil {
				b.Fatal(err)
			}
			raw := func() {
				params := sdk.MessageNewParams{Model: DefaultModel, MaxTokens: DefaultMaxTokens,
					Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Hello"))}}
				if !stream {
					if _, err := sc.Messages.New(ctx, params); err != nil {
						b.Fatal(err)
					}
					return
				}
				s := sc.Messages.NewStreaming(ctx, params)
				var text strings.Builder
				for s.Next() {
					if ev := s.Current(); ev.Type == "content_block_delta" {
						text.WriteString(ev.Delta.Text)
					}
				}
				if s.Err() != nil {
					b.Fatal(s.Err())
				}
				s.Close()
			}
			sink := func(llm.Chunk) error { return nil }
			adapter := func() {
				req := llm.Prompt("Hello")
				if stream {
					req.Stream = sink
				}
				if _, err := c.Generate(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("sdk", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					raw()
				}
			})
			b.Run("adapter", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					adapter()
				}
			})
			b.Run("ratio", func(b *testing.B) {
				var rawT, adapterT []time.Duration
				for i := 0; b.Loop(); i++ {
					// Alternate which goes first, so neither always
					// finds the connection warm.
					first, second := raw, adapter
					if i%2 == 1 {
						first, second = adapter, raw
					}
					t0 := time.Now()
					first()
					t1 := time.Now()
					second()
					t2 := time.Now()
					if i%2 == 0 {
						rawT, adapterT = append(rawT, t1.Sub(t0)), append(adapterT, t2.Sub(t1))
					} else {
						adapterT, rawT = append(adapterT, t1.Sub(t0)), append(rawT, t2.Sub(t1))
					}
				}
				// Medians, so that a GC pause or a descheduling that lands
				// on one side does not decide the ratio.
				mr, ma := median(rawT), median(adapterT)
				b.ReportMetric(float64(ma)/float64(mr), "adapter/sdk")
				b.ReportMetric(float64(mr.Nanoseconds()), "sdk-median-ns")
				b.ReportMetric(float64(ma.Nanoseconds()), "adapter-median-ns")
			})
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkOwnWork is the adapter's own per-call work without the network:
// validate, map the request, build the call options, map the response and
// read the quota headers.
func BenchmarkOwnWork(b *testing.B) {
	c, err := New(&sdk.Client{})
	if err != nil {
		b.Fatal(err)
	}
	msg := &sdk.Message{ID: "msg_1", Model: "claude-x", StopReason: sdk.StopReasonEndTurn,
		Content: []sdk.ContentBlockUnion{{Type: "text", Text: "hello"}}}
	now := time.Now()
	h := quotaHeaders(now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var raw *http.Response
		for pb.Next() {
			req := llm.Prompt("Hello")
			if err := req.Validate(); err != nil {
				b.Fatal(err)
			}
			if _, err := c.params(req); err != nil {
				b.Fatal(err)
			}
			_ = c.callOptions(req, &raw)
			resp := toResponse(msg)
			resp.Quota = parseQuota(h, now)
		}
	})
}
