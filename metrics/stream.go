package metrics

import (
	"time"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

// streamTimer wraps a request's Stream callback to time the first chunk.
// The callback runs on the calling goroutine: no synchronisation needed.
type streamTimer struct {
	start time.Duration // from now()
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

// now is the shared monotonic clock; it follows synctest's fake clock.
func now() time.Duration { return clock.Mono() }

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// safeText returns s redacted, then cut to n bytes, so that no secret is
// cut into a shape Redact misses; the first cut bounds Redact's work.
func safeText(s string, n int) string {
	return truncate(llm.Redact(truncate(s, 2*n+512)), n)
}
