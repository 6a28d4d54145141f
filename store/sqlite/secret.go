package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/rvoip/users-core/identity"
)

// Secret returns the secret called name, creating it with gen when it does
// not exist yet. gen runs outside any transaction and its error is returned
// unchanged. The value is inserted only if no other caller (in this process
// or another one on the same file) stored one first, and then read back in
// the same write transaction, so every caller gets the same value; a losing
// caller's generated value is discarded.
func (db *DB) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	const op = "sqlite.Secret"
	if name == "" {
		return nil, identity.Invalid(op, "name", "secret name is empty")
	}
	// Fast path: the secret almost always exists already.
	var v []byte
	err := db.r.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, storeErr(op, err)
	}

	gv, err := gen()
	if err != nil {
		return nil, err
	}
	if gv == nil {
		gv = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	err = db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)
	ON CONFLICT (name) DO NOTHING`, name, gv, millis(db.Now())); err != nil {
			return storeErr(op, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v); err != nil {
			return storeErr(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}
