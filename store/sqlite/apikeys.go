package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
)

// DB persists API keys.
var _ identity.APIKeyStore = (*DB)(nil)

// apiKeyColumns selects an api_keys row in the order scanAPIKey reads it.
const apiKeyColumns = `id, user_id, name, hash, scopes, created_at, expires_at, last_used_at, revoked_at`

// apiKeyStmts are the prepared statements of the api_keys table: the
// lookup every X-API-Key request makes runs on the reader pool.
type apiKeyStmts struct {
	byID *sql.Stmt
}

func (s *apiKeyStmts) prepare(ctx context.Context, r *sql.DB) error {
	var err error
	s.byID, err = r.PrepareContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`)
	return err
}

func (s *apiKeyStmts) close() error {
	if s.byID == nil {
		return nil
	}
	return s.byID.Close()
}

// scanAPIKey reads a row selected with apiKeyColumns.
func scanAPIKey(s rowScanner) (*identity.APIKey, []byte, error) {
	var (
		k                         identity.APIKey
		hash                      []byte
		scopes                    string
		created                   int64
		expires, lastUsed, revoke sql.NullInt64
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
	const op = "sqlite.CreateAPIKey"
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
	_, err := db.w.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	return storeErr(op, err)
}

// APIKeyByID returns the key with id and its hash, whatever its state, or
// an error matching identity.ErrNotFound.
func (db *DB) APIKeyByID(ctx context.Context, id string) (*identity.APIKey, []byte, error) {
	const op = "sqlite.APIKeyByID"
	k, hash, err := scanAPIKey(db.apiKeys.byID.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, identity.E(op, identity.CodeNotFound, "API key not found")
	}
	if err != nil {
		return nil, nil, storeErr(op, err)
	}
	return k, hash, nil
}

// ListAPIKeys returns every key of the user, newest CreatedAt first (keys
// created in the same millisecond: the later insert first); an empty list
// for an unknown user.
func (db *DB) ListAPIKeys(ctx context.Context, userID string) ([]*identity.APIKey, error) {
	const op = "sqlite.ListAPIKeys"
	rows, err := db.r.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = ?
	ORDER BY created_at DESC, rowid DESC`, userID)
	if err != nil {
		return nil, storeErr(op, err)
	}
	defer rows.Close()
	keys := []*identity.APIKey{}
	for rows.Next() {
		k, _, err := scanAPIKey(rows)
		if err != nil {
			return nil, storeErr(op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(op, err)
	}
	return keys, nil
}

// RevokeAPIKey sets RevokedAt of the key with id to at unless it is already
// revoked (the first time stays). An unknown id matches
// identity.ErrNotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	const op = "sqlite.RevokeAPIKey"
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, millis(at), id)
		if err != nil {
			return storeErr(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return storeErr(op, err)
		}
		if n > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?)`, id).Scan(&exists); err != nil {
			return storeErr(op, err)
		}
		if !exists {
			return identity.E(op, identity.CodeNotFound, "API key not found")
		}
		return nil
	})
}

// TouchAPIKeys sets LastUsedAt of every key in lastUsed to its time unless
// the stored one is later, in one write transaction; unknown ids are
// skipped.
func (db *DB) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	const op = "sqlite.TouchAPIKeys"
	if len(lastUsed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(lastUsed))
	for id := range lastUsed {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a stable write order
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE api_keys SET last_used_at = ?1
	WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)`)
		if err != nil {
			return storeErr(op, err)
		}
		defer st.Close()
		for _, id := range ids {
			if _, err := st.ExecContext(ctx, millis(lastUsed[id]), id); err != nil {
				return storeErr(op, err)
			}
		}
		return nil
	})
}
