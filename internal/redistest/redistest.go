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

// Client returns a client of the Redis at addr made for tests: short
// timeouts, no retries of its own, and contexts that bound its commands.
func Client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           200 * time.Millisecond,
		WriteTimeout:          200 * time.Millisecond,
		MaxRetries:            -1,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
	})
}

// Live returns a Client of the Redis at addr, checked with Require, and a
// key prefix of this test's own under scope; the client is closed and the
// keys under the prefix are deleted when the test ends.
func Live(tb testing.TB, addr, scope string) (*redis.Client, string) {
	tb.Helper()
	rdb := Client(addr)
	tb.Cleanup(func() { rdb.Close() })
	Require(tb, rdb, addr)
	prefix := fmt.Sprintf("llmkit-test:%s%s:%d:", scope, tb.Name(), time.Now().UnixNano())
	tb.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return rdb, prefix
}

// QuietLogs drops go-redis's own log lines (the dial failures and pool
// warnings tests cause on purpose) for the rest of the process. Call it
// once, from TestMain, before any client is made.
func QuietLogs() { redis.SetLogger(quiet{}) }

// quiet is a go-redis logger that writes nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
