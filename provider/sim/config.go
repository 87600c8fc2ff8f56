package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// The defaults that zero fields of Config take.
const (
	DefaultModel         = "sim-1"
	DefaultTTFT          = 50 * time.Millisecond
	DefaultPerToken      = 5 * time.Millisecond
	DefaultJitter        = 0.2
	DefaultMinTokens     = 16
	DefaultMaxTokens     = 96
	DefaultRetryAfter    = time.Second
	DefaultQuotaRequests = 10_000
	DefaultQuotaTokens   = 2_000_000
)

// maxAnswerTokens bounds Config.MaxTokens, so that a slip of the keyboard
// cannot make every call build megabytes of text.
const maxAnswerTokens = 1 << 20

// Config configures a Model. Its zero value is a usable model that answers
// in about 50ms plus 5ms a word and never fails.
//
// As with net.Dialer.KeepAlive, a zero duration, jitter or quota means the
// default, and a negative one means none: TTFT: -1 answers without waiting
// for the first token, Jitter: -1 makes latency exact, QuotaRequests: -1
// reports no request quota.
type Config struct {
	// Seed makes runs reproducible: it is mixed into every answer and into
	// the random draws for failures and jitter.
	Seed int64
	// Model is the model name reported when the request names none.
	// Default "sim-1".
	Model string

	// TTFT is the time to the first token. Default 50ms.
	TTFT time.Duration
	// PerToken is the time each further token takes. Default 5ms.
	PerToken time.Duration
	// Jitter is the fraction by which a call's latency varies, uniformly,
	// around TTFT and PerToken: 0.2 means between 80% and 120%. It must not
	// exceed 1. Default 0.2.
	Jitter float64

	// MinTokens and MaxTokens bound the answer's length in tokens (words),
	// before Request.MaxTokens caps it. Defaults 16 and 96; when only one is
	// set and it lies beyond the other's default, the other follows it.
	// MaxTokens may not exceed 1,048,576.
	MinTokens, MaxTokens int

	// Errors maps a failure kind to the probability, per call, of failing
	// with it. Probabilities lie in [0, 1] and sum to at most 1. The kinds a
	// provider returns may be used: rate_limited, timeout, unavailable,
	// overloaded, bad_request, auth, context_length, content_filter,
	// stream_cut and unknown; canceled and circuit_open are the caller's
	// and the decorators' own and are rejected. Nil means no failures.
	Errors map[llm.Kind]float64
	// RetryAfter is what a rate_limited failure asks the caller to wait.
	// Default 1s.
	RetryAfter time.Duration

	// QuotaRequests and QuotaTokens are the allowance reported in
	// Response.Quota. Every call uses one request, and every answer its
	// tokens; an allowance that runs out starts over at once (the
	// simulation follows the call count, not the clock, and never refuses a
	// call for quota; use Errors for that). Defaults 10,000 and 2,000,000;
	// when both are negative Response.Quota is nil.
	QuotaRequests, QuotaTokens int64
}

// settings is the part of a Model's behaviour that can change while calls
// run. A snapshot is never modified once published.
type settings struct {
	ttft, perToken time.Duration
	jitter         float64
	faults         []fault // cumulative probabilities, in Kind order
}

// fault makes a draw u in [0, 1) fail with kind when u < upTo and no
// earlier fault took it.
type fault struct {
	kind llm.Kind
	upTo float64
}

// numKinds is how many kinds package llm defines.
var numKinds = llm.Kind(len(llm.Kinds()))

// duration applies the zero-means-default, negative-means-none rule.
func duration(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func quota(n, def int64) int64 {
	switch {
	case n == 0:
		return def
	case n < 0:
		return llm.QuotaUnknown
	}
	return n
}

func jitter(j float64) (float64, error) {
	switch {
	case math.IsNaN(j) || j > 1:
		return 0, fmt.Errorf("sim: jitter %v is not in [0, 1]", j)
	case j == 0:
		return DefaultJitter, nil
	case j < 0:
		return 0, nil
	}
	return j, nil
}

func tokenRange(lo, hi int) (int, int, error) {
	if lo < 0 || hi < 0 {
		return 0, 0, fmt.Errorf("sim: negative token bound (MinTokens %d, MaxTokens %d)", lo, hi)
	}
	switch {
	case lo == 0 && hi == 0:
		lo, hi = DefaultMinTokens, DefaultMaxTokens
	case lo == 0:
		lo = min(DefaultMinTokens, hi)
	case hi == 0:
		hi = max(DefaultMaxTokens, lo)
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("sim: MinTokens %d exceeds MaxTokens %d", lo, hi)
	}
	if hi > maxAnswerTokens {
		return 0, 0, fmt.Errorf("sim: MaxTokens %d exceeds %d", hi, maxAnswerTokens)
	}
	return lo, hi, nil
}

// simulated reports whether a Model may fail with kind k.
func simulated(k llm.Kind) bool {
	return k < numKinds && k != llm.KindCanceled && k != llm.KindCircuitOpen
}

// buildFaults checks a failure map and turns it into cumulative
// probabilities. The map is read, never kept.
func buildFaults(errs map[llm.Kind]float64) ([]fault, error) {
	for k := range errs {
		if k >= numKinds {
			return nil, fmt.Errorf("sim: unknown kind %d", uint8(k))
		}
	}
	var faults []fault
	sum := 0.0
	for k := range numKinds {
		p, ok := errs[k]
		if !ok {
			continue
		}
		if !simulated(k) {
			return nil, fmt.Errorf("sim: the model cannot fail with kind %v", k)
		}
		if !(p >= 0 && p <= 1) {
			return nil, fmt.Errorf("sim: probability %v for kind %v is not in [0, 1]", p, k)
		}
		if p == 0 {
			continue
		}
		sum += p
		faults = append(faults, fault{kind: k, upTo: sum})
	}
	// A little slack, so that 0.1+0.2+0.7 is accepted.
	if sum > 1+1e-9 {
		return nil, fmt.Errorf("sim: failure probabilities sum to %v, more than 1", sum)
	}
	return faults, nil
}
