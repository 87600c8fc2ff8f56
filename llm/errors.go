package llm

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// Kind is the bounded classification of a failure. Its String form is safe
// to use as a metric label value.
type Kind uint8

// The kinds of failure. KindUnknown is the zero value.
const (
	KindUnknown       Kind = iota
	KindRateLimited        // 429, or a client-side rate limiter said no
	KindTimeout            // a deadline passed (attempt, total, 408)
	KindUnavailable        // 5xx, connection refused or reset
	KindOverloaded         // 529, or a bulkhead or concurrency limit said no
	KindBadRequest         // the request is invalid; never retried
	KindAuth               // 401, 403
	KindContextLength      // the prompt does not fit the model
	KindContentFilter      // the provider refused the content
	KindCanceled           // the caller canceled
	KindCircuitOpen        // a circuit breaker is open; the call failed fast
	KindStreamCut          // a stream ended without the provider's end marker
	numKinds
)

var kindNames = [numKinds]string{
	KindUnknown:       "unknown",
	KindRateLimited:   "rate_limited",
	KindTimeout:       "timeout",
	KindUnavailable:   "unavailable",
	KindOverloaded:    "overloaded",
	KindBadRequest:    "bad_request",
	KindAuth:          "auth",
	KindContextLength: "context_length",
	KindContentFilter: "content_filter",
	KindCanceled:      "canceled",
	KindCircuitOpen:   "circuit_open",
	KindStreamCut:     "stream_cut",
}

// String returns the kind's label value, such as "rate_limited".
func (k Kind) String() string {
	if k >= numKinds {
		return kindNames[KindUnknown]
	}
	return kindNames[k]
}

// Kinds returns every Kind, for pre-registering metric label values.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return KindUnknown, false
}

// Error is the one error type llmkit produces. Its text never contains
// secrets: adapters build Message with Redact.
type Error struct {
	Kind Kind
	// Status is the HTTP status when the failure came from one, else 0.
	Status int
	// RetryAfter is how long the provider (or a local limiter or breaker)
	// asked the caller to wait; 0 when it did not say.
	RetryAfter time.Duration
	// Provider names where it came from ("openai", "anthropic", "sim",
	// "resilience", ...).
	Provider string
	// Message is a short, redacted description.
	Message string
	// Quota is the provider's remaining allowance reported with the error.
	Quota *Quota
	// Err is the underlying cause, if any.
	Err error
}

// Error formats the error as "llm: provider: kind (status 429): message: cause".
func (e *Error) Error() string {
	b := make([]byte, 0, 64)
	b = append(b, "llm: "...)
	if e.Provider != "" {
		b = append(b, e.Provider...)
		b = append(b, ": "...)
	}
	b = append(b, e.Kind.String()...)
	if e.Status != 0 {
		b = append(b, " (status "...)
		b = strconv.AppendInt(b, int64(e.Status), 10)
		b = append(b, ')')
	}
	if e.Message != "" {
		b = append(b, ": "...)
		b = append(b, e.Message...)
	}
	if e.Err != nil {
		b = append(b, ": "...)
		b = append(b, Redact(e.Err.Error())...)
	}
	return string(b)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel for e's Kind, so that
// errors.Is(err, llm.ErrRateLimited) holds for every rate-limit failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t.Kind >= numKinds || sentinels[t.Kind] != t {
		return false
	}
	return t.Kind == e.Kind
}

// The sentinels, one per Kind, for errors.Is. Never return them directly:
// return an *Error of the same Kind, which carries status and cause.
var (
	ErrUnknown       = &Error{Kind: KindUnknown}
	ErrRateLimited   = &Error{Kind: KindRateLimited}
	ErrTimeout       = &Error{Kind: KindTimeout}
	ErrUnavailable   = &Error{Kind: KindUnavailable}
	ErrOverloaded    = &Error{Kind: KindOverloaded}
	ErrBadRequest    = &Error{Kind: KindBadRequest}
	ErrAuth          = &Error{Kind: KindAuth}
	ErrContextLength = &Error{Kind: KindContextLength}
	ErrContentFilter = &Error{Kind: KindContentFilter}
	ErrCanceled      = &Error{Kind: KindCanceled}
	ErrCircuitOpen   = &Error{Kind: KindCircuitOpen}
	ErrStreamCut     = &Error{Kind: KindStreamCut}
)

var sentinels = [numKinds]*Error{
	ErrUnknown, ErrRateLimited, ErrTimeout, ErrUnavailable, ErrOverloaded,
	ErrBadRequest, ErrAuth, ErrContextLength, ErrContentFilter, ErrCanceled,
	ErrCircuitOpen, ErrStreamCut,
}

// KindOf classifies any error: the Kind of the first *Error in its chain;
// context.Canceled as KindCanceled; context.DeadlineExceeded and network
// timeouts as KindTimeout; other network failures and an unexpected EOF as
// KindUnavailable; nil as KindUnknown; anything else as KindUnknown.
func KindOf(err error) Kind {
	if err == nil {
		return KindUnknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, io.ErrUnexpectedEOF):
		return KindUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return KindTimeout
		}
		return KindUnavailable
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return KindUnavailable
	}
	return KindUnknown
}

// Retryable reports whether another attempt may succeed: rate limits,
// timeouts, unavailable and overloaded providers, and cut streams. Bad
// requests, auth failures, context-length and content-filter refusals,
// cancellations and open circuits are not retryable, nor are errors llmkit
// cannot classify.
func Retryable(err error) bool {
	switch KindOf(err) {
	case KindRateLimited, KindTimeout, KindUnavailable, KindOverloaded, KindStreamCut:
		return true
	}
	return false
}

// KindForStatus maps an HTTP status to the Kind providers mean by it: 429
// rate_limited, 408 timeout, 401, 402 and 403 auth, 529 overloaded, other
// 5xx unavailable, other 4xx bad_request, anything else unknown. Adapters
// look at the provider's error code first (a context-length error is a
// 400) and fall back to this; a ClientFunc over a plain HTTP client can use
// it as it is.
func KindForStatus(status int) Kind {
	switch {
	case status == 429:
		return KindRateLimited
	case status == 408:
		return KindTimeout
	case status == 401 || status == 402 || status == 403:
		return KindAuth
	case status == 529:
		return KindOverloaded
	case status >= 500 && status < 600:
		return KindUnavailable
	case status >= 400 && status < 500:
		return KindBadRequest
	}
	return KindUnknown
}

// HTTPStatus returns the status a provider sends for a failure of kind k
// (the inverse of KindForStatus, taking 400 for the kinds that share it),
// or 0 for the kinds that do not come from HTTP: canceled, circuit_open,
// stream_cut, unknown. Simulators and test servers use it.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindRateLimited:
		return 429
	case KindTimeout:
		return 408
	case KindUnavailable:
		return 503
	case KindOverloaded:
		return 529
	case KindBadRequest, KindContextLength, KindContentFilter:
		return 400
	case KindAuth:
		return 401
	}
	return 0
}

// RetryAfterOf returns the RetryAfter of the first *Error in err's chain.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// FromContext turns a context's error into an *Error: KindCanceled for
// cancellation, KindTimeout for a passed deadline. It returns nil when ctx is
// not done.
func FromContext(ctx context.Context, provider string) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	kind := KindCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		kind = KindTimeout
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		// A cause set by a decorator (an attempt timeout, say) is kept.
		if KindOf(cause) != KindUnknown {
			kind = KindOf(cause)
		}
		err = cause
	}
	return &Error{Kind: kind, Provider: provider, Err: err}
}

// NewError returns an *Error with a kind, provider and message.
func NewError(kind Kind, provider, message string) *Error {
	return &Error{Kind: kind, Provider: provider, Message: message}
}

// BadRequest returns an *Error of KindBadRequest, the error Validate
// returns.
func BadRequest(message string) *Error {
	return &Error{Kind: KindBadRequest, Provider: "llmkit", Message: message}
}
