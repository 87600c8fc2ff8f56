package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/llmkit/llmkit/llm"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Client is an llm.Client over the OpenAI SDK's chat completions API. It is
// safe for concurrent use; build it once with New or NewFromConfig.
type Client struct {
	sdk             *sdk.Client
	provider        string
	model           string
	legacyMaxTokens bool
	streamUsage     bool
	// opts are the request options every call sends: WithMaxRetries(0),
	// then the caller's. Calls append their own after a full-slice
	// expression, so the shared array is never written.
	opts []option.RequestOption
	// httpClient is the http.Client NewFromConfig built; nil with New.
	httpClient *http.Client
}

var _ llm.Client = (*Client)(nil)

// New wraps an SDK client the caller already has. The adapter sends
// option.WithMaxRetries(0) with every request, whatever the client was
// built with, because retries belong to llmkit's resilience package.
func New(client *sdk.Client, opts ...Option) (*Client, error) {
	if client == nil {
		return nil, errors.New("openai: New: nil SDK client")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	reqOpts := make([]option.RequestOption, 0, 1+len(cfg.requestOptions))
	reqOpts = append(reqOpts, option.WithMaxRetries(0))
	reqOpts = append(reqOpts, cfg.requestOptions...)
	return &Client{
		sdk:             client,
		provider:        cfg.provider,
		model:           cfg.model,
		legacyMaxTokens: cfg.legacyMaxTokens,
		streamUsage:     !cfg.noStreamUsage,
		opts:            reqOpts[:len(reqOpts):len(reqOpts)],
	}, nil
}

func buildConfig(opts []Option) (config, error) {
	cfg := config{provider: DefaultProvider, idleConns: DefaultMaxIdleConnsPerHost}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// NewFromConfig builds an SDK client for apiKey and baseURL, with the SDK's
// own retries off, and wraps it. An empty baseURL means the SDK's default
// (OPENAI_BASE_URL when set, else https://api.openai.com/v1); an empty
// apiKey means the SDK's default (OPENAI_API_KEY). For OpenAI-compatible
// servers pass their base URL including the /v1 suffix, for example
// "http://localhost:8000/v1" (vLLM) or "http://localhost:11434/v1" (Ollama).
// A query string in baseURL (an Azure-style gateway's ?api-version=…) is
// sent with every request; the SDK alone would drop it. A baseURL that does
// not parse as an absolute http(s) URL, or has a fragment, is an error.
// The SDK gets an http.Client of its own that keeps
// DefaultMaxIdleConnsPerHost idle connections per host
// (WithMaxIdleConnsPerHost), not Go's default of 2.
func NewFromConfig(apiKey, baseURL string, opts ...Option) (*Client, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	httpClient := newHTTPClient(cfg.idleConns)
	sdkOpts := []option.RequestOption{option.WithMaxRetries(0), option.WithHTTPClient(httpClient)}
	if apiKey != "" {
		sdkOpts = append(sdkOpts, option.WithAPIKey(apiKey))
	}
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			// The URL may hold a key in its query: never echo it.
			return nil, fmt.Errorf("openai: base URL %q is not an absolute http(s) URL without a fragment", llm.Redact(baseURL))
		}
		for key, values := range u.Query() {
			for _, v := range values {
				sdkOpts = append(sdkOpts, option.WithQueryAdd(key, v))
			}
		}
		u.RawQuery = ""
		sdkOpts = append(sdkOpts, option.WithBaseURL(u.String()))
	}
	client := sdk.NewClient(sdkOpts...)
	c, err := New(&client, opts...)
	if err != nil {
		return nil, err
	}
	c.httpClient = httpClient
	return c, nil
}

// SDK returns the wrapped SDK client, for the APIs the adapter does not
// cover.
func (c *Client) SDK() *sdk.Client { return c.sdk }

// Generate sends req as a chat completion. With req.Stream set it streams;
// see the package documentation for the mapping and the errors.
func (c *Client) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, c.provider)
	}
	params := c.params(req)
	if req.Stream != nil {
		return c.stream(ctx, req, &params)
	}
	var raw *http.Response
	opts := append(c.opts, option.WithResponseInto(&raw))
	completion, err := c.sdk.Chat.Completions.New(ctx, params, opts...)
	if err != nil {
		return nil, c.classify(ctx, err, raw)
	}
	var quota *llm.Quota
	if raw != nil {
		quota = ParseQuota(raw.Header)
	}
	if len(completion.Choices) == 0 {
		return nil, &llm.Error{Kind: llm.KindUnknown, Provider: c.provider, Message: "completion has no choices", Quota: quota}
	}
	resp := response(completion)
	resp.Quota = quota
	return resp, nil
}
