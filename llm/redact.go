package llm

import (
	"errors"
	"regexp"
	"strings"
)

// Redacted replaces every secret Redact finds.
const Redacted = "[REDACTED]"

// The secret shapes Redact removes. Each pattern keeps its first group (the
// name of the header or parameter) and replaces the rest.
var secretPatterns = []*regexp.Regexp{
	// Authorization: Bearer xxx / Basic xxx, in headers, JSON or prose.
	regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*["']?(?:bearer|basic|token)?\s*)[^\s"',;]+`),
	// Bearer tokens wherever they appear.
	regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]{8,}`),
	// API-key headers and fields: x-api-key, api-key, api_key, apikey,
	// x-goog-api-key, access_token, secret, password.
	regexp.MustCompile(`(?i)((?:x-(?:goog-)?api-key|api[-_]?key|access[-_]?token|client[-_]?secret|password|secret)["']?\s*[:=]\s*["']?)[^\s"',;&]+`),
	// Query parameters: ?key=…, &key=…, ?token=…, &sig=….
	regexp.MustCompile(`(?i)([?&](?:key|api_key|apikey|token|access_token|sig|signature)=)[^&\s"']+`),
	// Provider key shapes even without a name in front: sk-…, sk-ant-…,
	// sk-proj-…, AIza… (Google), xai-…, gsk_… (Groq). No word boundary is
	// required, so a key glued to other text (req_sk-ant-…) is caught too;
	// the price is the odd over-redaction of text such as "task-…".
	regexp.MustCompile(`()(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|xai-[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,})`),
}

// Redact returns s with secrets replaced by [REDACTED]: Authorization
// headers and bearer tokens, API-key headers and fields, key and token query
// parameters, and strings shaped like provider API keys. Every adapter runs
// provider error text through it, and every logger runs what it logs
// through it. It is cheap when s holds nothing that could be a secret.
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	for _, re := range secretPatterns {
		s = re.ReplaceAllString(s, "${1}"+Redacted)
	}
	return s
}

// mayHoldSecret is a fast pre-check so that ordinary error text skips the
// regular expressions.
func mayHoldSecret(s string) bool {
	l := strings.ToLower(s)
	for _, hint := range [...]string{"auth", "bearer", "key", "token", "secret", "password", "sig", "sk-", "aiza", "xai-", "gsk_"} {
		if strings.Contains(l, hint) {
			return true
		}
	}
	return false
}

// RedactError returns err unchanged when neither its text nor that of any
// cause reachable through Unwrap holds a secret. Otherwise it returns an
// *Error of the same Kind (keeping Status, RetryAfter, Provider and Quota of
// the first *Error in the chain) whose text is redacted, wrapping the
// outermost cause that holds no secret (the *net.OpError or
// context.Canceled under a *url.Error that names a ?key=… URL, say): errors.Is
// still finds that cause, and no secret stays reachable. Every error
// leaving an llmkit decorator passes through it; a decorator of one's own
// that returns foreign errors should do the same.
func RedactError(err error) error {
	if err == nil || !leaks(err) {
		return err
	}
	if e, ok := err.(*Error); ok {
		c := *e
		c.Message = Redact(c.Message)
		c.Err = RedactError(c.Err)
		return &c
	}
	out := &Error{Kind: KindOf(err), Message: Redact(err.Error())}
	var e *Error
	if errors.As(err, &e) {
		out.Status, out.RetryAfter, out.Provider, out.Quota = e.Status, e.RetryAfter, e.Provider, e.Quota
	}
	for cause := errors.Unwrap(err); cause != nil; cause = errors.Unwrap(cause) {
		if !leaks(cause) {
			out.Err = cause
			out.Message = strings.TrimSuffix(out.Message, ": "+cause.Error())
			break
		}
	}
	return out
}

// leaks reports whether the text of err or of a cause reachable through
// Unwrap holds a secret.
func leaks(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if s := err.Error(); Redact(s) != s {
			return true
		}
	}
	return false
}
