// Package transport builds the http.Client the provider adapters give the
// official SDKs when llmkit builds the SDK client itself.
package transport

import "net/http"

// DefaultMaxIdleConnsPerHost is how many idle connections to the
// provider's host the client keeps open for reuse. Go's default, 2, makes
// a service with more calls in flight than that close and reopen a
// connection for nearly every call: throughput stalls and sockets pile up
// in TIME_WAIT. 256 covers the concurrency of one replica.
const DefaultMaxIdleConnsPerHost = 256

// Client returns a client over a clone of http.DefaultTransport (its
// proxy, dial and TLS settings) that keeps idle connections per host.
// When http.DefaultTransport is not an *http.Transport (a program
// replaced it), that replacement is used as it is.
func Client(idle int) *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Client{}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = idle
	t.MaxIdleConns = max(t.MaxIdleConns, idle)
	return &http.Client{Transport: t}
}
