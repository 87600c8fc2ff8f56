package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

// Queue inserts LLM jobs and, when it has a Client, works them. It wraps a
// River client of either driver (pgx for PostgreSQL, database/sql for
// SQLite); River's tables must exist (Migrate, or Open, creates them).
type Queue struct {
	river   riverClient
	exec    riverdriver.Executor
	cfg     Config
	closeDB func() // set by Open: closes the pool it opened
}

// riverClient is the part of *river.Client[TTx] the Queue uses, none of it
// generic in the transaction type, so one Queue type serves every driver.
type riverClient interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Stopped() <-chan struct{}
}

// New returns a Queue on driver (riverpgxv5.New(pool) or
// riversqlite.New(db)). It checks cfg and builds nothing on an error.
func New[TTx any](driver riverdriver.Driver[TTx], cfg Config) (*Queue, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := time.Now
	if cfg.Test.Now != nil {
		now = cfg.Test.Now
	}
	q := &Queue{exec: driver.GetExecutor(), cfg: cfg}
	m, err := newMetrics(cfg.Registerer, q.counts)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(leveled{slog.Default().Handler(), slog.LevelWarn})
	}
	rc := &river.Config{
		ID:                          cfg.ID,
		Logger:                      logger,
		Schema:                      cfg.Schema,
		MaxAttempts:                 cfg.MaxAttempts,
		JobTimeout:                  cfg.JobTimeout,
		RescueStuckJobsAfter:        cfg.RescueAfter,
		SoftStopTimeout:             cfg.DrainTimeout,
		FetchPollInterval:           cfg.PollInterval,
		FetchCooldown:               min(cfg.PollInterval, 100*time.Millisecond),
		CompletedJobRetentionPeriod: cfg.Retention,
		CancelledJobRetentionPeriod: cfg.Retention,
		RetryPolicy: &retryPolicy{now: now, backoff: resilience.RetryConfig{
			BaseDelay: cfg.BaseDelay, MaxDelay: cfg.MaxDelay,
		}},
		Plugins:  tracingPlugins(cfg),
		TestOnly: cfg.Test.Enabled,
	}
	if cfg.Test.Now != nil {
		rc.Test.Time = stubTime(cfg.Test.Now)
	}
	workers := river.NewWorkers()
	if cfg.Client != nil {
		if err := river.AddWorkerSafely(workers, newWorker(cfg, m, now)); err != nil {
			return nil, err
		}
		rc.Queues = map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: cfg.Workers}}
	} else {
		rc.SkipUnknownJobCheck = true // insert-only: the workers are elsewhere
	}
	rc.Workers = workers
	c, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, err
	}
	q.river = c
	return q, nil
}

// Enqueued is the job Enqueue inserted or, for a unique request, found.
type Enqueued struct {
	ID int64
	// Duplicate is set when an equal unique job was pending and no new job
	// was inserted: ID is that job's.
	Duplicate bool
}

// Enqueue validates req and inserts it as a job. On invalid arguments it
// returns an error wrapping ErrInvalidArgs and inserts nothing.
func (q *Queue) Enqueue(ctx context.Context, req *llm.Request) (Enqueued, error) {
	args, opts, err := q.job(req)
	if err != nil {
		return Enqueued{}, err
	}
	res, err := q.river.Insert(ctx, args, opts)
	if err != nil {
		return Enqueued{}, err
	}
	return Enqueued{ID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate}, nil
}

// EnqueueMany validates every request, then inserts them all in one batch;
// one invalid request fails the batch and nothing is inserted.
func (q *Queue) EnqueueMany(ctx context.Context, reqs []*llm.Request) ([]Enqueued, error) {
	params := make([]river.InsertManyParams, len(reqs))
	for i, req := range reqs {
		args, opts, err := q.job(req)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		params[i] = river.InsertManyParams{Args: args, InsertOpts: opts}
	}
	res, err := q.river.InsertMany(ctx, params)
	if err != nil {
		return nil, err
	}
	out := make([]Enqueued, len(res))
	for i, r := range res {
		out[i] = Enqueued{ID: r.Job.ID, Duplicate: r.UniqueSkippedAsDuplicate}
	}
	return out, nil
}

// uniqueStates are the states in which an equal job makes a unique one a
// duplicate: every state before an outcome. River requires the first four.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateScheduled, rivertype.JobStateRetryable,
}

func (q *Queue) job(req *llm.Request) (Args, *river.InsertOpts, error) {
	key, err := validate(req, q.cfg.Unique)
	if err != nil {
		return Args{}, nil, err
	}
	args := ArgsOf(req)
	opts := &river.InsertOpts{Queue: q.cfg.Queue, MaxAttempts: q.cfg.MaxAttempts}
	if key != "" {
		args.UniqueKey = key
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: uniqueStates}
	}
	return args, opts, nil
}

// Result is a job's state and, once it ran, its output.
type Result struct {
	ID int64
	// State is River's: available, scheduled, running, retryable,
	// completed, cancelled, discarded, pending.
	State       rivertype.JobState
	Attempt     int
	MaxAttempts int
	// ScheduledAt is when the job is (or was) due: a snoozed or retried
	// job's next run.
	ScheduledAt time.Time
	// Output is the answer (State completed) or the last failure's kind;
	// nil before the first run ends.
	Output *Output
	// LastError is the last failure's message, redacted as llmkit's errors
	// are; empty when none.
	LastError string
}

// ErrNotFound is returned by Result for an id with no job (never inserted,
// or removed after its retention).
var ErrNotFound = errors.New("queue: no such job")

// Result returns job id's state and output.
func (q *Queue) Result(ctx context.Context, id int64) (*Result, error) {
	row, err := q.river.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	r := &Result{ID: row.ID, State: row.State, Attempt: row.Attempt, MaxAttempts: row.MaxAttempts, ScheduledAt: row.ScheduledAt}
	if b := row.Output(); len(b) > 0 {
		r.Output = new(Output)
		if err := json.Unmarshal(b, r.Output); err != nil {
			return nil, fmt.Errorf("queue: job %d output: %w", id, err)
		}
	}
	if n := len(row.Errors); n > 0 {
		r.LastError = row.Errors[n-1].Error
	}
	return r, nil
}

// Counts returns how many jobs the database holds in each River state,
// across queues.
func (q *Queue) Counts(ctx context.Context) (map[string]int, error) {
	n, err := q.counts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(states))
	for _, s := range states {
		out[string(s)] = n[s]
	}
	return out, nil
}

func (q *Queue) counts(ctx context.Context) (map[rivertype.JobState]int, error) {
	return q.exec.JobCountByAllStates(ctx, &riverdriver.JobCountByAllStatesParams{Schema: q.cfg.Schema})
}

// Run works jobs until ctx is done, then drains: running jobs get
// DrainTimeout to finish, after which their contexts are cancelled and
// they are retried later. It returns once the workers have stopped. Tie
// ctx to SIGTERM with signal.NotifyContext.
func (q *Queue) Run(ctx context.Context) error {
	if q.cfg.Client == nil {
		return errors.New("queue: Config.Client is nil: this Queue only inserts")
	}
	if err := q.river.Start(ctx); err != nil {
		return err
	}
	<-q.river.Stopped()
	return nil
}

// Close releases the database pool Open opened. Call it after Run returns.
func (q *Queue) Close() {
	if q.closeDB != nil {
		q.closeDB()
	}
}

// stubTime is River's clock in tests.
type stubTime func() time.Time

func (f stubTime) Now() time.Time { return f() }
func (f stubTime) NowOrNil() *time.Time {
	t := f()
	return &t
}

// leveled drops records below a level, so River's info logs stay out of
// the caller's default logger.
type leveled struct {
	slog.Handler
	min slog.Level
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h leveled) WithAttrs(as []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(as), h.min}
}

func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{h.Handler.WithGroup(name), h.min}
}

// discard is the migrator's logger: it logs each applied version at info.
var discard = slog.New(slog.DiscardHandler)
