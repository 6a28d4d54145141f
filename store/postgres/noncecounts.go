package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/sip"
)

// DB shares Digest nonce counts among the nodes on the database (migration
// 0008), so a replayed Authorization is refused at every node.
var _ sip.NonceCountStore = (*DB)(nil)

// UseNonceCount returns true, and records nc, when nc is higher than every
// count recorded for nonce; false for a repeated or lower nc and for nc 0.
// It is one statement: an insert that, when the nonce has a row already,
// becomes an update of that row only if its nc is lower. PostgreSQL runs
// INSERT ... ON CONFLICT DO UPDATE atomically: a concurrent insert of the
// same nonce, on any node, makes it wait for that transaction and then
// re-check the WHERE clause on the committed row, so of concurrent calls
// with one nonce and nc exactly one returns a row.
//
// It commits with synchronous_commit off (the counts pool), so it does not
// wait for its WAL record to reach the disk: the registrar's durable commit
// of the binding update that follows flushes the WAL up to a later point,
// which includes this record, before any 200 is sent. A count can only be
// lost to a database crash when its REGISTER got no 200, and then the same
// Authorization is at most used once more. Other nodes see the count as
// soon as it is committed, as before.
func (db *DB) UseNonceCount(ctx context.Context, nonce string, nc uint32, expires time.Time) (bool, error) {
	const op = "postgres.UseNonceCount"
	if nc == 0 {
		return false, nil // counts start at 1 (RFC 7616 section 3.4)
	}
	var fresh bool
	err := retry(ctx, func() error {
		err := db.counts.QueryRow(ctx, `INSERT INTO nonce_counts AS t (nonce, nc, expires_at) VALUES ($1, $2, $3)
	ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc, expires_at = greatest(t.expires_at, excluded.expires_at)
	WHERE t.nc < excluded.nc
	RETURNING true`, nonce, int64(nc), millis(expires)).Scan(&fresh)
		if errors.Is(err, pgx.ErrNoRows) {
			fresh = false // the row holds this nc or a higher one
			return nil
		}
		if err != nil {
			return fail(op, err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return fresh, nil
}

// DeleteExpiredNonceCounts deletes the records of nonces that expired before
// before and returns how many went.
func (db *DB) DeleteExpiredNonceCounts(ctx context.Context, before time.Time) (int, error) {
	n, err := db.exec(ctx, "postgres.DeleteExpiredNonceCounts", `DELETE FROM nonce_counts WHERE expires_at < $1`, millis(before))
	return int(n), err
}
