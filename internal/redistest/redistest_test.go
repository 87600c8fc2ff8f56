package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder stands in for a test to see whether Require fails or skips it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...) }

func TestRequireFailsInCISkipsElsewhere(t *testing.T) {
	addr := deadAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()

	t.Setenv("CI", "true")
	r := &recorder{}
	Require(r, rdb, addr)
	if r.fatal == "" || r.skip != "" || !strings.Contains(r.fatal, "LLMKIT_REDIS_ADDR") {
		t.Fatalf("under CI: fatal %q skip %q, want a failure that says how to point at a Redis", r.fatal, r.skip)
	}
	t.Setenv("CI", "")
	r = &recorder{}
	Require(r, rdb, addr)
	if r.skip == "" || r.fatal != "" {
		t.Fatalf("outside CI: fatal %q skip %q, want a skip", r.fatal, r.skip)
	}
}

// quietChild names the env variable that makes this test binary, started
// again by TestQuietLogs, dial a dead address: "quiet" after QuietLogs,
// "loud" without.
const quietChild = "LLMKIT_REDISTEST_QUIET_CHILD"

// go-redis logs a failed dial to stderr; after QuietLogs it does not. Each
// case runs in a process of its own, as the logger is process-wide.
func TestQuietLogs(t *testing.T) {
	if mode := os.Getenv(quietChild); mode != "" {
		if mode == "quiet" {
			QuietLogs()
		}
		rdb := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1})
		defer rdb.Close()
		if err := rdb.Ping(context.Background()).Err(); err == nil {
			t.Fatal("Ping of an address nothing listens on succeeded")
		}
		return
	}
	for _, mode := range []string{"loud", "quiet"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestQuietLogs$", "-test.count=1")
		cmd.Env = append(os.Environ(), quietChild+"="+mode)
		out, err := cmd.CombinedOutput() // waits for the child to exit
		if err != nil {
			t.Fatalf("%s child: %v\n%s", mode, err, out)
		}
		logged := strings.Contains(string(out), "failed to dial")
		if logged != (mode == "loud") {
			t.Fatalf("%s child: go-redis logged the failed dial: %v, want %v\n%s", mode, logged, mode == "loud", out)
		}
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
