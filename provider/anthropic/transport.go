package anthropic

import "net/http"

// DefaultMaxIdleConnsPerHost is how many idle connections to the provider's
// host the http.Client that NewFromConfig builds keeps open for reuse. Go's
// default, 2, makes a service with more calls in flight than that close
// and reopen a connection for nearly every call: throughput stalls and
// sockets pile up in TIME_WAIT. 256 covers the concurrency of one replica.
const DefaultMaxIdleConnsPerHost = 256

// newHTTPClient returns the http.Client NewFromConfig gives the SDK: a
// clone of http.DefaultTransport (its proxy, dial and TLS settings) that
// keeps idle idle connections per host. When http.DefaultTransport is not
// an *http.Transport (a program replaced it), that replacement is used as
// it is.
func newHTTPClient(idle int) *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Client{}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = idle
	t.MaxIdleConns = max(t.MaxIdleConns, idle)
	return &http.Client{Transport: t}
}
