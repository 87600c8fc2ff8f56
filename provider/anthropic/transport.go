package anthropic

import "github.com/llmkit/llmkit/internal/transport"

// DefaultMaxIdleConnsPerHost is how many idle connections to the provider's
// host the http.Client that NewFromConfig builds keeps open for reuse. Go's
// default, 2, makes a service with more calls in flight than that close
// and reopen a connection for nearly every call: throughput stalls and
// sockets pile up in TIME_WAIT. 256 covers the concurrency of one replica.
const DefaultMaxIdleConnsPerHost = transport.DefaultMaxIdleConnsPerHost

// newHTTPClient is the http.Client NewFromConfig gives the SDK.
var newHTTPClient = transport.Client
