// Package headers holds the HTTP header parsing the provider adapters
// share: header lookup without canonicalisation, Retry-After in all its
// forms, and bounds on the waits a header may ask for.
package headers

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxWait bounds any wait a header asks for, so that a hostile or broken
// value cannot overflow a Duration. Callers (resilience) apply their own,
// lower cap.
const MaxWait = 24 * time.Hour

// Get returns the first value of key, trimmed. key must be in canonical
// form: it indexes the map directly, without canonicalising on every call.
func Get(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// Seconds parses a non-negative number of seconds (fractions allowed),
// capped at MaxWait.
func Seconds(s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	if f >= MaxWait.Seconds() {
		return MaxWait, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// Clamp bounds d to [0, MaxWait].
func Clamp(d time.Duration) time.Duration {
	return min(max(d, 0), MaxWait)
}

// RetryAfter reads how long the server asked the caller to wait:
// Retry-After-Ms (milliseconds, OpenAI's precise form) first, then
// Retry-After as seconds or an HTTP date relative to now. It returns 0 when
// neither says anything usable or the date has passed, and caps at MaxWait.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := Get(h, "Retry-After-Ms"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err == nil && !math.IsNaN(f) && f >= 0 {
			if f >= float64(MaxWait.Milliseconds()) {
				return MaxWait
			}
			return time.Duration(f * float64(time.Millisecond))
		}
	}
	v := Get(h, "Retry-After")
	if v == "" {
		return 0
	}
	if d, ok := Seconds(v); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return Clamp(t.Sub(now))
	}
	return 0
}
