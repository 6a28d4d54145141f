-- 0008: Digest nonce counts shared by every node (sip.NonceCountStore), so
-- an Authorization accepted at one node is refused as a replay at every
-- other.
--
-- One row per nonce some node accepted a Digest answer for: the highest nc
-- used with it, and when the nonce expires (BIGINT Unix milliseconds, UTC).
-- UseNonceCount writes a row with one upsert that only ever raises nc;
-- DeleteExpiredNonceCounts removes rows whose nonce has expired (a nonce
-- past its expiry is refused as stale before its count is looked at, so a
-- removed row can never be needed again). Nonces are NonceKeeper's: 40
-- base64url characters, compared byte for byte.
CREATE TABLE nonce_counts (
	nonce      TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	nc         BIGINT NOT NULL CHECK (nc BETWEEN 1 AND 4294967295),
	expires_at BIGINT NOT NULL
);

-- DeleteExpiredNonceCounts ranges over expiry times.
CREATE INDEX nonce_counts_expires_at ON nonce_counts (expires_at);
