package anthropic

import (
	"errors"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// The defaults that options not given take.
const (
	// DefaultModel is the model used when neither Request.Model nor
	// WithModel names one.
	DefaultModel = string(sdk.ModelClaudeSonnet5_5)
	// DefaultMaxTokens is sent as max_tokens when Request.MaxTokens is 0:
	// the Messages API requires max_tokens on every call.
	DefaultMaxTokens = 1024
	// DefaultProvider is the Provider name on every *llm.Error the adapter
	// returns.
	DefaultProvider = "anthropic"
)

// config is what the options set; New validates it once.
type config struct {
	model     string
	maxTokens int
	provider  string
	reqOpts   []option.RequestOption
	idleConns int // per host, for the http.Client NewFromConfig builds
}

func defaultConfig() config {
	return config{model: DefaultModel, maxTokens: DefaultMaxTokens, provider: DefaultProvider, idleConns: DefaultMaxIdleConnsPerHost}
}

func (c *config) validate() error {
	switch {
	case strings.TrimSpace(c.model) == "":
		return errors.New("anthropic: empty default model")
	case c.maxTokens <= 0:
		return errors.New("anthropic: default max tokens must be positive")
	case strings.TrimSpace(c.provider) == "":
		return errors.New("anthropic: empty provider name")
	case c.idleConns < 1:
		return errors.New("anthropic: WithMaxIdleConnsPerHost: want at least 1")
	}
	for _, o := range c.reqOpts {
		if o == nil {
			return errors.New("anthropic: nil request option")
		}
	}
	return nil
}

// Option configures a Client. Options are sealed: only this package makes
// them. A nil Option is ignored.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithModel sets the model used when Request.Model is empty. Default
// DefaultModel.
func WithModel(model string) Option {
	return optionFunc(func(c *config) { c.model = model })
}

// WithMaxIdleConnsPerHost sets how many idle connections to the
// provider's host the http.Client NewFromConfig builds keeps for reuse;
// size it for the calls in flight. It must be positive. Default
// DefaultMaxIdleConnsPerHost. New wraps the caller's SDK client and
// ignores it; so does a client given with
// WithRequestOptions(option.WithHTTPClient(...)), which wins.
func WithMaxIdleConnsPerHost(n int) Option {
	return optionFunc(func(c *config) { c.idleConns = n })
}

// WithMaxTokens sets the max_tokens sent when Request.MaxTokens is 0. The
// Messages API requires max_tokens, so there is always a value. It must be
// positive. Default 1024.
func WithMaxTokens(n int) Option {
	return optionFunc(func(c *config) { c.maxTokens = n })
}

// WithProvider sets the Provider name on the errors the adapter returns,
// for services that talk to Anthropic through several accounts or
// gateways. Default "anthropic".
func WithProvider(name string) Option {
	return optionFunc(func(c *config) { c.provider = name })
}

// WithRequestOptions adds SDK request options (headers, a beta flag, a
// request timeout) to every call. With New they are passed per request;
// with NewFromConfig they go to the SDK client it builds. They apply after
// the adapter's own, except that the adapter always turns the SDK's retries
// off last: resilience owns retries.
func WithRequestOptions(opts ...option.RequestOption) Option {
	return optionFunc(func(c *config) { c.reqOpts = append(c.reqOpts, opts...) })
}
