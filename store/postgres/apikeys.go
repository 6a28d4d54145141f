package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
)

// DB persists API keys.
var _ identity.APIKeyStore = (*DB)(nil)

// apiKeyColumns selects an api_keys row in the order scanAPIKey reads it.
const apiKeyColumns = `id, user_id, name, hash, scopes, created_at, expires_at, last_used_at, revoked_at`

// scanAPIKey reads a row selected with apiKeyColumns.
func scanAPIKey(s rowScanner) (*identity.APIKey, []byte, error) {
	var (
		k                         identity.APIKey
		hash                      []byte
		scopes                    string
		created                   int64
		expires, lastUsed, revoke *int64
	)
	if err := s.Scan(&k.ID, &k.UserID, &k.Name, &hash, &scopes, &created, &expires, &lastUsed, &revoke); err != nil {
		return nil, nil, err
	}
	k.Scopes = strings.Fields(scopes)
	k.CreatedAt = fromMillis(created)
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = optTime(expires), optTime(lastUsed), optTime(revoke)
	return &k, hash, nil
}

// CreateAPIKey inserts k with hash. A taken id, or a name another
// unrevoked key of the same user has, matches identity.ErrConflict; a
// missing user identity.ErrNotFound.
func (db *DB) CreateAPIKey(ctx context.Context, k *identity.APIKey, hash []byte) error {
	const op = "postgres.CreateAPIKey"
	switch {
	case k == nil:
		return identity.Invalid(op, "key", "API key is nil")
	case k.ID == "":
		return identity.Invalid(op, "id", "API key id is not set")
	case k.Name == "":
		return identity.Invalid(op, "name", "API key name is not set")
	case len(hash) == 0:
		return identity.Invalid(op, "hash", "API key hash is not set")
	}
	for _, s := range k.Scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
			return identity.Invalid(op, "scopes", "scope %q is empty or contains a space", s)
		}
	}
	_, err := db.exec(ctx, op, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.UserID, k.Name, hash, strings.Join(k.Scopes, " "), millis(k.CreatedAt),
		optMillis(k.ExpiresAt), optMillis(k.LastUsedAt), optMillis(k.RevokedAt))
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return identity.E(op, identity.CodeConflict, "an API key with this id, or an unrevoked one with this name, already exists")
	case isForeignKeyViolation(err):
		return identity.E(op, identity.CodeNotFound, "user not found")
	}
	return err
}

// APIKeyByID returns the key with id and its hash, whatever its state, or
// an error matching identity.ErrNotFound.
func (db *DB) APIKeyByID(ctx context.Context, id string) (*identity.APIKey, []byte, error) {
	const op = "postgres.APIKeyByID"
	k, hash, err := scanAPIKey(db.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, identity.E(op, identity.CodeNotFound, "API key not found")
	}
	if err != nil {
		return nil, nil, fail(op, err)
	}
	return k, hash, nil
}

// ListAPIKeys returns every key of the user, newest CreatedAt first (keys
// created in the same millisecond: the later insert first); an empty list
// for an unknown user.
func (db *DB) ListAPIKeys(ctx context.Context, userID string) ([]*identity.APIKey, error) {
	const op = "postgres.ListAPIKeys"
	rows, err := db.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = $1
	ORDER BY created_at DESC, seq DESC`, userID)
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	keys := []*identity.APIKey{}
	for rows.Next() {
		k, _, err := scanAPIKey(rows)
		if err != nil {
			return nil, fail(op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	return keys, nil
}

// RevokeAPIKey sets RevokedAt of the key with id to at unless it is already
// revoked (the first time stays). An unknown id matches
// identity.ErrNotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	const op = "postgres.RevokeAPIKey"
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, millis(at), id)
		if err != nil {
			return fail(op, err)
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)`, id).Scan(&exists); err != nil {
			return fail(op, err)
		}
		if !exists {
			return identity.E(op, identity.CodeNotFound, "API key not found")
		}
		return nil
	})
}

// TouchAPIKeys sets LastUsedAt of every key in lastUsed to its time unless
// the stored one is later, in one transaction; unknown ids are skipped.
// The updates run in id order, so two nodes touching overlapping keys take
// the row locks in the same order and never deadlock.
func (db *DB) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	const op = "postgres.TouchAPIKeys"
	if len(lastUsed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(lastUsed))
	for id := range lastUsed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var qs []queued
	for _, id := range ids {
		qs = append(qs, queued{sql: `UPDATE api_keys SET last_used_at = $1
	WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, args: []any{millis(lastUsed[id]), id}})
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		return sendQueued(ctx, tx, op, qs)
	})
}
