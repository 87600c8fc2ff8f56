package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // the pure-Go SQLite behind riversqlite
)

// Open connects to the database at dsn, creates or updates River's tables
// (rivermigrate, idempotent), and returns a Queue on it. dsn is a
// postgres:// or postgresql:// URL for PostgreSQL, where several worker
// processes share the queue; anything else is an SQLite file path (with
// or without a sqlite:// prefix), for one machine. Close the Queue to
// close the pool.
func Open(ctx context.Context, dsn string, cfg Config) (*Queue, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("queue: postgres: %w", redactURL(err, dsn))
		}
		q, err := open(ctx, riverpgxv5.New(pool), cfg)
		if err != nil {
			pool.Close()
			return nil, redactURL(err, dsn)
		}
		q.closeDB = pool.Close
		return q, nil
	}
	db, err := OpenSQLite(strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		return nil, err
	}
	q, err := open(ctx, riversqlite.New(db), cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	q.closeDB = func() { db.Close() }
	return q, nil
}

// OpenSQLite opens the SQLite file at path the way River's SQLite driver
// needs it: one connection per process (SQLite runs one writer at a time),
// a busy timeout so that processes sharing the file wait for each other
// rather than fail, write-ahead logging so readers do not block the
// writer, and transactions that take the write lock when they begin.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("queue: empty SQLite path")
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func open[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config) (*Queue, error) {
	if err := Migrate(ctx, driver, cfg.Schema); err != nil {
		return nil, err
	}
	return New(driver, cfg)
}

// Migrate creates or updates River's tables in schema (empty: the
// search_path, or SQLite's main database).
func Migrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], schema string) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: discard})
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("queue: migrate: %w", err)
	}
	return nil
}

// redactURL keeps a password in dsn out of err's text.
func redactURL(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil || u.User == nil {
		return err
	}
	if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
		return errors.New(strings.ReplaceAll(err.Error(), p, "xxxxx"))
	}
	return err
}
