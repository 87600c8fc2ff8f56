// Package queue runs LLM requests as background jobs on River
// (github.com/riverqueue/river), the Go job queue on PostgreSQL, or on
// SQLite for a single machine.
//
// A job carries the request's fields (Args), validated at insert. A worker
// calls the caller's llmkit stack, which must have no retry and no
// fallback: the queue owns retries, so attempts never multiply (queue ×
// client × SDK). A failure becomes one of River's outcomes:
//
//   - rate_limited, circuit_open: snoozed for the error's Retry-After
//     (capped by MaxSnooze, at most MaxSnoozes times; after that it counts
//     as a failed attempt);
//   - bad_request, auth, content_filter, context_length: cancelled, never
//     retried;
//   - anything else, unknown included: an error, retried after 2^n seconds
//     with jitter (resilience.RetryConfig.Backoff), MaxAttempts (4) runs in
//     all, then discarded.
//
// The answer is stored as the job's River output and read back by id with
// Queue.Result. Delivery is at least once: a worker killed mid-job leaves
// the job running until River's rescuer (RescueAfter) makes it retryable,
// and it runs again, calling the provider again.
//
// With Config.TracerProvider set, River's OpenTelemetry middleware
// (otelriver) traces each insert and each run, and the stack's spans are
// children of the run's; nothing is traced by default.
//
// The package is its own Go module, so River, pgx and SQLite stay out of
// the core module's go.mod.
package queue
