package postgres

import "context"

// SyncCommitSettings returns synchronous_commit, with where its value came
// from (pg_settings.source), as the main pool's and the nonce-count pool's
// sessions see it.
func (db *DB) SyncCommitSettings(ctx context.Context) (main, mainSource, counts, countsSource string, err error) {
	const q = `SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'`
	if err = db.pool.QueryRow(ctx, q).Scan(&main, &mainSource); err != nil {
		return
	}
	err = db.counts.QueryRow(ctx, q).Scan(&counts, &countsSource)
	return
}
