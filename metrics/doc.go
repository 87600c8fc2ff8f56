// Package metrics measures, logs and traces llm calls: Prometheus records
// the llm_* metrics, OTel traces each call with the OpenTelemetry GenAI
// semantic conventions and records its instruments, Log writes one slog
// line per call, and Health turns breaker states and provider quotas into a
// readiness endpoint.
//
// Each middleware subscribes to the llm events of the decorators inside it
// (resilience, cache), so it sees retries, cache results, breaker changes,
// limiter rejections and fallbacks as well as the call itself. The
// recommended order, outermost first, is OTel → Prometheus → Log → cache →
// resilience → provider: observability outside the cache sees every call.
//
// Label values are bounded: models and endpoints come from allow-lists or
// the first few seen (the rest become "other"), status from the llm.Kind
// set. Prompts, completions and secrets never reach a label; they reach
// spans and logs only on opt-in, truncated and passed through llm.Redact.
//
// docs/metrics.md lists every metric, option, default and decision.
package metrics
