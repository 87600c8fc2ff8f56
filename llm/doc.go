// Package llm holds the core of llmkit: the Client interface every provider
// adapter implements and every decorator wraps, the Request and Response
// types, the error taxonomy, the streaming contract and the observer through
// which decorators report what they did.
//
// The package imports the standard library only, so a service can depend on
// it (for example to accept an llm.Client in its own constructors) without
// pulling in any SDK, metrics or cache library.
//
// # Composition
//
// A Middleware is func(Client) Client. Chain composes several; the first one
// given is the outermost, so
//
//	client := llm.Wrap(provider, observe, cache, retry)
//
// runs observe → cache → retry → provider on every call.
//
// # Streaming
//
// When Request.Stream is set, the provider streams and calls it once per
// chunk, in order, from the goroutine that called Generate. Generate returns
// the aggregated Response after the last chunk. An error returned from the
// callback cancels the call and is returned by Generate. A stream that ends
// without the provider's end marker is an *Error of KindStreamCut, never a
// clean short answer. Decorators may retry, hedge or fall back only before
// the first chunk reached the caller.
//
// # Errors
//
// Every failure a decorator or adapter produces is, or wraps, an *Error with
// a bounded Kind. Classify with errors.Is against the sentinels
// (ErrRateLimited, ErrTimeout, ...), with KindOf, or with Retryable; never by
// string.
//
// # Events
//
// Decorators report what they did (attempts, retries, breaker changes,
// cache results, fallbacks) as Events, with Emit. An observer hears them in
// one of two ways: per call, from the call's context (WithObserver), when it
// keeps per-call state; or given once at construction to the decorators
// whose events it counts (an option of the cache, a field of the resilience
// config), when it keeps none. stack.New wires both. A decorator of one's
// own needs only Client, Middleware, Request and Response, the error kinds
// and Emit.
package llm
