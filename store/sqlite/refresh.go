package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/rvoip/users-core/identity"
	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DB persists refresh token families.
var _ identity.RefreshStore = (*DB)(nil)

// refreshColumns selects a refresh_tokens row in the order scanRefreshToken
// reads it, and names the columns insertRefreshToken writes.
const refreshColumns = `id, hash, family_id, parent_id, user_id, created_at, last_used_at,
	idle_expires_at, absolute_expires_at, rotated_at, successor_id, successor_sealed, revoked_at`

// scanRefreshToken reads a row selected with refreshColumns.
func scanRefreshToken(s rowScanner) (*identity.RefreshToken, error) {
	var (
		t                                 identity.RefreshToken
		created, lastUsed, idle, absolute int64
		rotated, revoked                  sql.NullInt64
		successorID                       sql.NullString
		hash, successorSealed             []byte
	)
	if err := s.Scan(&t.ID, &hash, &t.FamilyID, &t.ParentID, &t.UserID, &created, &lastUsed,
		&idle, &absolute, &rotated, &successorID, &successorSealed, &revoked); err != nil {
		return nil, err
	}
	t.Hash = hash
	t.CreatedAt, t.LastUsedAt = fromMillis(created), fromMillis(lastUsed)
	t.IdleExpiresAt, t.AbsoluteExpiresAt = fromMillis(idle), fromMillis(absolute)
	t.RotatedAt, t.RevokedAt = optTime(rotated), optTime(revoked)
	t.SuccessorID = successorID.String
	t.SuccessorSealed = successorSealed // nil when NULL
	return &t, nil
}

// refreshStmts are the refresh-token writes of the committer, prepared
// once on the writer connection: parsing costs about as much as running
// them, and they run on the one goroutine every grouped write waits for.
type refreshStmts struct {
	insert, rotate, exists *sql.Stmt
}

func (s *refreshStmts) prepare(ctx context.Context, w *sql.DB) error {
	var err error
	if s.insert, err = w.PrepareContext(ctx, `INSERT INTO refresh_tokens (`+refreshColumns+`)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return err
	}
	if s.rotate, err = w.PrepareContext(ctx, `UPDATE refresh_tokens SET rotated_at = ?, successor_id = ?, successor_sealed = ?
	WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL`); err != nil {
		return err
	}
	s.exists, err = w.PrepareContext(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE id = ?)`)
	return err
}

func (s *refreshStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insert, s.rotate, s.exists} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// checkRefreshToken refuses a token record that cannot be stored, before
// it is queued for the writer.
func checkRefreshToken(op string, t *identity.RefreshToken) error {
	if t == nil {
		return identity.Invalid(op, "token", "refresh token is nil")
	}
	if t.ID == "" {
		return identity.Invalid(op, "id", "refresh token id is not set")
	}
	if len(t.Hash) == 0 {
		return identity.Invalid(op, "hash", "refresh token hash is not set")
	}
	if t.FamilyID == "" {
		return identity.Invalid(op, "family_id", "refresh token family is not set")
	}
	return nil
}

// insertRefreshToken inserts t, checked by checkRefreshToken, with tx. A
// taken ID or hash matches identity.ErrConflict, a missing user
// identity.ErrNotFound.
func (s *refreshStmts) insertRefreshToken(ctx context.Context, tx *sql.Tx, op string, t *identity.RefreshToken) error {
	var successorID any
	if t.SuccessorID != "" {
		successorID = t.SuccessorID
	}
	_, err := tx.StmtContext(ctx, s.insert).ExecContext(ctx,
		t.ID, t.Hash, t.FamilyID, t.ParentID, t.UserID, millis(t.CreatedAt), millis(t.LastUsedAt),
		millis(t.IdleExpiresAt), millis(t.AbsoluteExpiresAt), optMillis(t.RotatedAt), successorID,
		t.SuccessorSealed, optMillis(t.RevokedAt))
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return identity.E(op, identity.CodeConflict, "refresh token id or hash already exists")
	case isForeignKeyViolation(err):
		return identity.E(op, identity.CodeNotFound, "user not found")
	}
	return storeErr(op, err)
}

// isForeignKeyViolation reports whether err is SQLite's answer to a
// reference to a missing row (here: a token for a user that does not
// exist).
func isForeignKeyViolation(err error) bool {
	var e *moderncsqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// CreateRefreshToken inserts t, the first token of a family. A taken ID or
// hash matches identity.ErrConflict; a missing user identity.ErrNotFound.
//
// The insert is group-committed with other writes (commit.go) and
// CreateRefreshToken returns only after that commit, so a token it
// acknowledged is durable. When ctx ends while the insert is still
// queued, it is withdrawn and never applied.
func (db *DB) CreateRefreshToken(ctx context.Context, t *identity.RefreshToken) error {
	const op = "sqlite.CreateRefreshToken"
	if err := checkRefreshToken(op, t); err != nil {
		return err
	}
	stmts := &db.commits.refresh
	return db.commits.submit(ctx, op, func(ctx context.Context, tx *sql.Tx, protect func() error) error {
		if err := protect(); err != nil {
			return storeErr(op, err)
		}
		return stmts.insertRefreshToken(ctx, tx, op, t)
	})
}

// RefreshTokenByHash returns the token whose Hash is hash, whatever its
// state (rotated, revoked or expired tokens included: the caller decides),
// or an error matching identity.ErrNotFound.
func (db *DB) RefreshTokenByHash(ctx context.Context, hash []byte) (*identity.RefreshToken, error) {
	const op = "sqlite.RefreshTokenByHash"
	t, err := scanRefreshToken(db.refreshByHash.QueryRowContext(ctx, nonNil(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "refresh token not found")
	}
	if err != nil {
		return nil, storeErr(op, err)
	}
	return t, nil
}

// RotateRefreshToken marks the token oldID rotated at rotatedAt, recording
// next.ID and successorSealed, and inserts next, in one write transaction.
// The update is a compare-and-swap on "not rotated and not revoked": when
// it changes no row the call fails, changing nothing, with an error
// matching identity.ErrConflict, or identity.ErrNotFound when no token has
// id oldID. The single writer serializes concurrent rotations, so of
// several with one token exactly one succeeds. next is stored as given; a
// taken ID or hash fails with identity.ErrConflict and undoes the rotation.
//
// Rotations are group-committed with other writes (commit.go): the
// rotations waiting when the writer becomes free share one transaction,
// each under its own savepoint and applied in turn, so one fsync
// acknowledges them all while a rotation that fails changes nothing.
// RotateRefreshToken returns only after that commit, so a successor it
// acknowledged is durable. When ctx ends while the rotation is still
// queued, it is withdrawn and never applied.
func (db *DB) RotateRefreshToken(ctx context.Context, oldID string, rotatedAt time.Time, successorSealed []byte, next *identity.RefreshToken) error {
	const op = "sqlite.RotateRefreshToken"
	if next == nil {
		return identity.Invalid(op, "next", "successor token is nil")
	}
	if err := checkRefreshToken(op, next); err != nil {
		return err
	}
	stmts := &db.commits.refresh
	return db.commits.submit(ctx, op, func(ctx context.Context, tx *sql.Tx, protect func() error) error {
		if err := protect(); err != nil {
			return storeErr(op, err)
		}
		res, err := tx.StmtContext(ctx, stmts.rotate).ExecContext(ctx, millis(rotatedAt), next.ID, successorSealed, oldID)
		if err != nil {
			return storeErr(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return storeErr(op, err)
		}
		if n == 0 {
			var exists bool
			if err := tx.StmtContext(ctx, stmts.exists).QueryRowContext(ctx, oldID).Scan(&exists); err != nil {
				return storeErr(op, err)
			}
			if !exists {
				return identity.E(op, identity.CodeNotFound, "refresh token not found")
			}
			return identity.E(op, identity.CodeConflict, "refresh token was already rotated or revoked")
		}
		return stmts.insertRefreshToken(ctx, tx, op, next)
	})
}

// RevokeRefreshFamily sets RevokedAt to at on every token of the family not
// revoked yet. Revoking an unknown or already revoked family changes
// nothing and is not an error.
func (db *DB) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error {
	const op = "sqlite.RevokeRefreshFamily"
	if _, err := db.w.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`,
		millis(at), familyID); err != nil {
		return storeErr(op, err)
	}
	return nil
}

// RevokeUserRefreshTokens sets RevokedAt to at on every token of the user
// not revoked yet, in every family, and returns how many families had such
// tokens (0 for an unknown user, not an error).
func (db *DB) RevokeUserRefreshTokens(ctx context.Context, userID string, at time.Time) (int, error) {
	const op = "sqlite.RevokeUserRefreshTokens"
	var families int
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL`,
			userID).Scan(&families); err != nil {
			return storeErr(op, err)
		}
		if families == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`,
			millis(at), userID); err != nil {
			return storeErr(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return families, nil
}

// PruneRefreshTokens, in one write transaction, deletes every family one of
// whose tokens expired (AbsoluteExpiresAt) or was revoked before before, or
// all of whose tokens passed their idle expiry before before,
// and clears SuccessorSealed of tokens rotated before graceEnd. It returns
// the number of tokens deleted.
func (db *DB) PruneRefreshTokens(ctx context.Context, before, graceEnd time.Time) (int, error) {
	const op = "sqlite.PruneRefreshTokens"
	var deleted int64
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE family_id IN (
	SELECT family_id FROM refresh_tokens WHERE absolute_expires_at < ?1 OR revoked_at < ?1
	UNION SELECT family_id FROM refresh_tokens GROUP BY family_id HAVING MAX(idle_expires_at) < ?1)`, millis(before))
		if err != nil {
			return storeErr(op, err)
		}
		if deleted, err = res.RowsAffected(); err != nil {
			return storeErr(op, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET successor_sealed = NULL
	WHERE successor_sealed IS NOT NULL AND rotated_at < ?`, millis(graceEnd)); err != nil {
			return storeErr(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(deleted), nil
}
