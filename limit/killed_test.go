package limit

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// ownRedis starts a redis-server of the test's own on a free loopback
// port, without persistence, and returns its address and the command
// (killed by its PID when the test ends). Without redis-server the test
// fails under CI and is skipped elsewhere.
func ownRedis(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (Debian package redis-server)")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := newClient(addr)
	defer rdb.Close()
	for i := 0; rdb.Ping(context.Background()).Err() != nil; i++ {
		if i == 500 {
			t.Fatalf("redis-server on %s did not answer", addr)
		}
		time.Sleep(10 * time.Millisecond) // polling a process that is starting
	}
	return addr, cmd
}

// TestRedisKilledMidway kills the limiters' Redis in the middle of the
// test: each configured mode takes over, every decision it makes is
// counted, and no call fails because of Redis except under FailClosed.
func TestRedisKilledMidway(t *testing.T) {
	addr, srv := ownRedis(t)
	rdb := newClient(addr)
	defer rdb.Close()
	type lim struct {
		mode Mode
		c    llm.Client
		rec  *recorder
	}
	var lims []lim
	for _, mode := range []Mode{FailOpen, FailClosed, LocalShare} {
		rec := &recorder{}
		l := newLimiter(t, Config{Redis: rdb, Name: mode.String(), RPM: 1000, TPM: 1 << 20, Replicas: 3,
			OnRedisError: mode, Observer: rec, BreakerFailures: 3})
		lims = append(lims, lim{mode, l.Middleware()(&llmtest.Fake{}), rec})
	}
	for _, l := range lims {
		for range 10 {
			if _, err := l.c.Generate(context.Background(), llm.Prompt("x")); err != nil {
				t.Fatalf("%v before the kill: %v", l.mode, err)
			}
		}
	}
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	for _, l := range lims {
		for i := range 20 {
			_, err := l.c.Generate(context.Background(), llm.Prompt("x"))
			switch {
			case l.mode != FailClosed && err != nil:
				t.Fatalf("%v: call %d after the kill failed: %v", l.mode, i, err)
			case l.mode == FailClosed && (llm.KindOf(err) != llm.KindRateLimited || !storeFailure(err)):
				t.Fatalf("fail closed: call %d after the kill: %v, want rate_limited caused by the store", i, err)
			}
		}
		if a, d := l.rec.count(llm.EventLimit, "allowed"), l.rec.count(llm.EventLimit, l.mode.String()); a != 10 || d != 20 {
			t.Fatalf("%v: %d allowed, %d %v events; want 10 and 20", l.mode, a, d, l.mode)
		}
		// Redis's breaker opened: the later calls did not wait on it.
		if ev, ok := l.rec.last(llm.EventBreakerState); !ok || ev.State != llm.BreakerOpen || ev.Source != l.mode.String() {
			t.Fatalf("%v: breaker event %+v, want open", l.mode, ev)
		}
	}
}

// storeFailure reports whether err was caused by the limit store.
func storeFailure(err error) bool {
	var e *llm.Error
	return errors.As(errors.Unwrap(err), &e) && e.Message == "limit store failed"
}

// TestEntriesLeaveTheWindow checks that the log forgets what left the
// window (requests alone, and with tokens) and admits again.
func TestEntriesLeaveTheWindow(t *testing.T) {
	rdb, prefix := liveRedis(t)
	for _, tpm := range []int{0, 1000} {
		rec := &recorder{}
		l := newLimiter(t, Config{Redis: rdb, Prefix: prefix, Name: strconv.Itoa(tpm), RPM: 2, TPM: tpm,
			Window: 200 * time.Millisecond, Observer: rec})
		c := l.Middleware()(&llmtest.Fake{})
		admitted := 0
		for i := 0; admitted < 5; i++ {
			if i == 2000 {
				t.Fatalf("tpm %d: %d admitted after %d tries: entries never leave the window", tpm, admitted, i)
			}
			if _, err := c.Generate(context.Background(), llm.Prompt("x")); err == nil {
				admitted++
			}
			time.Sleep(time.Millisecond) // pacing the polls
		}
		if n := rec.count(llm.EventLimit, "fail_open"); n != 0 {
			t.Fatalf("tpm %d: %d decisions failed on Redis", tpm, n)
		}
	}
}
