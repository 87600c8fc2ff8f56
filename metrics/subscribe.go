package metrics

import "github.com/llmkit/llmkit/llm"

// The Log and OTel middlewares keep per-call state (the call's attempts,
// its span), so they register their observers on each call's context; they
// emit nothing themselves and pass a subscription on to the client they
// wrap (see llm.Subscriber).

// Subscribe forwards to the wrapped client.
func (c *logClient) Subscribe(o llm.Observer) bool { return llm.Subscribe(c.next, o) }

// Subscribe forwards to the wrapped client.
func (c *otelClient) Subscribe(o llm.Observer) bool { return llm.Subscribe(c.next, o) }
