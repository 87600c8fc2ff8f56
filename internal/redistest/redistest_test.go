package redistest

import (
	"fmt"
	"net"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
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
