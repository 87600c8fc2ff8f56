package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// The documented commands on an SQLite file: enqueue, work until done
// (with 30% of model calls failing, retried by the queue), status, result.
func TestCommands(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	db := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	cmd := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, &out, append([]string{args[0], "-db", db}, args[1:]...)); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	if out := cmd("enqueue", "-n", "20"); !strings.Contains(out, "enqueued 20 job(s), ids 1..20") {
		t.Fatalf("enqueue: %q", out)
	}
	out := cmd("work", "-until-done", "-fail", "0.3", "-workers", "5")
	// 0.3^4 of the jobs (about 1 in 120) may fail for good; none is left
	// to run either way.
	if !regexp.MustCompile(`available +0\n`).MatchString(out) || !regexp.MustCompile(`completed +(1[5-9]|20)\n`).MatchString(out) {
		t.Fatalf("work: %q", out)
	}
	if out := cmd("status"); !strings.Contains(out, "running    0") {
		t.Fatalf("status: %q", out)
	}
	if out := cmd("result", "1"); !strings.Contains(out, "job 1: ") {
		t.Fatalf("result: %q", out)
	}
	var out2 bytes.Buffer
	if err := run(ctx, &out2, []string{"result", "-db", db, "999"}); err == nil {
		t.Fatal("result of a missing job: no error")
	}
	if err := run(ctx, &out2, []string{"enqueue", "-n", "0", "-db", db}); err == nil {
		t.Fatal("enqueue -n 0: no error")
	}
}
