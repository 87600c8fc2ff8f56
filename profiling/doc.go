// Package profiling ties Go's profilers to LLM calls.
//
// It has four parts, each usable alone:
//
//   - Labels is a middleware that runs every call with the pprof labels
//     endpoint and model (and tenant on opt-in), as pprof.Do would but for
//     one allocation, so CPU and goroutine profiles split work by LLM call
//     site. Label sets (and a context carrying each) are built once per
//     distinct combination, and the number of combinations is bounded.
//   - Capturer is the Go counterpart of "profile this request": when a call
//     runs past a threshold, or on one call in N, it saves a runtime/trace
//     flight-recorder snapshot and, on request, a CPU profile of the window,
//     at most once per interval, to a Sink (a rotating directory or a
//     callback). Calls that are not captured do no capture work.
//   - Handler serves the pprof endpoints (index, profile, heap, goroutine,
//     allocs, block, mutex, threadcreate, trace, cmdline, symbol) from a mux
//     of its own, optionally behind a bearer token. The package never imports
//     net/http/pprof, so nothing is registered on http.DefaultServeMux.
//   - Time and TimeWith time a block of code outside a Client and write one
//     slog line (and optionally observe a Prometheus histogram).
//
// The recommended place for Labels in a stack is inside the metrics
// decorators and outside the cache, so the labels cover the cache lookup
// and the provider call. Mount Handler on a separate loopback listener, not
// on the service's public mux; docs/profiling.md shows how.
package profiling
