package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
)

// DB persists brute-force counters and locks, so that they hold across
// restarts and across every node on the database.
var _ identity.AttemptStore = (*DB)(nil)

// RecordFailure records a failure for key at at and returns the number of
// failures for key at or after since, this one included. The lock, the
// insert and the count go to the server as one batch, which runs as one
// implicit transaction: the transaction advisory lock on the key (held
// until it commits) serializes concurrent failures of one key on every
// node, and the count, a statement of its own, sees every earlier commit,
// so each call sees a distinct count.
func (db *DB) RecordFailure(ctx context.Context, key identity.AttemptKey, at, since time.Time) (int, error) {
	const op = "postgres.RecordFailure"
	var n int
	err := retry(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\x1f' || $3))`, lockClassAttempts, string(key.Kind), key.Value)
		b.Queue(`INSERT INTO auth_failures (kind, value, at) VALUES ($1, $2, $3)`, string(key.Kind), key.Value, millis(at))
		b.Queue(`SELECT count(*) FROM auth_failures WHERE kind = $1 AND value = $2 AND at >= $3`,
			string(key.Kind), key.Value, millis(since)).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
		if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
			return fail(op, err)
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
	const op = "postgres.ClearFailures"
	// Every successful login and REGISTER clears its user's failures, and
	// almost always there are none: look first, so that the common case
	// writes nothing. A failure recorded between the look and a skipped
	// delete is one that came after this success, so keeping it is right.
	var exists bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth_failures WHERE kind = $1 AND value = $2)`,
		string(key.Kind), key.Value).Scan(&exists)
	if err != nil {
		return fail(op, err)
	}
	if !exists {
		return nil
	}
	_, err = db.exec(ctx, op, `DELETE FROM auth_failures WHERE kind = $1 AND value = $2`, string(key.Kind), key.Value)
	return err
}

// UsersWithFailures returns the users (AttemptUser values) that have at
// least one recorded failure, for the Regulator's in-memory set. It reads
// the user rows of auth_failures, which hold only the failures of the last
// lock period or so (PruneAttempts deletes older ones, ClearFailures those
// of a user who succeeded).
func (db *DB) UsersWithFailures(ctx context.Context) ([]string, error) {
	const op = "postgres.UsersWithFailures"
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT value FROM auth_failures WHERE kind = 'user'`)
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fail(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	return out, nil
}

// Lock locks key until until (millisecond precision). An existing lock
// that ends later is kept: the stored end is the later of the two, in one
// statement.
func (db *DB) Lock(ctx context.Context, key identity.AttemptKey, until time.Time) error {
	_, err := db.exec(ctx, "postgres.Lock", `INSERT INTO auth_locks (kind, value, until) VALUES ($1, $2, $3)
	ON CONFLICT (kind, value) DO UPDATE SET until = greatest(auth_locks.until, excluded.until)`,
		string(key.Kind), key.Value, millis(until))
	return err
}

// LockedUntil returns the latest end among the locks of keys that end
// after now, and the zero time when none does. It is one query, looking
// each key up by primary key.
func (db *DB) LockedUntil(ctx context.Context, keys []identity.AttemptKey, now time.Time) (time.Time, error) {
	const op = "postgres.LockedUntil"
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	kinds := make([]string, len(keys))
	values := make([]string, len(keys))
	for i, k := range keys {
		kinds[i], values[i] = string(k.Kind), k.Value
	}
	var until *int64
	if err := db.pool.QueryRow(ctx, `SELECT max(l.until) FROM auth_locks l
	JOIN unnest($2::text[], $3::text[]) AS k (kind, value) ON l.kind = k.kind AND l.value = k.value
	WHERE l.until > $1`, millis(now), kinds, values).Scan(&until); err != nil {
		return time.Time{}, fail(op, err)
	}
	return optTime(until), nil
}

// PruneAttempts deletes, in one transaction, the failures recorded before
// before and the locks that ended before before, and returns how many rows
// went.
func (db *DB) PruneAttempts(ctx context.Context, before time.Time) (int, error) {
	const op = "postgres.PruneAttempts"
	var total int64
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		total = 0
		for _, query := range []string{
			`DELETE FROM auth_failures WHERE at < $1`,
			`DELETE FROM auth_locks WHERE until < $1`,
		} {
			tag, err := tx.Exec(ctx, query, millis(before))
			if err != nil {
				return fail(op, err)
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(total), nil
}
