package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

// Job is one LLM request waiting in the queue.
type Job struct {
	ID       string `json:"id"`
	Prompt   string `json:"prompt"`
	Endpoint string `json:"endpoint,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	// Attempts counts the times a worker ran the job.
	Attempts int `json:"attempts"`
}

// Result is what a job left behind, in the results hash.
type Result struct {
	Text     string `json:"text,omitempty"`
	Kind     string `json:"kind,omitempty"` // the error kind when it failed for good
	Degraded bool   `json:"degraded,omitempty"`
	Attempts int    `json:"attempts"`
}

// Queue is a job queue in Redis, with the same retry discipline as the
// seed document's Celery task (max 3 retries, countdown 2^n s) but without
// its trap: the worker's own stack does not retry, so attempts never
// multiply (a queue retry × a client retry × an SDK retry).
//
// Keys, under a prefix: pending (a list workers pop from), processing (a
// list holding the jobs being worked on, so a crashed worker's jobs can be
// put back), delayed (a sorted set of jobs waiting for their retry, by due
// time), results (a hash from job id to Result) and dead (a list of jobs
// that failed for good).
type Queue struct {
	rdb                                         redis.UniversalClient
	pending, processing, delayed, results, dead string
	// MaxAttempts bounds the runs of one job. Default 4 (a first run and 3
	// retries).
	MaxAttempts int
	// BaseDelay is the first retry's wait; each later one doubles it,
	// with ±20% jitter (so that jobs failed by one outage do not all come
	// due at once), a provider's Retry-After raises it, and MaxDelay caps
	// it: resilience.RetryConfig.Backoff, as a Retry middleware waits.
	// Defaults 1 s and 1 h (a queue can honour a long Retry-After that a
	// caller waiting for its answer could not).
	BaseDelay, MaxDelay time.Duration
	// Filed, when set, is called after a job's final outcome is stored:
	// its result, or its failure for good.
	Filed func(Job, Result)
}

// NewQueue returns the queue named prefix in rdb.
func NewQueue(rdb redis.UniversalClient, prefix string) *Queue {
	return &Queue{
		rdb: rdb, pending: prefix + ":pending", processing: prefix + ":processing",
		delayed: prefix + ":delayed", results: prefix + ":results", dead: prefix + ":dead",
		MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: time.Hour,
	}
}

// Enqueue adds jobs to the queue.
func (q *Queue) Enqueue(ctx context.Context, jobs ...Job) error {
	vals := make([]any, len(jobs))
	for i, j := range jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		vals[i] = b
	}
	return q.rdb.LPush(ctx, q.pending, vals...).Err()
}

// Recover puts back the jobs a stopped worker left in processing. Call it
// once before starting workers, when no other worker of this queue runs.
func (q *Queue) Recover(ctx context.Context) (int, error) {
	n := 0
	for {
		err := q.rdb.LMove(ctx, q.processing, q.pending, "RIGHT", "LEFT").Err()
		if errors.Is(err, redis.Nil) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// promote moves the delayed jobs that are due to pending, atomically.
var promote = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('LPUSH', KEYS[2], job)
end
return #due`)

// Work runs one worker until ctx is done: it pops a job, runs it through
// client, and records the result, retries it later, or gives up on it.
// When there is nothing to do it waits poll, cancellably, before looking
// again; due retries are moved to pending on every look.
func (q *Queue) Work(ctx context.Context, client llm.Client, poll time.Duration) error {
	for ctx.Err() == nil {
		if err := promote.Run(ctx, q.rdb, []string{q.delayed, q.pending}, strconv.FormatInt(time.Now().UnixMilli(), 10)).Err(); err != nil && ctx.Err() == nil {
			return err
		}
		raw, err := q.rdb.LMove(ctx, q.pending, q.processing, "RIGHT", "LEFT").Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Nothing to do: wait a little (Redis's blocking pops take
			// whole seconds, too coarse for due retries).
			_ = llm.Sleep(ctx, poll)
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := q.handle(ctx, client, raw); err != nil {
			return err
		}
	}
	return nil
}

// handle runs one job and files its outcome. The job leaves processing
// only once its outcome is stored, so a crash in between repeats it
// rather than losing it.
func (q *Queue) handle(ctx context.Context, client llm.Client, raw string) error {
	var job Job
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		// Not a job: dead-letter it as it is.
		return q.finish(ctx, raw, func(p redis.Pipeliner) { p.LPush(ctx, q.dead, raw) })
	}
	job.Attempts++
	resp, err := client.Generate(ctx, &llm.Request{
		Messages: []llm.Message{llm.User(job.Prompt)}, Endpoint: job.Endpoint, Tenant: job.Tenant,
		Temperature: llm.Ptr(0.0),
	})
	if err != nil && ctx.Err() != nil {
		return nil // stopping: the job stays in processing for Recover
	}
	if err == nil {
		r := Result{Text: resp.Text, Degraded: resp.Degraded, Attempts: job.Attempts}
		res, _ := json.Marshal(r)
		return q.filed(job, r, q.finish(ctx, raw, func(p redis.Pipeliner) { p.HSet(ctx, q.results, job.ID, res) }))
	}
	// An open breaker is the provider's outage, not the job's: the job
	// waits it out (its error carries how long) like any other retry.
	if (llm.Retryable(err) || llm.KindOf(err) == llm.KindCircuitOpen) && job.Attempts < q.MaxAttempts {
		wait := (&resilience.RetryConfig{BaseDelay: q.BaseDelay, MaxDelay: max(q.MaxDelay, q.BaseDelay)}).Backoff(job.Attempts, err)
		next, _ := json.Marshal(job)
		due := float64(time.Now().Add(wait).UnixMilli())
		return q.finish(ctx, raw, func(p redis.Pipeliner) { p.ZAdd(ctx, q.delayed, redis.Z{Score: due, Member: next}) })
	}
	r := Result{Kind: llm.KindOf(err).String(), Attempts: job.Attempts}
	res, _ := json.Marshal(r)
	return q.filed(job, r, q.finish(ctx, raw, func(p redis.Pipeliner) {
		p.HSet(ctx, q.results, job.ID, res)
		p.LPush(ctx, q.dead, raw)
	}))
}

func (q *Queue) filed(job Job, r Result, err error) error {
	if err == nil && q.Filed != nil {
		q.Filed(job, r)
	}
	return err
}

// finish files a job's outcome and takes it out of processing in one
// transaction.
func (q *Queue) finish(ctx context.Context, raw string, file func(redis.Pipeliner)) error {
	_, err := q.rdb.TxPipelined(context.WithoutCancel(ctx), func(p redis.Pipeliner) error {
		file(p)
		p.LRem(ctx, q.processing, 1, raw)
		return nil
	})
	return err
}

// Result returns the stored result of job id, if any.
func (q *Queue) Result(ctx context.Context, id string) (Result, bool, error) {
	b, err := q.rdb.HGet(ctx, q.results, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	var r Result
	return r, true, json.Unmarshal(b, &r)
}

// Counts returns how many jobs wait, run, wait for a retry, and are dead.
func (q *Queue) Counts(ctx context.Context) (pending, processing, delayed, dead int64, err error) {
	p := q.rdb.Pipeline()
	a, b, c, d := p.LLen(ctx, q.pending), p.LLen(ctx, q.processing), p.ZCard(ctx, q.delayed), p.LLen(ctx, q.dead)
	if _, err = p.Exec(ctx); err != nil {
		return
	}
	return a.Val(), b.Val(), c.Val(), d.Val(), nil
}
