package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
)

// Secret returns the secret called name, creating it with gen when it does
// not exist yet. gen runs outside any transaction and its error is returned
// unchanged. The value is inserted only if no other caller (on this node or
// another) stored one first; a losing caller's generated value is discarded
// and it reads the winner's, so every caller gets the same value.
func (db *DB) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	const op = "postgres.Secret"
	if name == "" {
		return nil, identity.Invalid(op, "name", "secret name is empty")
	}
	// Fast path: the secret almost always exists already.
	var v []byte
	err := db.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fail(op, err)
	}

	gv, err := gen()
	if err != nil {
		return nil, err
	}
	// ON CONFLICT DO NOTHING waits for a concurrent insert of the same name
	// to commit and then inserts nothing (and returns no row). The SELECT
	// after it is a statement of its own, with a snapshot taken after that
	// commit, so it reads the winner's value. The two statements need no
	// transaction: the row, once there, never changes.
	err = db.pool.QueryRow(ctx, `INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
	ON CONFLICT (name) DO NOTHING RETURNING value`, name, nonNil(gv), millis(db.Now())).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = db.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	}
	if err != nil {
		return nil, fail(op, err)
	}
	return v, nil
}
