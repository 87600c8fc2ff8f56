package queue_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/llmkit/llmkit/queue"
)

// backend is a fresh, migrated database for one test: an SQLite file in a
// temporary directory, or a schema of its own in PostgreSQL, dropped at
// the end.
type backend struct {
	Name   string
	DSN    string
	Schema string
}

func sqliteBackend(t *testing.T) backend {
	return backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "queue.db")}
}

func postgresURL() string {
	if u := os.Getenv("LLMKIT_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// postgresBackend creates a schema named for the test; without
// PostgreSQL the test fails under CI and is skipped elsewhere (the
// returned backend then has an empty DSN: see run).
func postgresBackend(t *testing.T) backend { return postgresBenchBackend(t) }

// postgresBenchBackend is postgresBackend for tests and benchmarks.
func postgresBenchBackend(t testing.TB) backend {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at LLMKIT_POSTGRES_URL is required under CI: %v", err)
		}
		return backend{Name: "postgres"}
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "llm_queue_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), postgresURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return backend{Name: "postgres", DSN: postgresURL(), Schema: schema}
}

// run runs f once per backend, as parallel subtests.
func run(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			var be backend
			if b == "sqlite" {
				be = sqliteBackend(t)
			} else if be = postgresBackend(t); be.DSN == "" {
				t.Skip("no PostgreSQL at LLMKIT_POSTGRES_URL (set CI to make this a failure)")
			}
			f(t, be)
		})
	}
}

// open opens an insert-only (cfg.Client nil) or working Queue on b,
// closed at the end of the test.
func open(t *testing.T, b backend, cfg queue.Config) *queue.Queue {
	t.Helper()
	cfg.Schema = b.Schema
	q, err := queue.Open(context.Background(), b.DSN, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}
