package sqlite

import (
	"context"
	"database/sql"
	"errors"

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

// stampStmts are the statements of the change stamps, of ActiveLocks
// (locks.go) and of UsersWithFailures (attempts.go), prepared once on the
// reader pool: readers run them several times a second.
type stampStmts struct {
	stamp, activeLocks, usersWithFailures *sql.Stmt
}

func (s *stampStmts) prepare(ctx context.Context, r *sql.DB) error {
	var err error
	if s.stamp, err = r.PrepareContext(ctx, `SELECT stamp FROM change_stamps WHERE name = ?`); err != nil {
		return err
	}
	if s.activeLocks, err = r.PrepareContext(ctx, `SELECT kind, value, until FROM auth_locks WHERE until > ?`); err != nil {
		return err
	}
	// DISTINCT walks auth_failures_key_at in order, so it needs no sort.
	s.usersWithFailures, err = r.PrepareContext(ctx, `SELECT DISTINCT value FROM auth_failures WHERE kind = 'user'`)
	return err
}

func (s *stampStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.stamp, s.activeLocks, s.usersWithFailures} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// ChangeStamp returns the change stamp called name (identity.StampUsers,
// identity.StampLocks or identity.StampFailures). Triggers bump the stamps in the transaction of every
// change they cover, so changes made by other processes on the same file
// count too. An unknown name matches identity.ErrInvalid.
func (db *DB) ChangeStamp(ctx context.Context, name string) (int64, error) {
	const op = "sqlite.ChangeStamp"
	var v int64
	err := db.stamps.stamp.QueryRowContext(ctx, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, identity.Invalid(op, "name", "no change stamp called %q", name)
	}
	if err != nil {
		return 0, storeErr(op, err)
	}
	return v, nil
}
