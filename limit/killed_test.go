package limit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/llmkit/llmkit/internal/redistest"
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
	rdb := redistest.Client(addr)
	defer rdb.Close()
	for i := 0; rdb.Ping(context.Background()).Err() != nil; i++ {
		if i == 500 {
			t.Fatalf("redis-server on %s did not answer", addr)
		}
		time.Sleep(10 * time.Millisecond) // polling a process that is starting
	}
	return addr, cmd
}

// The settings of TestRedisKilledMidway: each replica has killedReady
// calls decided by Redis before the kill, then goes on until its mode has
// decided killedAfter calls, more than the local share (killedRPM / 3) so
// that LocalShare refuses some.
const (
	killedRPM   = 600
	killedReady = 10
	killedAfter = 300
)

// TestRedisKilledMidway runs three replicas (OS processes) whose limiters,
// one per degraded mode, share a redis-server the test started, and kills
// that redis-server by its PID while the replicas are calling. In every
// replica the configured mode takes over and counts each decision it
// makes; no call fails because of Redis except under FailClosed, and under
// LocalShare the replicas together admit the limit, each its third.
func TestRedisKilledMidway(t *testing.T) {
	addr, srv := ownRedis(t)
	rs := startPiped(t, "killed", 3, "LIMIT_ADDR="+addr)
	for i, r := range rs {
		select {
		case <-r.ready:
		case <-r.done:
			t.Fatalf("replica %d ended before Redis was killed: %v\n%s", i, r.cmd.Wait(), r.stderr.String())
		case <-time.After(time.Minute):
			t.Fatalf("replica %d had no %d calls decided by Redis within a minute", i, killedReady)
		}
	}
	if err := srv.Process.Kill(); err != nil { // the replicas are still calling
		t.Fatal(err)
	}
	srv.Wait()
	wait(t, rs, time.Minute)
	share := killedRPM / 3
	localAdmitted := 0
	for i, r := range rs {
		for _, mode := range []Mode{FailOpen, FailClosed, LocalShare} {
			c := r.counts(t, mode)
			t.Logf("replica %d %v: %v", i, mode, c)
			// Every decision was reported: by Redis, or by the mode.
			if c["allowed"]+c["rejected"]+c["degraded"] != c["calls"] {
				t.Fatalf("replica %d %v: %v: a decision went unreported", i, mode, c)
			}
			switch {
			case c["allowed"] < killedReady || c["degraded"] < killedAfter:
				t.Fatalf("replica %d %v: %v: want at least %d allowed by Redis, then %d decided by the mode", i, mode, c, killedReady, killedAfter)
			case c["other"] != 0 || c["rejected"] != 0 || c["refused_limit"] != 0:
				t.Fatalf("replica %d %v: %v: calls failed for another cause than the degraded mode", i, mode, c)
			case c["breaker_open"] == 0:
				t.Fatalf("replica %d %v: the breaker guarding Redis never opened", i, mode)
			}
			refused := c["refused_degraded"]
			switch mode {
			case FailOpen:
				if refused != 0 || c["ok"] != c["calls"] {
					t.Fatalf("replica %d fail open: %v: a call failed", i, c)
				}
			case FailClosed:
				if refused != c["degraded"] || c["ok"] != c["allowed"] {
					t.Fatalf("replica %d fail closed: %v: want every call after the kill refused, and only those", i, c)
				}
			case LocalShare:
				admitted := c["degraded"] - c["degraded_refused"]
				if admitted != share || refused != c["degraded_refused"] || c["ok"] != c["allowed"]+admitted {
					t.Fatalf("replica %d local share: %v: want %d admitted after the kill, the rest refused by the share", i, c, share)
				}
				localAdmitted += admitted
			}
		}
	}
	if localAdmitted != killedRPM {
		t.Fatalf("local share: the replicas admitted %d after the kill, want the limit %d", localAdmitted, killedRPM)
	}
}

// killedReplica is one replica of TestRedisKilledMidway: a limiter per
// mode on the Redis at LIMIT_ADDR, each called from its own goroutine
// every 10 ms until Redis has decided killedReady calls of each (then it
// prints "ready"), and without pause once the mode decides, until the
// mode has decided killedAfter calls. It prints, per mode, "M mode
// name=count ...": the calls, how they ended, and the limiter's events.
func killedReplica() error {
	rdb := redistest.Client(os.Getenv("LIMIT_ADDR"))
	defer rdb.Close()
	modes := []Mode{FailOpen, FailClosed, LocalShare}
	counts := make([]map[string]int, len(modes))
	errs := make([]error, len(modes))
	var ready, done sync.WaitGroup
	ready.Add(len(modes))
	go func() { ready.Wait(); fmt.Println("ready") }()
	for i, mode := range modes {
		rec := &llmtest.Recorder{}
		l, err := New(Config{Redis: rdb, Prefix: "killed:", Name: mode.String(), RPM: killedRPM, Window: time.Minute,
			OnRedisError: mode, Replicas: 3, Timeout: 2 * time.Second, BreakerFailures: 3, Observer: rec})
		if err != nil {
			return err
		}
		done.Go(func() { counts[i], errs[i] = callUntilDegraded(l.Middleware()(&llmtest.Fake{}), mode, rec, ready.Done) })
	}
	done.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, mode := range modes {
		fmt.Print("M ", mode)
		for _, k := range slices.Sorted(maps.Keys(counts[i])) {
			fmt.Printf(" %s=%d", k, counts[i][k])
		}
		fmt.Println()
	}
	return nil
}

// callUntilDegraded calls c as killedReplica says, calling ready once
// Redis has decided killedReady calls, and returns the counts.
func callUntilDegraded(c llm.Client, mode Mode, rec *llmtest.Recorder, ready func()) (map[string]int, error) {
	n := map[string]int{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(time.Minute)
	signaled := false
	for countEvents(rec, llm.EventLimit, mode.String()) < killedAfter {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%v: the mode decided %d calls in a minute: was Redis killed?", mode, countEvents(rec, llm.EventLimit, mode.String()))
		}
		_, err := c.Generate(context.Background(), llm.Prompt("x"))
		n["calls"]++
		switch {
		case err == nil:
			n["ok"]++
		case llm.KindOf(err) == llm.KindRateLimited && storeFailure(err):
			n["refused_degraded"]++ // the mode refused it, Redis being down
		case llm.KindOf(err) == llm.KindRateLimited:
			n["refused_limit"]++ // Redis refused it: over the limit
		default:
			n["other"]++
			fmt.Fprintf(os.Stderr, "%v: call failed: %v\n", mode, err)
		}
		if !signaled && countEvents(rec, llm.EventLimit, "allowed") >= killedReady {
			signaled = true
			ready()
		}
		if countEvents(rec, llm.EventLimit, mode.String()) == 0 {
			<-tick.C // paced while Redis decides; as fast as it goes once the mode does
		}
	}
	n["allowed"], n["rejected"] = countEvents(rec, llm.EventLimit, "allowed"), countEvents(rec, llm.EventLimit, "rejected")
	for _, ev := range rec.Events() {
		switch {
		case ev.Kind == llm.EventLimit && ev.Reason == mode.String():
			n["degraded"]++
			if llm.KindOf(ev.Err) == llm.KindRateLimited {
				n["degraded_refused"]++ // a local-share refusal carries the refusal
			}
		case ev.Kind == llm.EventBreakerState && ev.State == llm.BreakerOpen:
			n["breaker_open"]++
		}
	}
	return n, nil
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
		rec := &llmtest.Recorder{}
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
		if n := countEvents(rec, llm.EventLimit, "fail_open"); n != 0 {
			t.Fatalf("tpm %d: %d decisions failed on Redis", tpm, n)
		}
	}
}
