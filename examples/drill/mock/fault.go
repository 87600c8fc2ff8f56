package main

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// mode is what the mock does with a chat completion request.
type mode string

const (
	modeOK          mode = "ok"          // answer at once
	modeUnavailable mode = "unavailable" // 503 to every call: a total outage
	modeRateLimited mode = "ratelimited" // 429 with Retry-After: the quota ran out
	modeSlow        mode = "slow"        // answer after Delay
)

// fault is the mock's current behaviour. It is replaced whole, never
// modified, so a request reads one consistent value.
type fault struct {
	Mode mode `json:"mode"`
	// Delay is how long a "slow" answer waits (default 2 s).
	Delay time.Duration `json:"delay_ns"`
	// RetryAfter is the Retry-After a "ratelimited" answer carries, in
	// whole seconds (default 1 s).
	RetryAfter time.Duration `json:"retry_after_ns"`
}

// maxDelay bounds the slow mode so a typo cannot hang a drill.
const maxDelay = 5 * time.Minute

// parseFault reads a fault from a query string: mode=ok|unavailable|
// ratelimited|slow, delay=<Go duration> (slow), retry_after=<Go duration>
// (ratelimited).
func parseFault(q url.Values) (fault, error) {
	f := fault{Mode: mode(q.Get("mode")), Delay: 2 * time.Second, RetryAfter: time.Second}
	switch f.Mode {
	case modeOK, modeUnavailable, modeRateLimited, modeSlow:
	default:
		return fault{}, fmt.Errorf("mode %q: want ok, unavailable, ratelimited or slow", f.Mode)
	}
	if v := q.Get("delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxDelay {
			return fault{}, fmt.Errorf("delay %q: want a duration between 0 and %s", v, maxDelay)
		}
		f.Delay = d
	}
	if v := q.Get("retry_after"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour {
			return fault{}, fmt.Errorf("retry_after %q: want a duration between 1s and 1h", v)
		}
		f.RetryAfter = d
	}
	return f, nil
}

// retryAfterHeader is RetryAfter in whole seconds, rounded up, as
// providers send it.
func (f fault) retryAfterHeader() string {
	return strconv.Itoa(int((f.RetryAfter + time.Second - 1) / time.Second))
}
