package anthropic

import (
	"net/http"
	"strconv"
	"time"

	"github.com/llmkit/llmkit/internal/headers"
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

const maxWait = headers.MaxWait

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
func parseRetryAfter(h http.Header, now time.Time) time.Duration { return headers.RetryAfter(h, now) }

func clampWait(d time.Duration) time.Duration { return headers.Clamp(d) }

func header(h http.Header, key string) string { return headers.Get(h, key) }
