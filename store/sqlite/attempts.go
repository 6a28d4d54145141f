package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
)

// DB persists brute-force counters and locks, so that they hold across
// restarts and across processes on one database file.
var _ identity.AttemptStore = (*DB)(nil)

// RecordFailure records a failure for key at at and returns the number of
// failures for key at or after since, this one included. The insert and
// the count are one write transaction: the single writer serializes
// concurrent failures, so each call sees a distinct count.
func (db *DB) RecordFailure(ctx context.Context, key identity.AttemptKey, at, since time.Time) (int, error) {
	const op = "sqlite.RecordFailure"
	var n int
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_failures (kind, value, at) VALUES (?, ?, ?)`,
			string(key.Kind), key.Value, millis(at)); err != nil {
			return storeErr(op, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM auth_failures WHERE kind = ? AND value = ? AND at >= ?`,
			string(key.Kind), key.Value, millis(since)).Scan(&n); err != nil {
			return storeErr(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ClearFailures deletes the recorded failures of key. A lock on key stays.
func (db *DB) ClearFailures(ctx context.Context, key identity.AttemptKey) error {
	const op = "sqlite.ClearFailures"
	// Every successful login and REGISTER clears its user's failures, and
	// almost always there are none: look on the reader pool first, so the
	// common case costs no write transaction (and no fsync) on the single
	// writer. A failure recorded between the look and a skipped delete is
	// one that came after this success, so keeping it is right.
	var any int
	err := db.failuresExist.QueryRowContext(ctx, string(key.Kind), key.Value).Scan(&any)
	if err != nil {
		return storeErr(op, err)
	}
	if any == 0 {
		return nil
	}
	if _, err := db.w.ExecContext(ctx, `DELETE FROM auth_failures WHERE kind = ? AND value = ?`,
		string(key.Kind), key.Value); err != nil {
		return storeErr(op, err)
	}
	return nil
}

// UsersWithFailures returns the users (AttemptUser values) that have at
// least one recorded failure, for the Regulator's in-memory set. It reads
// the user rows of auth_failures, which hold only the failures of the last
// lock period or so (PruneAttempts deletes older ones, ClearFailures those
// of a user who succeeded).
func (db *DB) UsersWithFailures(ctx context.Context) ([]string, error) {
	const op = "sqlite.UsersWithFailures"
	rows, err := db.stamps.usersWithFailures.QueryContext(ctx)
	if err != nil {
		return nil, storeErr(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, storeErr(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(op, err)
	}
	return out, nil
}

// Lock locks key until until (millisecond precision). An existing lock
// that ends later is kept: the stored end is the later of the two.
func (db *DB) Lock(ctx context.Context, key identity.AttemptKey, until time.Time) error {
	const op = "sqlite.Lock"
	if _, err := db.w.ExecContext(ctx, `INSERT INTO auth_locks (kind, value, until) VALUES (?, ?, ?)
	ON CONFLICT (kind, value) DO UPDATE SET until = max(until, excluded.until)`,
		string(key.Kind), key.Value, millis(until)); err != nil {
		return storeErr(op, err)
	}
	return nil
}

// LockedUntil returns the latest end among the locks of keys that end
// after now, and the zero time when none does. It is one query on the
// reader pool, looking each key up by primary key.
func (db *DB) LockedUntil(ctx context.Context, keys []identity.AttemptKey, now time.Time) (time.Time, error) {
	const op = "sqlite.LockedUntil"
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	var q strings.Builder
	q.WriteString(`SELECT max(until) FROM auth_locks WHERE until > ? AND (kind, value) IN (VALUES `)
	args := make([]any, 0, 1+2*len(keys))
	args = append(args, millis(now))
	for i, k := range keys {
		if i > 0 {
			q.WriteString(`, `)
		}
		q.WriteString(`(?, ?)`)
		args = append(args, string(k.Kind), k.Value)
	}
	q.WriteString(`)`)
	var until sql.NullInt64
	if err := db.r.QueryRowContext(ctx, q.String(), args...).Scan(&until); err != nil {
		return time.Time{}, storeErr(op, err)
	}
	return optTime(until), nil
}

// PruneAttempts deletes, in one write transaction, the failures recorded
// before before and the locks that ended before before, and returns how
// many rows went.
func (db *DB) PruneAttempts(ctx context.Context, before time.Time) (int, error) {
	const op = "sqlite.PruneAttempts"
	var total int64
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		for _, query := range []string{
			`DELETE FROM auth_failures WHERE at < ?`,
			`DELETE FROM auth_locks WHERE until < ?`,
		} {
			res, err := tx.ExecContext(ctx, query, millis(before))
			if err != nil {
				return storeErr(op, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return storeErr(op, err)
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(total), nil
}
