// Package redistest holds the one rule for tests that need Redis: they run
// against a real one (cache/redis.Addr: $LLMKIT_REDIS_ADDR, default
// 127.0.0.1:6379), and when it cannot be reached they fail when the CI
// environment variable is set (CI must run every Redis test) and are
// skipped elsewhere, with a message saying how to point them at a Redis.
// QuietLogs keeps go-redis's own log lines out of test output.
package redistest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Require checks that the Redis at addr answers PING through rdb, failing
// the test under CI and skipping it elsewhere when it does not.
func Require(tb testing.TB, rdb redis.UniversalClient, addr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("Redis at %s (set LLMKIT_REDIS_ADDR to change it) is not reachable: %v", addr, err)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
			return
		}
		tb.Skip(msg)
	}
}

// QuietLogs drops go-redis's own log lines (the dial failures and pool
// warnings tests cause on purpose) for the rest of the process. Call it
// once, from TestMain, before any client is made.
func QuietLogs() { redis.SetLogger(quiet{}) }

// quiet is a go-redis logger that writes nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
