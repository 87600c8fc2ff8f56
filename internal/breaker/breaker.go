// Package breaker translates failsafe-go's circuit breaker states into
// llm.BreakerState, for the packages that guard a store with one.
package breaker

import (
	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/llmkit/llmkit/llm"
)

// State returns st as an llm.BreakerState.
func State(st circuitbreaker.State) llm.BreakerState {
	switch st {
	case circuitbreaker.OpenState:
		return llm.BreakerOpen
	case circuitbreaker.HalfOpenState:
		return llm.BreakerHalfOpen
	}
	return llm.BreakerClosed
}
