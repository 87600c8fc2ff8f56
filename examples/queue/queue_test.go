package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	cacheredis "github.com/llmkit/llmkit/cache/redis"
	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisClient returns a client for the test Redis (LLMKIT_REDIS_ADDR).
// These tests must run in CI: without Redis they fail there, and skip
// elsewhere.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: cacheredis.Addr(), DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	redistest.Require(t, rdb, cacheredis.Addr())
	return rdb
}

func testQueue(t *testing.T, rdb *redis.Client) *Queue {
	t.Helper()
	q := NewQueue(rdb, "llmkit:test:queue:"+t.Name()+":"+strconv.FormatInt(time.Now().UnixNano(), 36))
	q.BaseDelay = time.Millisecond
	t.Cleanup(func() { rdb.Del(context.Background(), q.pending, q.processing, q.delayed, q.results, q.dead) })
	return q
}

// work runs n workers until every one of jobs is filed, and returns what
// was filed.
func work(t *testing.T, q *Queue, client llm.Client, n int, jobs []Job) map[string]Result {
	t.Helper()
	var mu sync.Mutex
	filed := map[string]Result{}
	all := make(chan struct{})
	q.Filed = func(j Job, r Result) {
		mu.Lock()
		defer mu.Unlock()
		filed[j.ID] = r
		if len(filed) == len(jobs) {
			close(all)
		}
	}
	if err := q.Enqueue(context.Background(), jobs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, n)
	for range n {
		go func() { errc <- q.Work(ctx, client, time.Millisecond) }()
	}
	bound := time.NewTimer(30 * time.Second) // a deadlock guard, not a timing assertion
	defer bound.Stop()
	select {
	case <-all:
	case <-bound.C:
		t.Error("jobs not filed within 30 s")
	}
	cancel()
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("Work: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return filed
}

func jobs(n int) []Job {
	js := make([]Job, n)
	for i := range js {
		js[i] = Job{ID: strconv.Itoa(i), Prompt: "job " + strconv.Itoa(i)}
	}
	return js
}

// Every job is filed exactly once; retried jobs took at most MaxAttempts
// runs; and the provider, behind the stack the example's workers use,
// saw exactly as many calls as the jobs' attempts add up to: queue retries
// do not multiply with anything in that stack.
func TestJobsRetriedNotMultiplied(t *testing.T) {
	rdb := redisClient(t)
	q := testQueue(t, rdb)
	var calls atomic.Int64
	provider := &llmtest.Fake{Func: func(n int, _ *llm.Request) llmtest.Step {
		calls.Add(1)
		if n%3 == 0 { // every third call fails with a 503
			return llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
		}
		return llmtest.Step{Text: "done"}
	}}
	st, err := workerStack(provider)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	filed := work(t, q, st.Client, 4, jobs(60))
	if len(filed) != 60 {
		t.Fatalf("%d jobs filed, want 60", len(filed))
	}
	total := 0
	for id, r := range filed {
		if r.Attempts < 1 || r.Attempts > q.MaxAttempts {
			t.Fatalf("job %s: %d attempts", id, r.Attempts)
		}
		total += r.Attempts
		stored, ok, err := q.Result(context.Background(), id)
		if err != nil || !ok || stored != r {
			t.Fatalf("job %s: stored %+v %v %v, filed %+v", id, stored, ok, err, r)
		}
	}
	if int64(total) != calls.Load() {
		t.Fatalf("jobs' attempts add up to %d but the provider saw %d calls", total, calls.Load())
	}
	if total == 60 {
		t.Fatal("no job was retried: the test proves nothing about retries")
	}
	pending, processing, delayed, _, err := q.Counts(context.Background())
	if err != nil || pending+processing+delayed != 0 {
		t.Fatalf("left over: pending %d processing %d delayed %d (%v)", pending, processing, delayed, err)
	}
}

// A failure that cannot succeed later is dead-lettered after one run.
func TestNonRetryableDeadLetters(t *testing.T) {
	rdb := redisClient(t)
	q := testQueue(t, rdb)
	provider := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindAuth)}}
	filed := work(t, q, provider, 1, jobs(3))
	for id, r := range filed {
		if r.Kind != "auth" || r.Attempts != 1 {
			t.Fatalf("job %s: %+v, want kind auth after 1 attempt", id, r)
		}
	}
	if _, _, _, dead, err := q.Counts(context.Background()); err != nil || dead != 3 {
		t.Fatalf("dead letters %d (%v), want 3", dead, err)
	}
	if provider.Calls() != 3 {
		t.Fatalf("provider calls %d, want 3", provider.Calls())
	}
}

// An open breaker is the provider's outage, not the job's: the job is
// rescheduled (after the breaker's remaining delay), not dead-lettered.
func TestOpenBreakerReschedules(t *testing.T) {
	rdb := redisClient(t)
	q := testQueue(t, rdb)
	open := &llm.Error{Kind: llm.KindCircuitOpen, RetryAfter: time.Millisecond}
	provider := &llmtest.Fake{Steps: []llmtest.Step{{Err: open}, {Err: open}}, Default: llmtest.Step{Text: "done"}}
	filed := work(t, q, provider, 1, jobs(2))
	retried := 0
	for id, r := range filed {
		if r.Kind != "" {
			t.Fatalf("job %s failed for good with %s: an open breaker dead-lettered it", id, r.Kind)
		}
		if r.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no job met the open breaker")
	}
}

// A provider's Retry-After sets the retry's due time when it is longer
// than the backoff.
func TestRetryAfterHonoured(t *testing.T) {
	rdb := redisClient(t)
	q := testQueue(t, rdb)
	limited := &llm.Error{Kind: llm.KindRateLimited, Status: 429, RetryAfter: time.Hour}
	provider := &llmtest.Fake{Default: llmtest.Step{Err: limited}}
	if err := q.Enqueue(context.Background(), Job{ID: "a", Prompt: "x"}); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.LMove(context.Background(), q.pending, q.processing, "RIGHT", "LEFT").Result()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := q.handle(context.Background(), provider, raw); err != nil {
		t.Fatal(err)
	}
	zs, err := rdb.ZRangeWithScores(context.Background(), q.delayed, 0, -1).Result()
	if err != nil || len(zs) != 1 {
		t.Fatalf("delayed %v %v, want the one job", zs, err)
	}
	if due := time.UnixMilli(int64(zs[0].Score)); due.Before(before.Add(time.Hour).Truncate(time.Millisecond)) {
		t.Fatalf("due at %v, want at least an hour after %v", due, before)
	}
	if !strings.Contains(zs[0].Member.(string), `"attempts":1`) {
		t.Fatalf("delayed job %v does not record its attempt", zs[0].Member)
	}
}

// A worker stopped mid-call leaves its job in processing, and Recover puts
// it back for the next worker.
func TestStoppedWorkerKeepsJobForRecover(t *testing.T) {
	rdb := redisClient(t)
	q := testQueue(t, rdb)
	started := make(chan struct{})
	var once sync.Once
	provider := &llmtest.Fake{Func: func(int, *llm.Request) llmtest.Step {
		once.Do(func() { close(started) })
		return llmtest.Step{Hang: true}
	}}
	if err := q.Enqueue(context.Background(), Job{ID: "a", Prompt: "x"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Work(ctx, provider, time.Millisecond) }()
	<-started
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Work: %v", err)
	}
	if _, processing, _, _, _ := q.Counts(context.Background()); processing != 1 {
		t.Fatalf("processing %d after the stop, want the job kept", processing)
	}
	n, err := q.Recover(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Recover: %d %v", n, err)
	}
	if pending, processing, _, _, _ := q.Counts(context.Background()); pending != 1 || processing != 0 {
		t.Fatalf("after Recover: pending %d processing %d", pending, processing)
	}
}

// The example program works its jobs off and says so.
func TestRun(t *testing.T) {
	rdb := redisClient(t)
	var out bytes.Buffer
	if err := run(context.Background(), &out, rdb, options{Jobs: 40, Workers: 4, Fail: 0.3, BaseDelay: time.Millisecond, Deadline: 30 * time.Second}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "40 jobs, 4 workers") {
		t.Fatalf("output:\n%s", out.String())
	}
	if err := run(context.Background(), &out, rdb, options{Jobs: 0, Workers: 1, BaseDelay: 1, Deadline: 1}); err == nil {
		t.Fatal("0 jobs accepted")
	}
}
