package anthropic

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmkit/llmkit/llm"
)

// EnvAPIKey is the environment variable NewFromConfig reads when it is given
// no key.
const EnvAPIKey = "ANTHROPIC_API_KEY"

// Client adapts an Anthropic SDK client to llm.Client over the Messages API.
// It is safe for concurrent use, as the SDK client is.
type Client struct {
	sdk       *sdk.Client
	model     sdk.Model
	maxTokens int64
	provider  string
	// reqOpts go on every call, before the per-call ones: the caller's
	// WithRequestOptions and, for a wrapped client, WithMaxRetries(0).
	reqOpts []option.RequestOption
	// now is the clock quota resets are measured against; tests replace it.
	now func() time.Time
	// httpClient is the http.Client NewFromConfig built; nil with New.
	httpClient *http.Client
}

var _ llm.Client = (*Client)(nil)

// noRetries turns the SDK's own retries off: resilience owns retries, and a
// retry inside the SDK would be invisible to it (and cost extra calls).
var noRetries = option.WithMaxRetries(0)

// New wraps an SDK client the caller already has. The SDK's retries are
// turned off on every request the adapter makes, whatever the client was
// built with. It returns an error for a nil client or an invalid option.
func New(client *sdk.Client, opts ...Option) (*Client, error) {
	if client == nil {
		return nil, errors.New("anthropic: nil SDK client")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	reqOpts := make([]option.RequestOption, 0, len(cfg.reqOpts)+1)
	reqOpts = append(reqOpts, cfg.reqOpts...)
	reqOpts = append(reqOpts, noRetries)
	return newClient(client, cfg, reqOpts), nil
}

// NewFromConfig builds an SDK client for apiKey and baseURL and wraps it.
// An empty apiKey means the ANTHROPIC_API_KEY environment variable; an
// empty baseURL means the SDK's default (https://api.anthropic.com, or
// ANTHROPIC_BASE_URL when set). The SDK client is built with
// option.WithMaxRetries(0) and an http.Client of its own that keeps
// DefaultMaxIdleConnsPerHost idle connections per host
// (WithMaxIdleConnsPerHost), not Go's default of 2. It returns an error
// when there is no key, the base URL does not parse, or an option is
// invalid.
func NewFromConfig(apiKey, baseURL string, opts ...Option) (*Client, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	if apiKey == "" {
		apiKey = os.Getenv(EnvAPIKey)
	}
	if apiKey == "" {
		return nil, errors.New("anthropic: no API key: pass one or set " + EnvAPIKey)
	}
	httpClient := newHTTPClient(cfg.idleConns)
	sdkOpts := []option.RequestOption{option.WithAPIKey(apiKey), option.WithHTTPClient(httpClient)}
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			// The URL may carry a secret (?key=): never echo it.
			return nil, errors.New("anthropic: base URL is not an absolute URL")
		}
		sdkOpts = append(sdkOpts, option.WithBaseURL(baseURL))
	}
	sdkOpts = append(sdkOpts, cfg.reqOpts...)
	sdkOpts = append(sdkOpts, noRetries)
	client := sdk.NewClient(sdkOpts...)
	c := newClient(&client, cfg, nil)
	c.httpClient = httpClient
	return c, nil
}

func buildConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	return cfg, cfg.validate()
}

func newClient(client *sdk.Client, cfg config, reqOpts []option.RequestOption) *Client {
	return &Client{
		sdk:       client,
		model:     sdk.Model(cfg.model),
		maxTokens: int64(cfg.maxTokens),
		provider:  cfg.provider,
		reqOpts:   reqOpts,
		now:       time.Now,
	}
}

// SDK returns the wrapped SDK client, for the API the adapter does not
// cover.
func (c *Client) SDK() *sdk.Client { return c.sdk }

// Generate sends req to the Messages API and maps the answer back. When
// req.Stream is set it streams: req.Stream is called once per text delta,
// from this goroutine, and the aggregated Response is returned after
// message_stop. Every failure is an *llm.Error.
func (c *Client) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, c.provider)
	}
	params, err := c.params(req)
	if err != nil {
		return nil, err
	}
	var raw *http.Response
	opts := c.callOptions(req, &raw)
	if req.Stream != nil {
		return c.stream(ctx, req, params, opts, &raw)
	}
	msg, err := c.sdk.Messages.New(ctx, params, opts...)
	if err != nil {
		return nil, c.mapError(ctx, err, raw)
	}
	resp := toResponse(msg)
	if raw != nil {
		resp.Quota = parseQuota(raw.Header, c.now())
	}
	return resp, nil
}

// callOptions returns the request options of one call: the fixed ones, one
// that captures the *http.Response (for the quota headers), and one per
// Extra parameter.
func (c *Client) callOptions(req *llm.Request, raw **http.Response) []option.RequestOption {
	opts := make([]option.RequestOption, 0, len(c.reqOpts)+1+len(req.Extra))
	opts = append(opts, c.reqOpts...)
	opts = append(opts, option.WithResponseInto(raw))
	for k, v := range req.Extra {
		opts = append(opts, option.WithJSONSet(jsonKey(k), v))
	}
	return opts
}

// jsonKey escapes the characters sjson reads as path syntax, so that an
// Extra name is always one top-level field.
func jsonKey(k string) string {
	if !strings.ContainsAny(k, `.*?\|#@:`) {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if strings.IndexByte(`.*?\|#@:`, k[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// stream runs a streamed call. The stream's body is closed on return, which
// is what cancels the request when the callback fails.
func (c *Client) stream(ctx context.Context, req *llm.Request, params sdk.MessageNewParams, opts []option.RequestOption, raw **http.Response) (*llm.Response, error) {
	s := c.sdk.Messages.NewStreaming(ctx, params, opts...)
	defer s.Close()
	var (
		resp    llm.Response
		text    strings.Builder
		index   int
		stopped bool
		u       usage
	)
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "message_start":
			resp.ID = ev.Message.ID
			resp.Model = string(ev.Message.Model)
			u.input = ev.Message.Usage.InputTokens
			u.cacheRead = ev.Message.Usage.CacheReadInputTokens
			u.cacheWrite = ev.Message.Usage.CacheCreationInputTokens
			u.output = ev.Message.Usage.OutputTokens
		case "content_block_delta":
			if ev.Delta.Type != "text_delta" || ev.Delta.Text == "" {
				continue
			}
			text.WriteString(ev.Delta.Text)
			if err := req.Stream(llm.Chunk{Index: index, Text: ev.Delta.Text}); err != nil {
				return nil, err
			}
			index++
		case "message_delta":
			resp.FinishReason = finishReason(ev.Delta.StopReason)
			// message_delta's usage is cumulative; a field it leaves out
			// keeps message_start's value.
			if ev.Usage.JSON.OutputTokens.Valid() {
				u.output = ev.Usage.OutputTokens
			}
			if ev.Usage.JSON.InputTokens.Valid() && ev.Usage.InputTokens > 0 {
				u.input = ev.Usage.InputTokens
			}
			if ev.Usage.CacheReadInputTokens > 0 {
				u.cacheRead = ev.Usage.CacheReadInputTokens
			}
			if ev.Usage.CacheCreationInputTokens > 0 {
				u.cacheWrite = ev.Usage.CacheCreationInputTokens
			}
		case "message_stop":
			stopped = true
		}
	}
	if err := s.Err(); err != nil && !stopped {
		return nil, c.mapStreamError(ctx, err, *raw)
	}
	if !stopped {
		e := &llm.Error{Kind: llm.KindStreamCut, Provider: c.provider,
			Message: "stream ended without message_stop"}
		if *raw != nil {
			e.Quota = parseQuota((*raw).Header, c.now())
		}
		return nil, e
	}
	resp.Text = text.String()
	resp.Usage = u.llm()
	if *raw != nil {
		resp.Quota = parseQuota((*raw).Header, c.now())
	}
	return &resp, nil
}
