package openai

import (
	"net/http"
	"strconv"
	"time"

	"github.com/llmkit/llmkit/internal/headers"
	"github.com/llmkit/llmkit/llm"
)

// The headers the adapter reads, in canonical form so lookups index the
// header map directly instead of canonicalising a key per call.
const (
	hdrLimitRequests     = "X-Ratelimit-Limit-Requests"
	hdrRemainingRequests = "X-Ratelimit-Remaining-Requests"
	hdrLimitTokens       = "X-Ratelimit-Limit-Tokens"
	hdrRemainingTokens   = "X-Ratelimit-Remaining-Tokens"
	hdrResetRequests     = "X-Ratelimit-Reset-Requests"
	hdrResetTokens       = "X-Ratelimit-Reset-Tokens"
	hdrRetryAfter        = "Retry-After"
	hdrRetryAfterMs      = "Retry-After-Ms"
)

const maxWait = headers.MaxWait

func header(h http.Header, key string) string { return headers.Get(h, key) }

// ParseQuota reads OpenAI's x-ratelimit-* headers: the request and token
// limits and what remains of them as counts, and the reset times as
// durations ("1s", "6m0s", "20ms"; a bare number is seconds). It returns
// nil when none of the headers is present or parseable. Unparseable or
// negative values leave their field unknown.
func ParseQuota(h http.Header) *llm.Quota {
	if h == nil {
		return nil
	}
	q := llm.NewQuota()
	found := false
	for _, f := range [...]struct {
		key string
		dst *int64
	}{
		{hdrLimitRequests, &q.LimitRequests},
		{hdrRemainingRequests, &q.RemainingRequests},
		{hdrLimitTokens, &q.LimitTokens},
		{hdrRemainingTokens, &q.RemainingTokens},
	} {
		if v := header(h, f.key); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				*f.dst = n
				found = true
			}
		}
	}
	if d, ok := ParseReset(header(h, hdrResetRequests)); ok {
		q.ResetRequests = d
		found = true
	}
	if d, ok := ParseReset(header(h, hdrResetTokens)); ok {
		q.ResetTokens = d
		found = true
	}
	if !found {
		return nil
	}
	return &q
}

// ParseReset parses an x-ratelimit-reset-* value: a Go-style duration such
// as "1s", "6m0s", "20ms" or "1m30.5s", as OpenAI sends, or a bare number
// of seconds, as some compatible servers send. Negative, non-finite and
// unparseable values report false; values above a day are capped.
func ParseReset(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, false
		}
		return min(d, maxWait), true
	}
	return seconds(s)
}

func seconds(s string) (time.Duration, bool) { return headers.Seconds(s) }

// ParseRetryAfter reads how long the server asked the caller to wait:
// retry-after-ms (milliseconds, OpenAI's precise form) first, then
// retry-after as seconds or an HTTP date (relative to now). It returns 0
// when neither header says anything usable or the date has passed; values
// above a day are capped.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	return headers.RetryAfter(h, now)
}

// quotaWait is the wait a rate-limit error implies when the server sent no
// retry-after: the reset time of whichever window is exhausted.
func quotaWait(q *llm.Quota) time.Duration {
	if q == nil {
		return 0
	}
	var d time.Duration
	if q.RemainingRequests == 0 {
		d = q.ResetRequests
	}
	if q.RemainingTokens == 0 {
		d = max(d, q.ResetTokens)
	}
	return d
}
