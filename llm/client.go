package llm

import (
	"context"
	"time"
)

// Client generates a response for a request.
//
// A Client is safe for concurrent use by multiple goroutines. Generate must
// not modify req or anything it points to; a decorator that needs a changed
// request copies it first (see Request.Clone). A non-nil error means there is
// no usable Response: implementations return either a Response or an error,
// never both.
//
// When req.Stream is set, Generate calls it in order, from the calling
// goroutine, once per chunk, and returns the aggregated Response after the
// last one (see the package documentation for the full contract).
type Client interface {
	Generate(ctx context.Context, req *Request) (*Response, error)
}

// ClientFunc adapts an ordinary function to the Client interface. It is the
// smallest way to put llmkit around a client of one's own.
type ClientFunc func(ctx context.Context, req *Request) (*Response, error)

// Generate calls f(ctx, req).
func (f ClientFunc) Generate(ctx context.Context, req *Request) (*Response, error) {
	return f(ctx, req)
}

// Middleware decorates a Client with additional behaviour.
type Middleware func(Client) Client

// Chain composes middlewares into one. The first argument is the outermost:
// Chain(a, b, c)(client) behaves as a(b(c(client))), so a request passes
// through a, then b, then c. Nil middlewares are skipped.
func Chain(outer Middleware, others ...Middleware) Middleware {
	return func(next Client) Client {
		for i := len(others) - 1; i >= 0; i-- {
			if others[i] != nil {
				next = others[i](next)
			}
		}
		if outer != nil {
			next = outer(next)
		}
		return next
	}
}

// Wrap decorates c with mws, the first outermost. Wrap(c) returns c.
func Wrap(c Client, mws ...Middleware) Client {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			c = mws[i](c)
		}
	}
	return c
}

// Sleep waits d, or until ctx is done, whichever comes first, and returns
// ctx.Err() in the second case. Every wait in llmkit is cancellable; this is
// the one they use. It follows testing/synctest's fake clock.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
