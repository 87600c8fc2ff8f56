package openai

import (
	"errors"

	"github.com/openai/openai-go/v3/option"
)

// DefaultProvider is the provider name the adapter puts in its errors.
const DefaultProvider = "openai"

// Option configures a Client. Options are sealed: only this package makes
// them. A nil Option is ignored.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	model           string
	provider        string
	legacyMaxTokens bool
	noStreamUsage   bool
	requestOptions  []option.RequestOption
	idleConns       int // per host, for the http.Client NewFromConfig builds
}

// WithModel sets the model used when Request.Model is empty. Without it an
// empty Request.Model sends no model field, which single-model
// OpenAI-compatible servers accept and OpenAI itself rejects as a bad
// request.
func WithModel(name string) Option {
	return optionFunc(func(c *config) error {
		if name == "" {
			return errors.New("openai: WithModel: empty model name")
		}
		c.model = name
		return nil
	})
}

// WithProvider sets the Provider field of the errors the adapter returns,
// default "openai". Use it to tell apart several OpenAI-compatible backends
// ("vllm", "ollama") in logs and metrics.
func WithProvider(name string) Option {
	return optionFunc(func(c *config) error {
		if name == "" {
			return errors.New("openai: WithProvider: empty provider name")
		}
		c.provider = name
		return nil
	})
}

// WithLegacyMaxTokens sends Request.MaxTokens as max_tokens instead of
// max_completion_tokens, for older OpenAI-compatible servers that do not
// know the newer field. OpenAI's reasoning models reject max_tokens.
func WithLegacyMaxTokens() Option {
	return optionFunc(func(c *config) error {
		c.legacyMaxTokens = true
		return nil
	})
}

// WithoutStreamUsage stops the adapter from sending stream_options
// {"include_usage": true} on streamed calls, for servers that reject the
// field. Streamed responses then carry no usage.
func WithoutStreamUsage() Option {
	return optionFunc(func(c *config) error {
		c.noStreamUsage = true
		return nil
	})
}

// WithMaxIdleConnsPerHost sets how many idle connections to the provider's
// host the http.Client NewFromConfig builds keeps for reuse; size it for
// the calls in flight. Default DefaultMaxIdleConnsPerHost. New wraps the
// caller's SDK client and ignores it; so does a client given with
// WithRequestOptions(option.WithHTTPClient(...)), which wins.
func WithMaxIdleConnsPerHost(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return errors.New("openai: WithMaxIdleConnsPerHost: want at least 1")
		}
		c.idleConns = n
		return nil
	})
}

// WithRequestOptions adds SDK request options sent with every call, after
// the adapter's own (so option.WithMaxRetries here overrides the adapter's
// zero). Nil entries are dropped.
func WithRequestOptions(opts ...option.RequestOption) Option {
	return optionFunc(func(c *config) error {
		for _, o := range opts {
			if o != nil {
				c.requestOptions = append(c.requestOptions, o)
			}
		}
		return nil
	})
}
