package anthropic

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// The rate-limit headers, in canonical form so that lookups do not
// canonicalise on every call.
const (
	hRequestsLimit     = "Anthropic-Ratelimit-Requests-Limit"
	hRequestsRemaining = "Anthropic-Ratelimit-Requests-Remaining"
	hRequestsReset     = "Anthropic-Ratelimit-Requests-Reset"
	hTokensLimit       = "Anthropic-Ratelimit-Tokens-Limit"
	hTokensRemaining   = "Anthropic-Ratelimit-Tokens-Remaining"
	hTokensReset       = "Anthropic-Ratelimit-Tokens-Reset"
	hInputLimit        = "Anthropic-Ratelimit-Input-Tokens-Limit"
	hInputRemaining    = "Anthropic-Ratelimit-Input-Tokens-Remaining"
	hInputReset        = "Anthropic-Ratelimit-Input-Tokens-Reset"
	hRetryAfter        = "Retry-After"
)

// maxWait bounds a reset or Retry-After, so that a wild header cannot
// overflow a Duration; resilience applies its own, lower cap.
const maxWait = 24 * time.Hour

// parseQuota reads the anthropic-ratelimit-* headers, or returns nil when
// none is there. The tokens-* headers report the most restrictive token
// limit in effect, so they fill the token fields; when they are absent the
// input-tokens-* headers do (input tokens are what the prompt-heavy calls
// run out of). The output-tokens-* headers are not used: llm.Quota has one
// token budget. Resets are RFC 3339 times, turned into durations from now.
func parseQuota(h http.Header, now time.Time) *llm.Quota {
	if len(h) == 0 {
		return nil
	}
	q := llm.NewQuota()
	found := false
	count := func(key string) int64 {
		v := header(h, key)
		if v == "" {
			return llm.QuotaUnknown
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return llm.QuotaUnknown
		}
		found = true
		return n
	}
	reset := func(key string) time.Duration {
		v := header(h, key)
		if v == "" {
			return 0
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return 0
		}
		found = true
		return clampWait(t.Sub(now))
	}
	q.LimitRequests = count(hRequestsLimit)
	q.RemainingRequests = count(hRequestsRemaining)
	q.ResetRequests = reset(hRequestsReset)
	limit, remaining, resetKey := hTokensLimit, hTokensRemaining, hTokensReset
	if header(h, hTokensLimit) == "" && header(h, hTokensRemaining) == "" {
		limit, remaining, resetKey = hInputLimit, hInputRemaining, hInputReset
	}
	q.LimitTokens = count(limit)
	q.RemainingTokens = count(remaining)
	q.ResetTokens = reset(resetKey)
	if !found {
		return nil
	}
	return &q
}

// parseRetryAfter reads Retry-After: delay seconds (Anthropic sends whole
// seconds; a fraction is accepted) or an HTTP date. It returns 0 when the
// header is absent or unreadable, and never more than maxWait.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := header(h, hRetryAfter)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(s) || s <= 0 {
			return 0
		}
		if s >= maxWait.Seconds() {
			return maxWait
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return clampWait(t.Sub(now))
	}
	return 0
}

func clampWait(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d > maxWait:
		return maxWait
	}
	return d
}

// header returns the first value of a canonical key, trimmed, without the
// canonicalisation http.Header.Get does.
func header(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}
