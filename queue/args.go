package queue

import (
	"errors"
	"fmt"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
)

// Kind is the River job kind of an LLM request.
const Kind = "llmkit_generate"

// Message is one turn of a job's conversation (llm.Message with JSON
// names).
type Message struct {
	Role    llm.Role `json:"role"`
	Content string   `json:"content"`
}

// Args are a job's arguments: the request fields that change the answer,
// and the endpoint and tenant the stack's metrics, limits and cache read.
// They are stored as JSON in the job row.
type Args struct {
	Model       string         `json:"model,omitempty"`
	System      string         `json:"system,omitempty"`
	Messages    []Message      `json:"messages"`
	MaxTokens   int            `json:"max_tokens,omitempty"`
	Temperature *float64       `json:"temperature,omitempty"`
	TopP        *float64       `json:"top_p,omitempty"`
	Seed        *int64         `json:"seed,omitempty"`
	Stop        []string       `json:"stop,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
	Endpoint    string         `json:"endpoint,omitempty"`
	Tenant      string         `json:"tenant,omitempty"`
	// UniqueKey is the request's cache key (cache.KeyOf), set by Enqueue
	// for unique jobs only: River refuses a second job with the same key
	// while the first is pending, scheduled, available, running or
	// retryable.
	UniqueKey string `json:"unique_key,omitempty" river:"unique"`
}

// Kind returns the River job kind.
func (Args) Kind() string { return Kind }

// ArgsOf returns the job arguments of req. The Stream and Cache fields are
// the caller's, not the job's, and are left out.
func ArgsOf(req *llm.Request) Args {
	a := Args{
		Model: req.Model, System: req.System, MaxTokens: req.MaxTokens,
		Temperature: req.Temperature, TopP: req.TopP, Seed: req.Seed,
		Stop: req.Stop, Extra: req.Extra, Endpoint: req.Endpoint, Tenant: req.Tenant,
		Messages: make([]Message, len(req.Messages)),
	}
	for i, m := range req.Messages {
		a.Messages[i] = Message(m)
	}
	return a
}

// Request returns the request a job makes.
func (a *Args) Request() *llm.Request {
	r := &llm.Request{
		Model: a.Model, System: a.System, MaxTokens: a.MaxTokens,
		Temperature: a.Temperature, TopP: a.TopP, Seed: a.Seed,
		Stop: a.Stop, Extra: a.Extra, Endpoint: a.Endpoint, Tenant: a.Tenant,
		Messages: make([]llm.Message, len(a.Messages)),
	}
	for i, m := range a.Messages {
		r.Messages[i] = llm.Message(m)
	}
	return r
}

// ErrInvalidArgs is wrapped by every error Enqueue returns for arguments
// it refuses; nothing is inserted then.
var ErrInvalidArgs = errors.New("queue: invalid job arguments")

// validate checks the request a job would make: llm's request checks (a
// user message to answer, sizes, ranges) and JSON-encodable extras (a cache key needs
// them too). It returns the cache key when unique is set.
func validate(req *llm.Request, unique bool) (string, error) {
	if req == nil {
		return "", fmt.Errorf("%w: nil request", ErrInvalidArgs)
	}
	if req.Stream != nil {
		return "", fmt.Errorf("%w: a job cannot stream (Request.Stream is set)", ErrInvalidArgs)
	}
	if err := req.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidArgs, err)
	}
	key, err := cache.KeyOf(req)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidArgs, err)
	}
	if !unique {
		return "", nil
	}
	return key.String(), nil
}
