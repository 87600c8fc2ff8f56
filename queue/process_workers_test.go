package queue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/queue"
)

// A worker killed with SIGKILL in the middle of a job leaves it running;
// River's rescuer, on the next worker, makes it retryable after
// RescueAfter, and it completes: at least once, so the provider is called
// twice, once per attempt.
func TestKilledWorkerJobIsRescued(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		q := open(t, b, queue.Config{})
		job, err := q.Enqueue(ctx, llm.Prompt("Summarize ticket 1"))
		if err != nil {
			t.Fatal(err)
		}
		calls := filepath.Join(t.TempDir(), "calls")
		a := startWorker(t, b, calls, workerOpts{Mode: "hang", Rescue: 2 * time.Second})
		eventually(t, 30*time.Second, "the job reaches the provider", func() bool { return callCount(t, calls) == 1 })
		a.signal(t, syscall.SIGKILL)
		if err := a.wait(t, 10*time.Second); err == nil {
			t.Fatal("killed worker exited cleanly")
		}
		if r := result(t, q, job.ID); r.State != rivertype.JobStateRunning {
			t.Fatalf("after the kill the job is %s, want running", r.State)
		}
		// The killed worker may have been the leader: its lease (15 s)
		// runs out before the new worker leads and rescues.
		bw := startWorker(t, b, calls, workerOpts{Rescue: 2 * time.Second})
		eventually(t, 60*time.Second, "the rescued job completes", func() bool {
			return result(t, q, job.ID).State == rivertype.JobStateCompleted
		})
		r := result(t, q, job.ID)
		if r.Attempt != 2 || r.Output == nil || r.Output.Text == "" {
			t.Fatalf("result %+v, want attempt 2 with an answer", r)
		}
		if got, want := callCount(t, calls), sumAttempts(t, b); got != 2 || got != want {
			t.Fatalf("provider calls %d, attempts %d: want 2 and 2", got, want)
		}
		bw.signal(t, syscall.SIGTERM)
		if err := bw.wait(t, 30*time.Second); err != nil {
			t.Fatalf("worker after SIGTERM: %v", err)
		}
	})
}

// SIGTERM while a job runs: the worker stops taking jobs, lets the running
// one finish, and exits 0; the job is completed, not retried.
func TestSIGTERMDrains(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		q := open(t, b, queue.Config{})
		job, err := q.Enqueue(ctx, llm.Prompt("Summarize ticket 2"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		calls, gate := filepath.Join(dir, "calls"), filepath.Join(dir, "gate")
		if err := syscall.Mkfifo(gate, 0o600); err != nil {
			t.Fatal(err)
		}
		w := startWorker(t, b, calls, workerOpts{Mode: "gate", Gate: gate})
		eventually(t, 30*time.Second, "the job reaches the provider", func() bool { return callCount(t, calls) == 1 })
		w.signal(t, syscall.SIGTERM)
		eventually(t, 10*time.Second, "the worker starts draining", func() bool { return w.logged("worker: draining") })
		// The job is still in the provider: open the gate. O_NONBLOCK
		// fails (ENXIO) if the reader is gone, that is, if the worker quit
		// without draining.
		f, err := os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatalf("the running job was not drained: %v", err)
		}
		f.Close()
		if err := w.wait(t, 30*time.Second); err != nil {
			t.Fatalf("worker after SIGTERM: %v", err)
		}
		r := result(t, q, job.ID)
		if r.State != rivertype.JobStateCompleted || r.Attempt != 1 || callCount(t, calls) != 1 {
			t.Fatalf("result %+v after %d calls, want completed in 1 attempt", r, callCount(t, calls))
		}
	})
}

// Three worker processes share one database and work 2,000 jobs off, with
// 10% of provider calls failing: every job completes, and the provider saw
// exactly as many calls as the jobs' attempts add up to (no retry inside
// a worker multiplies them).
func TestThreeWorkersShareTheQueue(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		q := open(t, b, queue.Config{MaxAttempts: 10})
		const jobs = 2000
		reqs := make([]*llm.Request, jobs)
		for i := range reqs {
			reqs[i] = llm.Prompt(fmt.Sprintf("Classify support ticket #%d", i))
		}
		if _, err := q.EnqueueMany(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		calls := filepath.Join(t.TempDir(), "calls")
		var ws []*worker
		for range 3 {
			ws = append(ws, startWorker(t, b, calls, workerOpts{Workers: 20, Fail: 0.1, MaxAttempts: 10}))
		}
		// Each poll counts 2,000 rows, in this process's SQLite
		// instrumented by -race: poll at a pace that leaves the CPU to
		// the workers.
		eventuallyEvery(t, 120*time.Second, 250*time.Millisecond, "every job completes", func() bool {
			n, err := q.Counts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n["discarded"]+n["cancelled"] > 0 {
				t.Fatalf("jobs failed for good: %v", n)
			}
			return n["completed"] == jobs
		})
		for _, w := range ws {
			w.signal(t, syscall.SIGTERM)
		}
		for _, w := range ws {
			if err := w.wait(t, 30*time.Second); err != nil {
				t.Fatalf("worker after SIGTERM: %v", err)
			}
		}
		got, want := callCount(t, calls), sumAttempts(t, b)
		if got != want || got <= jobs {
			t.Fatalf("provider calls %d, sum of attempts %d: want equal and above %d (10%% fail)", got, want, jobs)
		}
		t.Logf("%s: %d jobs, %d provider calls", b.Name, jobs, got)
	})
}

func result(t *testing.T, q *queue.Queue, id int64) *queue.Result {
	t.Helper()
	r, err := q.Result(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
