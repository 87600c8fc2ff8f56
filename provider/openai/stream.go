package openai

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/llmkit/llmkit/llm"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

var doneMarker = []byte("[DONE]")

// doneDecoder is the SDK's own SSE decoder with one addition: it records
// whether the "data: [DONE]" event arrived. ssestream.Stream ends iteration
// identically for [DONE] and for a body that simply ended, so without this
// a stream cut between chunks would look like a clean, short answer.
type doneDecoder struct {
	ssestream.Decoder
	done bool
}

func (d *doneDecoder) Next() bool {
	if !d.Decoder.Next() {
		return false
	}
	if bytes.HasPrefix(d.Event().Data, doneMarker) {
		d.done = true
	}
	return true
}

// stream runs a streamed chat completion: one Stream call per non-empty
// content delta of the first choice, in order, from this goroutine.
func (c *Client) stream(ctx context.Context, req *llm.Request, p *sdk.ChatCompletionNewParams) (*llm.Response, error) {
	if c.streamUsage {
		p.StreamOptions.IncludeUsage = param.NewOpt(true)
	}
	// WithResponseBodyInto hands the raw response to the adapter instead of
	// the SDK's decoder, so the adapter can decode it through doneDecoder;
	// the SDK still builds, authenticates and sends the request and turns an
	// error status into *openai.Error.
	var raw *http.Response
	opts := append(c.opts, option.WithResponseBodyInto(&raw))
	sdkStream := c.sdk.Chat.Completions.NewStreaming(ctx, *p, opts...)
	err := sdkStream.Err()
	_ = sdkStream.Close() // holds no decoder: raw was diverted to us
	if err != nil {
		return nil, c.classify(ctx, err, raw)
	}
	if raw == nil || raw.Body == nil {
		return nil, &llm.Error{Kind: llm.KindUnknown, Provider: c.provider, Message: "streaming response without a body"}
	}
	dec := &doneDecoder{Decoder: ssestream.NewDecoder(raw)}
	stream := ssestream.NewStream[sdk.ChatCompletionChunk](dec, nil)
	defer stream.Close()

	resp := &llm.Response{}
	var text strings.Builder
	index := 0
	for stream.Next() {
		chunk := stream.Current()
		if chunk.ID != "" {
			resp.ID = chunk.ID
		}
		if chunk.Model != "" {
			resp.Model = chunk.Model
		}
		if chunk.Usage.PromptTokens != 0 || chunk.Usage.CompletionTokens != 0 {
			resp.Usage = usage(&chunk.Usage)
		}
		for i := range chunk.Choices {
			choice := &chunk.Choices[i]
			if choice.Index != 0 {
				continue
			}
			if delta := choice.Delta.Content; delta != "" {
				text.WriteString(delta)
				if err := req.Stream(llm.Chunk{Index: index, Text: delta}); err != nil {
					// Closing the body aborts the HTTP exchange; the
					// callback's error goes back unchanged.
					_ = stream.Close()
					return nil, err
				}
				index++
			}
			if choice.FinishReason != "" {
				resp.FinishReason = finishReason(choice.FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, c.classify(ctx, err, raw)
		}
		var se *ssestream.StreamError
		if errors.As(err, &se) {
			return nil, c.transportError(err, raw.Header, raw.Request)
		}
		// The body broke off (connection reset, truncated chunked
		// encoding) or a chunk did not decode: the answer is cut.
		e := c.streamCut(index, dec.done, resp.FinishReason != "", raw.Header)
		e.Err = err
		return nil, e
	}
	if !dec.done || resp.FinishReason == "" {
		return nil, c.streamCut(index, dec.done, resp.FinishReason != "", raw.Header)
	}
	resp.Text = text.String()
	resp.Quota = ParseQuota(raw.Header)
	return resp, nil
}
