-- 0008: Digest nonce counts shared by every node (sip.NonceCountStore), the
-- twin of PostgreSQL's. users-core does not use it on SQLite (one process
-- per database file: its in-memory ReplayGuard sees every REGISTER), but
-- the table keeps the schema versions of both backends the same and lets
-- the conformance suite run here.
--
-- One row per nonce a Digest answer was accepted for: the highest nc used
-- with it, and when the nonce expires (Unix milliseconds, UTC).
-- UseNonceCount writes a row with one upsert that only ever raises nc;
-- DeleteExpiredNonceCounts removes rows whose nonce has expired.
CREATE TABLE nonce_counts (
	nonce      TEXT    NOT NULL PRIMARY KEY,
	nc         INTEGER NOT NULL CHECK (nc BETWEEN 1 AND 4294967295),
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- DeleteExpiredNonceCounts ranges over expiry times.
CREATE INDEX nonce_counts_expires_at ON nonce_counts (expires_at);
