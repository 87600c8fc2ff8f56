package metrics

import (
	"time"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

// streamTimer wraps a request's Stream callback to time the first chunk.
// The callback runs on the calling goroutine (the llm streaming contract),
// so its fields need no synchronisation.
type streamTimer struct {
	start time.Duration // monotonic, from now()
	user  func(llm.Chunk) error
	ttft  time.Duration
	seen  bool
}

func (s *streamTimer) chunk(c llm.Chunk) error {
	if !s.seen {
		s.seen = true
		s.ttft = now() - s.start
	}
	return s.user(c)
}

// timeStream returns a clone of req whose Stream records the time to the
// first chunk, counted from start. The caller's request is not touched.
func timeStream(req *llm.Request, start time.Duration) (*llm.Request, *streamTimer) {
	st := &streamTimer{start: start, user: req.Stream}
	r := req.Clone()
	r.Stream = st.chunk
	return r, st
}

// now is the shared monotonic clock (internal/clock).
func now() time.Duration { return clock.Mono() }

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// safeText returns s redacted and cut to n bytes. It redacts before the
// final cut so a secret is never shortened into a shape Redact misses; the
// first cut only bounds the regular-expression work on huge prompts.
func safeText(s string, n int) string {
	return truncate(llm.Redact(truncate(s, 2*n+512)), n)
}

// statusIndex is 0 for success and 1+kind for a failure.
func statusIndex(err error) int {
	if err == nil {
		return 0
	}
	return 1 + int(llm.KindOf(err))
}

// numStatus counts the status label values: "ok" and every Kind.
var numStatus = 1 + len(llm.Kinds())

// statusNames holds the status label values by statusIndex.
var statusNames = func() []string {
	s := []string{"ok"}
	for _, k := range llm.Kinds() {
		s = append(s, k.String())
	}
	return s
}()

// quotaOf returns the quota reported with a response or an error.
func quotaOf(resp *llm.Response, err error) *llm.Quota {
	if resp != nil {
		return resp.Quota
	}
	var e *llm.Error
	if asError(err, &e) {
		return e.Quota
	}
	return nil
}
