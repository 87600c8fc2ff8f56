package queue

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"

	"github.com/llmkit/llmkit/llm"
)

// The outcomes of one run of a job, a bounded label.
const (
	outcomeCompleted = "completed"
	outcomeSnoozed   = "snoozed"
	outcomeCancelled = "cancelled"
	outcomeRetried   = "retried"
	outcomeDiscarded = "discarded"
)

// metrics are the queue's Prometheus series:
//
//	llm_queue_jobs{state}                  jobs in the database by River state, read at scrape
//	llm_queue_runs_total{outcome,kind}     runs of jobs in this process by outcome and error kind
//	llm_queue_wait_seconds                 time from a job being due to a worker starting it
//	llm_queue_attempts                     attempts a job took, at its final outcome
//
// A nil *metrics records nothing.
type metrics struct {
	runs     *prometheus.CounterVec
	wait     prometheus.Histogram
	attempts prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, counts func(context.Context) (map[rivertype.JobState]int, error)) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llm_queue_runs_total",
			Help: "Runs of LLM jobs in this process, by outcome (completed, snoozed, cancelled, retried, discarded) and error kind.",
		}, []string{"outcome", "kind"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llm_queue_wait_seconds",
			Help:    "Time from a job being due to a worker starting it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms to ~43 min
		}),
		attempts: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llm_queue_attempts",
			Help:    "Attempts a job took, at its final outcome (completed, cancelled, discarded).",
			Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 10, 15, 25},
		}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.wait, m.attempts, &stateCollector{counts: counts}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) started(wait time.Duration) {
	if m != nil {
		m.wait.Observe(max(wait, 0).Seconds())
	}
}

func (m *metrics) finished(outcome string, kind llm.Kind, attempt int) {
	if m == nil {
		return
	}
	k := ""
	if outcome != outcomeCompleted {
		k = kind.String()
	}
	m.runs.WithLabelValues(outcome, k).Inc()
	if outcome == outcomeCompleted || outcome == outcomeCancelled || outcome == outcomeDiscarded {
		m.attempts.Observe(float64(attempt))
	}
}

// states are River's job states, the label values of llm_queue_jobs.
var states = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

var jobsDesc = prometheus.NewDesc("llm_queue_jobs", "LLM jobs in the database by River state (all queues of the schema).", []string{"state"}, nil)

// stateCollector counts the jobs by state when scraped: one GROUP BY query,
// bounded by a timeout so that a slow database cannot hang the scrape.
type stateCollector struct {
	counts func(context.Context) (map[rivertype.JobState]int, error)
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n[s]), string(s))
	}
}
