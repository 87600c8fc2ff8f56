package queue

import (
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/llmkit/llmkit/resilience"
)

// retryPolicy is River's ClientRetryPolicy for failed jobs: the seed's
// countdown of 2^n seconds (BaseDelay doubled per attempt), with jitter so
// that the jobs one outage failed do not all come back at once, capped at
// MaxDelay. It is resilience.RetryConfig.Backoff, the waits a Retry
// middleware uses, applied to the job's attempt count (snoozes do not
// count). Rescued jobs get the same waits.
type retryPolicy struct {
	backoff resilience.RetryConfig
	now     func() time.Time
}

// NextRetry returns when the job runs again.
func (p *retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return p.now().Add(p.backoff.Backoff(job.Attempt, nil))
}
