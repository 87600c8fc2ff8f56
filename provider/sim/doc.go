// Package sim is a simulated model: an llm.Client that answers without a
// network or an API key. It is the embedded default for demos, examples and
// load tests, and a realistic upstream for testing decorators.
//
// A Model answers every request with deterministic filler text: the words
// are drawn from a small built-in vocabulary by a generator seeded from a
// hash of the resolved model name, the system prompt, the messages, the
// request's Seed and Config.Seed, so the same request to a Model with the
// same Seed always gets the same answer, whatever the Temperature. Stop,
// Temperature, TopP and Extra are accepted and ignored. One word is one
// output token; Request.MaxTokens cuts the answer short (finish reason
// "length"), and the cut answer is a prefix of the uncut one.
//
// Latency is simulated with timers: the answer is ready after
// TTFT + n×PerToken for n tokens, each duration varied by the same random
// factor in [1-Jitter, 1+Jitter]. A streamed call delivers word i at
// TTFT + i×PerToken and ends one PerToken after the last word, so both modes
// take the same time. Every wait ends early when the context is done. A
// Model starts no goroutines and takes no locks on the call path, so it
// holds many thousands of concurrent calls, and under testing/synctest its
// waits take no real time.
//
// Failures are injected at random with the per-kind probabilities of
// Config.Errors: a failing call waits TTFT and returns an *llm.Error with
// the kind's usual HTTP status (a cut stream delivers some words first).
// SetErrors and SetLatency change failures and latency while calls run, to
// stage a provider outage or slowdown in a demo.
//
// Random draws (failures, jitter, where a stream is cut) come from a
// generator seeded by Config.Seed and the call's sequence number, so a run
// that makes its calls one after another is reproducible.
package sim
