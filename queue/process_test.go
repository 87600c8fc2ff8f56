package queue_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmkit/llmkit/queue"
)

// worker is a worker process: internal/testworker, built by
// workerBinary. It is stopped by its PID at the end of the test if still
// running.
type worker struct {
	cmd    *exec.Cmd
	stderr string
	done   chan struct{}
	err    error // Wait's, once done is closed
}

type workerOpts struct {
	Mode        string // "", "hang", "gate"
	Gate        string
	Workers     int
	Rescue      time.Duration
	Fail        float64 // share of calls failing with unavailable
	MaxAttempts int
}

func startWorker(t *testing.T, b backend, calls string, o workerOpts) *worker {
	t.Helper()
	dir := t.TempDir()
	w := &worker{stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	errf, err := os.Create(w.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	w.cmd = exec.Command(workerBinary(t),
		"-dsn", b.DSN, "-schema", b.Schema, "-calls", calls, "-mode", o.Mode, "-gate", o.Gate,
		"-workers", strconv.Itoa(o.Workers), "-rescue", o.Rescue.String(),
		"-fail", strconv.FormatFloat(o.Fail, 'g', -1, 64), "-attempts", strconv.Itoa(o.MaxAttempts),
	)
	w.cmd.Stderr = errf
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill() // by PID
			<-w.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(w.stderr)
			t.Logf("worker %d stderr:\n%s", w.cmd.Process.Pid, b)
		}
	})
	return w
}

// signal sends sig to the process by its PID.
func (w *worker) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(w.cmd.Process.Pid, sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit, at most d, and returns Wait's error.
func (w *worker) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-w.done:
		return w.err
	case <-time.After(d):
		t.Fatalf("worker %d still running after %v", w.cmd.Process.Pid, d)
		return nil
	}
}

// logged reports whether the worker wrote s to stderr.
func (w *worker) logged(s string) bool {
	b, _ := os.ReadFile(w.stderr)
	return strings.Contains(string(b), s)
}

// eventually polls cond every 20 ms until it holds, failing the test after
// d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	eventuallyEvery(t, d, 20*time.Millisecond, what, cond)
}

// eventuallyEvery is eventually polling every interval, for a cond that
// costs CPU the workers need.
func eventuallyEvery(t *testing.T, d, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// callCount is how many provider calls every worker process made.
func callCount(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}

// sumAttempts adds up the attempts of every job in b, straight from
// River's table.
func sumAttempts(t *testing.T, b backend) int {
	t.Helper()
	ctx := context.Background()
	var n int
	if b.Schema == "" {
		db, err := queue.OpenSQLite(b.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var s sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT sum(attempt) FROM river_job").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return int(s.Int64)
	}
	conn, err := pgx.Connect(ctx, b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(attempt), 0) FROM "+b.Schema+".river_job").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
