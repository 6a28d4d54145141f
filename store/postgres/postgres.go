// Package postgres is the users-core storage backend for several nodes
// sharing one PostgreSQL database, through github.com/jackc/pgx/v5 and its
// connection pool (pgxpool). DB implements the same contracts as
// store/sqlite, with the same semantics, and passes store/storetest.
//
// # Database URL
//
// Open takes a PostgreSQL URL, postgres://user:password@host:port/dbname
// (postgresql:// works too), with libpq's query parameters such as
// sslmode, sslrootcert, connect_timeout (seconds to wait for a connection)
// and application_name. pgxpool reads its own parameters from the same
// query string:
//
//   - pool_max_conns: connections per node (default: the greater of 4 and
//     the number of CPUs)
//   - pool_min_conns, pool_min_idle_conns: connections kept open
//   - pool_max_conn_lifetime (default 1h), pool_max_conn_lifetime_jitter,
//     pool_max_conn_idle_time (default 30m): when connections are replaced
//   - pool_health_check_period (default 1m)
//
// Any other parameter is sent to the server as a run-time setting, for
// example statement_timeout=5s or lock_timeout=2s. Behind PgBouncer in
// transaction mode add default_query_exec_mode=exec (pgx otherwise caches
// prepared statements per connection).
//
// # Schema
//
// The tables and columns are store/sqlite's, migration for migration (the
// same numbers and names), in PostgreSQL's dialect: times are BIGINT Unix
// milliseconds, UTC, as in SQLite, so precision and comparisons are the
// same on both backends; flags are BOOLEAN, binary values BYTEA; text that
// is sorted or paged over uses the "C" collation, the byte order of
// SQLite's BINARY, whatever the database's default. One difference is
// PostgreSQL's: TEXT holds only valid UTF-8 without NUL bytes, so a write of
// such a value fails with identity.ErrInvalid where SQLite stores it.
//
// # Several nodes
//
// Where store/sqlite relies on its single writer, this package takes
// PostgreSQL locks, so that the guarantees hold across pools and nodes:
// migrations run under a session advisory lock (one node migrates, the
// others wait and find nothing to do); UpdateBindings takes a
// transaction advisory lock on its AoR (SELECT ... FOR UPDATE alone cannot
// lock bindings that do not exist yet); RecordFailure takes one on its key,
// so concurrent failures see distinct counts; AppendAudit takes one so that
// ids become visible in order. Compare-and-swaps (key set version, refresh
// token rotation) are UPDATEs whose WHERE clause PostgreSQL re-checks after
// waiting for a concurrent writer. Transactions run at READ COMMITTED; one
// that PostgreSQL aborts for a deadlock or a serialization failure is
// retried.
//
// It is not a general SQL helper: other packages never see the pool.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rvoip/users-core/identity"
)

// DB implements the storage contracts of identity, jwks and sip (and
// store.Store, which this package cannot name without an import cycle).
var (
	_ identity.UserStore   = (*DB)(nil)
	_ identity.SecretStore = (*DB)(nil)
)

// Advisory lock keys. The migration lock is a session lock on one bigint
// key; the others are transaction locks in the two-int4 form (a class and a
// hash), which PostgreSQL keeps apart from the bigint form.
const (
	migrationLockKey int64 = 0x7573_6572_735f_636f // "users_co"

	lockClassBindings int32 = 0x5543_0001 // key: hashtext(aor)
	lockClassAttempts int32 = 0x5543_0002 // key: hashtext(kind, value)
	lockClassAudit    int32 = 0x5543_0003 // key: 0
)

// maxAttempts bounds the retries of a transaction PostgreSQL aborted for a
// deadlock or a serialization failure.
const maxAttempts = 10

// DB is a users-core database on a PostgreSQL server. It is safe for
// concurrent use, also by several processes on several machines. Create it
// with Open and release it with Close.
type DB struct {
	// Now returns the current time. It stamps migration records and created
	// secrets; tests may replace it right after Open. Times of users come
	// from the caller, never from here.
	Now func() time.Time

	pool *pgxpool.Pool
	// counts is a small second pool whose sessions commit without waiting
	// for the WAL flush (synchronous_commit off), for UseNonceCount only.
	counts *pgxpool.Pool
	name   string // "database NAME on HOST:PORT", for messages
}

// nonceCountConns caps the connections of the nonce-count pool: each use
// holds one for a single statement that waits for no disk.
const nonceCountConns = 2

// Open connects to the database named by url (see the package comment for
// its parameters) and applies pending migrations. A database written by a
// newer users-core (a schema version above SchemaVersion) is refused with a
// *SchemaTooNewError and left untouched. The database itself must exist:
// Open creates tables, never databases.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cc := cfg.ConnConfig
	db := &DB{Now: time.Now, name: fmt.Sprintf("database %q on %s:%d", cc.Database, cc.Host, cc.Port)}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", db.name, err)
	}
	// The pool connects lazily: ping so that a wrong address or password
	// fails here, not on the first request.
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", db.name, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		var tooNew *SchemaTooNewError
		if errors.As(err, &tooNew) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: migrate %s: %w", db.name, err)
	}
	ncfg := cfg.Copy()
	ncfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	ncfg.MaxConns, ncfg.MinConns = min(cfg.MaxConns, nonceCountConns), 0
	if db.counts, err = pgxpool.NewWithConfig(ctx, ncfg); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", db.name, err)
	}
	return db, nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return identity.Internal("postgres.Ping", err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for those in use to
// be released.
func (db *DB) Close() error {
	db.counts.Close()
	db.pool.Close()
	return nil
}

// retry runs fn until it succeeds, fails with an error other than a
// deadlock or serialization failure, ctx ends, or maxAttempts runs failed.
// PostgreSQL aborts one transaction of a deadlock; running it again is the
// documented remedy. Waits between runs grow and are randomized, so that
// the transactions that collided do not collide again.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		wait := time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable reports whether err is PostgreSQL aborting a transaction that
// may succeed when run again.
func retryable(err error) bool {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	}
	return false
}

// inTx runs fn in a READ COMMITTED transaction and commits it when fn
// returns nil. An error from fn rolls the transaction back and is returned
// unchanged, so fn decides how to wrap database errors. A transaction
// aborted for a deadlock or serialization failure is run again, fn
// included.
func (db *DB) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return retry(ctx, func() error {
		tx, err := db.pool.Begin(ctx)
		if err != nil {
			return fail(op, err)
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fail(op, err)
		}
		return nil
	})
}

// exec runs one statement outside an explicit transaction, retried like
// inTx, and returns how many rows it affected.
func (db *DB) exec(ctx context.Context, op, query string, args ...any) (int64, error) {
	var n int64
	err := retry(ctx, func() error {
		tag, err := db.pool.Exec(ctx, query, args...)
		if err != nil {
			return fail(op, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// fail wraps a database error for op. Text PostgreSQL cannot store (invalid
// UTF-8, or a NUL byte, which SQLite keeps) is the caller's input at fault:
// it matches identity.ErrInvalid. Everything else is internal.
func fail(op string, err error) error {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		switch e.Code {
		case "22021", "22P05": // character_not_in_repertoire, untranslatable_character
			return &identity.Error{Op: op, Code: identity.CodeInvalid, Field: "text",
				Message: "a text value is not valid UTF-8 or contains a NUL byte", Err: err}
		}
	}
	return identity.Internal(op, err)
}

// pgError returns the PostgreSQL error in err's chain, nil when there is
// none.
func pgError(err error) *pgconn.PgError {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's answer to a
// duplicate value in a UNIQUE or PRIMARY KEY constraint.
func isUniqueViolation(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == "23505"
}

// isForeignKeyViolation reports whether err is PostgreSQL's answer to a
// reference to a missing row (here: a row for a user that does not exist).
func isForeignKeyViolation(err error) bool {
	e := pgError(err)
	return e != nil && e.Code == "23503"
}

// constraint returns the name of the constraint err violated, "" when err
// is not a constraint violation.
func constraint(err error) string {
	if e := pgError(err); e != nil {
		return e.ConstraintName
	}
	return ""
}

// millis converts t to the stored form: Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

// fromMillis converts a stored time back: millisecond precision, UTC.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// optMillis is the stored form of an optional time: NULL when zero.
func optMillis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := millis(t)
	return &ms
}

// optTime reads an optional time back: zero when NULL.
func optTime(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return fromMillis(*ms)
}

// nonNil returns b, or an empty slice when b is nil: pgx sends a nil
// []byte as NULL, which NOT NULL BYTEA columns refuse, and reads give empty
// values as non-nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// rowScanner is pgx.Row or pgx.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}
