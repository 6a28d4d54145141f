package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
)

// DB keeps change stamps (migrations 0007 and 0009), so identity can keep
// copies of users, locks and the users with failures in memory and learn
// cheaply when they go stale.
var (
	_ identity.ChangeStamper = (*DB)(nil)
	_ identity.LockLister    = (*DB)(nil)
	_ identity.FailureLister = (*DB)(nil)
)

// ChangeStamp returns the change stamp called name (identity.StampUsers,
// identity.StampLocks or identity.StampFailures). Triggers bump the stamps
// in the transaction of every change they cover, so changes made by other
// nodes, or by anything else writing the tables, count too. An unknown name
// matches identity.ErrInvalid.
func (db *DB) ChangeStamp(ctx context.Context, name string) (int64, error) {
	const op = "postgres.ChangeStamp"
	var (
		v   int64
		err error
	)
	if name == identity.StampFailures {
		// 64 counters, so that failures do not queue on one row (migration
		// 0009); their sum changes whenever one of them does.
		err = db.pool.QueryRow(ctx, `SELECT sum(stamp)::bigint FROM change_stamps WHERE starts_with(name, 'failures.')`).Scan(&v)
	} else {
		err = db.pool.QueryRow(ctx, `SELECT stamp FROM change_stamps WHERE name = $1`, name).Scan(&v)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, identity.Invalid(op, "name", "no change stamp called %q", name)
	}
	if err != nil {
		return 0, fail(op, err)
	}
	return v, nil
}

// ActiveLocks returns every lock that ends after now, for the Regulator's
// in-memory copy. It reads the whole auth_locks table, which holds only the
// locks of the last lock period or so (PruneAttempts deletes ended ones).
func (db *DB) ActiveLocks(ctx context.Context, now time.Time) ([]identity.AttemptLock, error) {
	const op = "postgres.ActiveLocks"
	rows, err := db.pool.Query(ctx, `SELECT kind, value, until FROM auth_locks WHERE until > $1`, millis(now))
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	var out []identity.AttemptLock
	for rows.Next() {
		var (
			kind, value string
			until       int64
		)
		if err := rows.Scan(&kind, &value, &until); err != nil {
			return nil, fail(op, err)
		}
		out = append(out, identity.AttemptLock{
			Key:   identity.AttemptKey{Kind: identity.AttemptKind(kind), Value: value},
			Until: fromMillis(until),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	return out, nil
}
