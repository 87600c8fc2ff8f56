// Package metrics measures, logs and traces llm calls: Prometheus records
// the llm_* metrics in client_golang vectors, OTel traces each call with
// the OpenTelemetry GenAI semantic conventions, Log writes one slog line
// per call, and Health turns breaker states and provider quotas into a
// readiness endpoint.
//
// Events reach them in one of two ways. Prometheus and Health only count,
// so they are llm.Observers given once to the decorators whose events they
// count (the cache and resilience, as stack.New does); their middlewares
// register nothing per call. Log and OTel keep per-call state (the call's
// attempts, its span), so each call registers their observer on its
// context.
//
// Label values are bounded: models and endpoints come from allow-lists or
// the first few seen (the rest become "other"), status from the llm.Kind
// set. Prompts, completions and secrets never reach a label; they reach
// spans and logs only on opt-in, truncated and passed through llm.Redact.
// docs/metrics.md lists every metric, option and decision.
package metrics
