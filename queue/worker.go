package queue

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

// Output is what a job records as its River output: the answer, or the
// kind of its last failure. It never holds the prompt.
type Output struct {
	Text         string           `json:"text,omitempty"`
	Model        string           `json:"model,omitempty"`
	FinishReason llm.FinishReason `json:"finish_reason,omitempty"`
	InputTokens  int              `json:"input_tokens,omitempty"`
	OutputTokens int              `json:"output_tokens,omitempty"`
	Cached       bool             `json:"cached,omitempty"`
	Degraded     bool             `json:"degraded,omitempty"`
	// ErrorKind is the llm.Kind of the last failure ("rate_limited"), empty
	// after a success.
	ErrorKind string `json:"error_kind,omitempty"`
}

// worker runs one job through the caller's stack and maps its failure to
// River's outcome (see the package documentation).
type worker struct {
	river.WorkerDefaults[Args]
	client  llm.Client
	cfg     Config
	snooze  resilience.RetryConfig // the waits of a snoozed job, up to MaxSnooze
	metrics *metrics
	now     func() time.Time
}

func newWorker(cfg Config, m *metrics, now func() time.Time) *worker {
	return &worker{
		client: cfg.Client, cfg: cfg, metrics: m, now: now,
		snooze: resilience.RetryConfig{BaseDelay: min(cfg.BaseDelay, cfg.MaxSnooze), MaxDelay: cfg.MaxSnooze},
	}
}

// Timeout bounds one attempt.
func (w *worker) Timeout(*river.Job[Args]) time.Duration { return w.cfg.JobTimeout }

// Work calls the stack once and records the outcome.
func (w *worker) Work(ctx context.Context, job *river.Job[Args]) error {
	w.metrics.started(w.now().Sub(job.ScheduledAt))
	resp, err := w.client.Generate(ctx, job.Args.Request())
	if err == nil {
		out := Output{
			Text: resp.Text, Model: resp.Model, FinishReason: resp.FinishReason,
			InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens,
			Cached: resp.Cached, Degraded: resp.Degraded,
		}
		if oerr := river.RecordOutput(ctx, out); oerr != nil {
			return oerr // retried: the answer could not be kept
		}
		w.metrics.finished(outcomeCompleted, llm.KindUnknown, job.Attempt)
		return nil
	}
	kind := llm.KindOf(err)
	_ = river.RecordOutput(ctx, Output{ErrorKind: kind.String()}) // a kind name always encodes
	outcome, res := w.outcome(job, kind, err)
	w.metrics.finished(outcome, kind, job.Attempt)
	return res
}

// outcome maps a failure to River's outcome and the label it is counted
// under.
func (w *worker) outcome(job *river.Job[Args], kind llm.Kind, err error) (string, error) {
	switch kind {
	case llm.KindRateLimited, llm.KindCircuitOpen:
		// The provider (or the breaker) said when to come back: the job
		// waits without spending an attempt, a bounded number of times.
		if n := snoozes(job.Metadata); n < w.cfg.MaxSnoozes {
			return outcomeSnoozed, river.JobSnooze(w.snooze.Backoff(n+1, err))
		}
	case llm.KindBadRequest, llm.KindAuth, llm.KindContentFilter, llm.KindContextLength:
		// Running it again gives the same answer.
		return outcomeCancelled, river.JobCancel(err)
	}
	if job.Attempt >= job.MaxAttempts {
		return outcomeDiscarded, err
	}
	return outcomeRetried, err
}

// snoozes reads how often River snoozed a job from its metadata.
func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m) // River writes it; absent is 0
	return m.Snoozes
}
