package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
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
		rotated, revoked                  *int64
		successorID                       *string
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
	if successorID != nil {
		t.SuccessorID = *successorID
	}
	t.SuccessorSealed = successorSealed // nil when NULL
	return &t, nil
}

// insertRefreshToken inserts t with tx. A taken ID or hash matches
// identity.ErrConflict, a missing user identity.ErrNotFound.
func insertRefreshToken(ctx context.Context, tx pgx.Tx, op string, t *identity.RefreshToken) error {
	if err := checkRefreshToken(op, t); err != nil {
		return err
	}
	var successorID *string
	if t.SuccessorID != "" {
		successorID = &t.SuccessorID
	}
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (`+refreshColumns+`)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
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
	return fail(op, err)
}

// checkRefreshToken refuses a token that cannot be stored.
func checkRefreshToken(op string, t *identity.RefreshToken) error {
	switch {
	case t == nil:
		return identity.Invalid(op, "token", "refresh token is nil")
	case t.ID == "":
		return identity.Invalid(op, "id", "refresh token id is not set")
	case len(t.Hash) == 0:
		return identity.Invalid(op, "hash", "refresh token hash is not set")
	case t.FamilyID == "":
		return identity.Invalid(op, "family_id", "refresh token family is not set")
	}
	return nil
}

// CreateRefreshToken inserts t, the first token of a family. A taken ID or
// hash matches identity.ErrConflict; a missing user identity.ErrNotFound.
func (db *DB) CreateRefreshToken(ctx context.Context, t *identity.RefreshToken) error {
	const op = "postgres.CreateRefreshToken"
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		return insertRefreshToken(ctx, tx, op, t)
	})
}

// RefreshTokenByHash returns the token whose Hash is hash, whatever its
// state (rotated, revoked or expired tokens included: the caller decides),
// or an error matching identity.ErrNotFound.
func (db *DB) RefreshTokenByHash(ctx context.Context, hash []byte) (*identity.RefreshToken, error) {
	const op = "postgres.RefreshTokenByHash"
	t, err := scanRefreshToken(db.pool.QueryRow(ctx, `SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = $1`, nonNil(hash)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "refresh token not found")
	}
	if err != nil {
		return nil, fail(op, err)
	}
	return t, nil
}

// RotateRefreshToken marks the token oldID rotated at rotatedAt, recording
// next.ID and successorSealed, and inserts next, in one transaction. The
// update is a compare-and-swap on "not rotated and not revoked": a
// concurrent rotation of the same token, on any node, waits for this one's
// row lock and then re-checks the condition on the committed row, so of
// several rotations of one token exactly one succeeds. When the update
// changes no row the call fails, changing nothing, with an error matching
// identity.ErrConflict, or identity.ErrNotFound when no token has id oldID.
// next is stored as given; a taken ID or hash fails with
// identity.ErrConflict and undoes the rotation.
func (db *DB) RotateRefreshToken(ctx context.Context, oldID string, rotatedAt time.Time, successorSealed []byte, next *identity.RefreshToken) error {
	const op = "postgres.RotateRefreshToken"
	if next == nil {
		return identity.Invalid(op, "next", "successor token is nil")
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET rotated_at = $1, successor_id = $2, successor_sealed = $3
	WHERE id = $4 AND rotated_at IS NULL AND revoked_at IS NULL`,
			millis(rotatedAt), next.ID, successorSealed, oldID)
		if err != nil {
			return fail(op, err)
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE id = $1)`, oldID).Scan(&exists); err != nil {
				return fail(op, err)
			}
			if !exists {
				return identity.E(op, identity.CodeNotFound, "refresh token not found")
			}
			return identity.E(op, identity.CodeConflict, "refresh token was already rotated or revoked")
		}
		return insertRefreshToken(ctx, tx, op, next)
	})
}

// RevokeRefreshFamily sets RevokedAt to at on every token of the family not
// revoked yet. Revoking an unknown or already revoked family changes
// nothing and is not an error.
func (db *DB) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error {
	_, err := db.exec(ctx, "postgres.RevokeRefreshFamily",
		`UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`, millis(at), familyID)
	return err
}

// RevokeUserRefreshTokens sets RevokedAt to at on every token of the user
// not revoked yet, in every family, and returns how many families had such
// tokens (0 for an unknown user, not an error). The update and the count
// are one statement: the count is of the rows this call revoked.
func (db *DB) RevokeUserRefreshTokens(ctx context.Context, userID string, at time.Time) (int, error) {
	const op = "postgres.RevokeUserRefreshTokens"
	var families int
	err := retry(ctx, func() error {
		err := db.pool.QueryRow(ctx, `WITH revoked AS (
	UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING family_id)
	SELECT count(DISTINCT family_id) FROM revoked`, millis(at), userID).Scan(&families)
		if err != nil {
			return fail(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return families, nil
}

// PruneRefreshTokens, in one transaction, deletes every family one of
// whose tokens expired (AbsoluteExpiresAt) or was revoked before before, or
// all of whose tokens passed their idle expiry before before, and clears
// SuccessorSealed of tokens rotated before graceEnd. It returns the number
// of tokens deleted.
func (db *DB) PruneRefreshTokens(ctx context.Context, before, graceEnd time.Time) (int, error) {
	const op = "postgres.PruneRefreshTokens"
	var deleted int64
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE family_id IN (
	SELECT family_id FROM refresh_tokens WHERE absolute_expires_at < $1 OR revoked_at < $1
	UNION SELECT family_id FROM refresh_tokens GROUP BY family_id HAVING max(idle_expires_at) < $1)`, millis(before))
		if err != nil {
			return fail(op, err)
		}
		deleted = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET successor_sealed = NULL
	WHERE successor_sealed IS NOT NULL AND rotated_at < $1`, millis(graceEnd)); err != nil {
			return fail(op, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(deleted), nil
}
