package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/rvoip/users-core/sip"
)

// DB implements sip.NonceCountStore (migration 0008) for the conformance
// suite and for symmetry with store/postgres. users-core does not wire it
// on SQLite: one process per database file, whose in-memory ReplayGuard
// already sees every REGISTER.
var _ sip.NonceCountStore = (*DB)(nil)

// UseNonceCount returns true, and records nc, when nc is higher than every
// count recorded for nonce; false for a repeated or lower nc and for nc 0.
// It is one upsert on the single writer connection, which serializes
// concurrent calls: of calls with one nonce and nc exactly one returns a
// row.
func (db *DB) UseNonceCount(ctx context.Context, nonce string, nc uint32, expires time.Time) (bool, error) {
	const op = "sqlite.UseNonceCount"
	if nc == 0 {
		return false, nil // counts start at 1 (RFC 7616 section 3.4)
	}
	var fresh int
	err := db.w.QueryRowContext(ctx, `INSERT INTO nonce_counts AS t (nonce, nc, expires_at) VALUES (?, ?, ?)
	ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc, expires_at = max(t.expires_at, excluded.expires_at)
	WHERE t.nc < excluded.nc
	RETURNING 1`, nonce, int64(nc), millis(expires)).Scan(&fresh)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // the row holds this nc or a higher one
	}
	if err != nil {
		return false, storeErr(op, err)
	}
	return true, nil
}

// DeleteExpiredNonceCounts deletes the records of nonces that expired before
// before and returns how many went.
func (db *DB) DeleteExpiredNonceCounts(ctx context.Context, before time.Time) (int, error) {
	const op = "sqlite.DeleteExpiredNonceCounts"
	res, err := db.w.ExecContext(ctx, `DELETE FROM nonce_counts WHERE expires_at < ?`, millis(before))
	if err != nil {
		return 0, storeErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, storeErr(op, err)
	}
	return int(n), nil
}
