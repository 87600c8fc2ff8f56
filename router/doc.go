// Package router spreads the calls for one logical model over several
// deployments (providers, regions, API keys) and moves them away from the
// ones that fail. A *Router is an llm.Client: it goes where the provider
// goes, inside the resilience policies of the default stack.
//
// Each call picks one deployment of its group by the configured Strategy
// (weighted random, least in flight, lowest windowed p90 latency, or usage)
// among those that are not cooling down, are not at their RPM/TPM, and
// were not tried yet in this call. A deployment that answers 429, 5xx, 529,
// 401/403 or times out cools down (for its Retry-After when it sent one;
// cooldowns only ever extend) and the call moves to the next deployment of
// the group: so API keys rotate among a model's deployments. When none of
// the group is left, the call moves to the group the error's kind names
// (Group.Fallbacks: context_length to a larger-context group, unavailable
// to the next group, ...). When every deployment is cooling, the router
// waits for the earliest to come back, within MaxWait and the caller's
// deadline, or fails fast with KindCircuitOpen and a RetryAfter.
//
// A stream fails over only before its first chunk reached the caller:
// after that the error is returned as it is (a cut stays stream_cut), so
// text is never duplicated.
//
// The router reports EventRoute for every attempt and EventCooldown when a
// deployment's cooldown starts, is extended or ends, with llm.EmitTo: to
// Config.Observer and to the observers on the call's context.
package router
