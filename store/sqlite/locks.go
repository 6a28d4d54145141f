package sqlite

import (
	"context"
	"time"

	"github.com/rvoip/users-core/identity"
)

// ActiveLocks returns every lock that ends after now, for the Regulator's
// in-memory copy. It reads the whole auth_locks table, which holds only the
// locks of the last lock period or so (PruneAttempts deletes ended ones).
func (db *DB) ActiveLocks(ctx context.Context, now time.Time) ([]identity.AttemptLock, error) {
	const op = "sqlite.ActiveLocks"
	rows, err := db.stamps.activeLocks.QueryContext(ctx, millis(now))
	if err != nil {
		return nil, storeErr(op, err)
	}
	defer rows.Close()
	var out []identity.AttemptLock
	for rows.Next() {
		var (
			kind, value string
			until       int64
		)
		if err := rows.Scan(&kind, &value, &until); err != nil {
			return nil, storeErr(op, err)
		}
		out = append(out, identity.AttemptLock{
			Key:   identity.AttemptKey{Kind: identity.AttemptKind(kind), Value: value},
			Until: fromMillis(until),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(op, err)
	}
	return out, nil
}
